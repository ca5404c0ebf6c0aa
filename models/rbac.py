"""Role-based access control as xapi checks it (semantics §7, §3 RBAC_PERMISSION_DENIED)."""

from __future__ import annotations

from collections.abc import Sequence

from models.catalogue import roles_at_least
from models.errors import XenAPIError
from models.outcome import Value
from models.schema import ROLES, Message
from models.world import SessionInfo

__all__ = ["allowed_roles", "check_permission", "permission_of"]

_PLUS_CLIENT_CERT: dict[str, str] = {
    "shutdown": "vm-operator",
    "suspend": "vm-operator",
    "start_on": "vm-power-admin",
    "resume_on": "vm-power-admin",
    "pool_migrate": "vm-power-admin",
    "restart_device_models": "vm-power-admin",
}
"""Calls whose role list is a minimum role plus client-cert (``_R_X ++ _R_CLIENT_CERT``)."""

_OPERATOR_OTHER_CONFIG_KEYS = ("folder", "XenCenter.CustomFields.")
_KEYED_MAP_MESSAGES = frozenset({"add_to_other_config", "remove_from_other_config"})


def _keyed(message: Message, args: Sequence[Value]) -> str | None:
    if message.name not in _KEYED_MAP_MESSAGES or len(args) < 2:
        return None
    key = str(args[1])
    if key == "folder" or key.startswith(_OPERATOR_OTHER_CONFIG_KEYS[1]):
        return key
    return None


def permission_of(wire_name: str, message: Message, args: Sequence[Value]) -> str:
    """The permission string: the lower-cased sync wire name, plus ``/key:K`` for keyed maps."""
    base = wire_name.removeprefix("Async.").lower()
    key = _keyed(message, args)
    return f"{base}/key:{key}" if key else base


def allowed_roles(message: Message, args: Sequence[Value]) -> tuple[str, ...]:
    """The roles that may make this call, in xapi's privilege order."""
    if _keyed(message, args):
        return roles_at_least("vm-operator")
    if message.name in _PLUS_CLIENT_CERT and message.min_role != "read-only":
        base = roles_at_least(_PLUS_CLIENT_CERT[message.name])
        return tuple(r for r in ROLES if r in base or r == "client-cert")
    return roles_at_least(message.min_role)


def check_permission(
    session: SessionInfo, wire_name: str, message: Message, args: Sequence[Value]
) -> None:
    """RBAC_PERMISSION_DENIED unless the session's role may call; superusers always may.

    The order of the role list in the message is **unconfirmed** (§15.5): privilege order.
    """
    if session.superuser:
        return
    roles = allowed_roles(message, args)
    if session.role in roles:
        return
    text = f"No permission in user session. (Roles with this permission: {', '.join(roles)})"
    raise XenAPIError("RBAC_PERMISSION_DENIED", permission_of(wire_name, message, args), text)
