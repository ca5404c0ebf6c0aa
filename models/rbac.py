"""Role-based access control as xapi checks it (semantics §7, §3 RBAC_PERMISSION_DENIED)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.catalogue import roles_at_least
from models.errors import XenAPIError
from models.outcome import Value
from models.schema import ROLES, Message
from models.world import SessionInfo

__all__ = [
    "PROTECTED_KEYS",
    "allowed_roles",
    "check_map_update",
    "check_permission",
    "map_update_permissions",
    "permission_of",
    "protected_key",
]

_PLUS_CLIENT_CERT: dict[str, str] = {
    "shutdown": "vm-operator",
    "suspend": "vm-operator",
    "start_on": "vm-power-admin",
    "resume_on": "vm-power-admin",
    "pool_migrate": "vm-power-admin",
    "restart_device_models": "vm-power-admin",
}
"""Calls whose role list is a minimum role plus client-cert (``_R_X ++ _R_CLIENT_CERT``)."""

PROTECTED_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "other_config": (
        ("hvm_serial", "pool-admin"),
        ("pci", "pool-admin"),
        ("folder", "vm-operator"),
        ("XenCenter.CustomFields.*", "vm-operator"),
    ),
    "platform": (("hvm_serial", "pool-admin"),),
}
"""The VM's map keys with roles of their own (datamodel_vm.ml ``map_keys_roles``), in the
order xapi tries them; a key ending in ``*`` covers every key it begins."""

_KEYED_MAP_MESSAGES = {
    "add_to_other_config": "other_config",
    "remove_from_other_config": "other_config",
    "add_to_platform": "platform",
    "remove_from_platform": "platform",
}


def protected_key(field: str, key: str) -> str | None:
    """The protected key of map ``field`` that ``key`` falls under (``Rbac.permission_of_action``:
    exactly, or by the prefix of a wildcard), as the datamodel spells it; None if unprotected."""
    for protected, _role in PROTECTED_KEYS.get(field, ()):
        if protected.endswith("*"):
            if key.startswith(protected[:-1]):
                return protected
        elif key == protected:
            return protected
    return None


def _key_role(field: str, protected: str) -> str:
    return dict(PROTECTED_KEYS[field])[protected]


def _keyed(message: Message, args: Sequence[Value]) -> tuple[str, str] | None:
    """(field, protected key) when the call names a protected key of a keyed map."""
    field = _KEYED_MAP_MESSAGES.get(message.name)
    if field is None or len(args) < 2:
        return None
    protected = protected_key(field, str(args[1]))
    return (field, protected) if protected else None


def permission_of(wire_name: str, message: Message, args: Sequence[Value]) -> str:
    """The permission string: the lower-cased sync wire name, plus ``/key:K`` for a protected
    key, K the protected key lower-cased (a wildcard's own name, ``xencenter.customfields.*``)."""
    base = wire_name.removeprefix("Async.").lower()
    keyed = _keyed(message, args)
    return f"{base}/key:{keyed[1].lower()}" if keyed else base


def allowed_roles(message: Message, args: Sequence[Value]) -> tuple[str, ...]:
    """The roles that may make this call, in xapi's privilege order."""
    keyed = _keyed(message, args)
    if keyed:
        return roles_at_least(_key_role(*keyed))
    if message.name in _PLUS_CLIENT_CERT and message.min_role != "read-only":
        base = roles_at_least(_PLUS_CLIENT_CERT[message.name])
        return tuple(r for r in ROLES if r in base or r == "client-cert")
    return roles_at_least(message.min_role)


def map_update_permissions(
    field: str, old: Mapping[str, Value], new: Mapping[str, Value]
) -> list[tuple[str, str]]:
    """(permission, role) that ``VM.set_<field>`` from ``old`` to ``new`` needs beyond its own
    (``Helpers.set_map_with_rbac``): ``add_to`` for each protected key added or changed, then
    ``remove_from`` for each removed, protected keys in sorted order."""
    kept = {k for k in old if k in new and old[k] == new[k]}
    added = sorted({p for k in set(new) - kept if (p := protected_key(field, k))})
    removed = sorted({p for k in set(old) - set(new) if (p := protected_key(field, k))})
    return [
        (f"vm.{operation}_{field}/key:{key.lower()}", _key_role(field, key))
        for operation, keys in (("add_to", added), ("remove_from", removed))
        for key in keys
    ]


def check_map_update(
    session: SessionInfo, field: str, old: Mapping[str, Value], new: Mapping[str, Value]
) -> None:
    """RBAC_PERMISSION_DENIED naming the first protected-key permission the session lacks."""
    if session.superuser:
        return
    for permission, role in map_update_permissions(field, old, new):
        roles = roles_at_least(role)
        if session.role not in roles:
            _deny(permission, roles)


def _deny(permission: str, roles: Sequence[str]) -> None:
    text = f"No permission in user session. (Roles with this permission: {', '.join(roles)})"
    raise XenAPIError("RBAC_PERMISSION_DENIED", permission, text)


def check_permission(
    session: SessionInfo, wire_name: str, message: Message, args: Sequence[Value]
) -> None:
    """RBAC_PERMISSION_DENIED unless the session's role may call; superusers always may.

    The order of the role list in the message is **unconfirmed** (§15.5): privilege order.
    """
    if session.superuser:
        return
    roles = allowed_roles(message, args)
    if session.role not in roles:
        _deny(permission_of(wire_name, message, args), roles)
