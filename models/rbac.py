"""Role-based access control as xapi checks it (semantics §7, §3 RBAC_PERMISSION_DENIED)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from models.catalogue import roles_at_least
from models.errors import XenAPIError
from models.outcome import Value
from models.schema import LOCAL_ROOT_ONLY, ROLES, Message
from models.world import SessionInfo

__all__ = [
    "POOL_PROTECTED_KEYS",
    "PROTECTED_KEYS",
    "TASK_PROTECTED_KEYS",
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

TASK_PROTECTED_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "other_config": (
        ("applies_to", "vm-operator"),
        ("XenCenterUUID", "vm-operator"),
        ("XenCenterMeddlingActionTitle", "vm-operator"),
    ),
}
"""The task's (datamodel.ml ``Task.protected_keys``): its messages are read-only's, these keys
vm-operator's."""

POOL_PROTECTED_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "other_config": (
        ("folder", "vm-operator"),
        ("XenCenter.CustomFields.*", "vm-operator"),
        ("EMPTY_FOLDERS", "vm-operator"),
    ),
}
"""The pool's (datamodel_pool.ml ``map_keys_roles``): its other_config edits are
pool-operator's, these keys vm-operator's."""

_PROTECTED_BY_CLASS = {
    "vm": PROTECTED_KEYS,
    "task": TASK_PROTECTED_KEYS,
    "pool": POOL_PROTECTED_KEYS,
}

_KEYED_MAP_MESSAGES = {
    "add_to_other_config": ("vm", "other_config"),
    "remove_from_other_config": ("vm", "other_config"),
    "add_to_platform": ("vm", "platform"),
    "remove_from_platform": ("vm", "platform"),
    "task.add_to_other_config": ("task", "other_config"),
    "task.remove_from_other_config": ("task", "other_config"),
    "pool.add_to_other_config": ("pool", "other_config"),
    "pool.remove_from_other_config": ("pool", "other_config"),
}
"""Message name → (class, map) for the messages whose key argument may be protected."""


def protected_key(field: str, key: str, cls: str = "vm") -> str | None:
    """The protected key of map ``field`` that ``key`` falls under (``Rbac.permission_of_action``:
    exactly, or by the prefix of a wildcard), as the datamodel spells it; None if unprotected."""
    for protected, _role in _PROTECTED_BY_CLASS[cls].get(field, ()):
        if protected.endswith("*"):
            if key.startswith(protected[:-1]):
                return protected
        elif key == protected:
            return protected
    return None


def _key_role(cls: str, field: str, protected: str) -> str:
    return dict(_PROTECTED_BY_CLASS[cls][field])[protected]


def _keyed(message: Message, args: Sequence[Value]) -> tuple[str, str, str] | None:
    """(class, field, protected key) when the call names a protected key of a keyed map."""
    keyed = _KEYED_MAP_MESSAGES.get(message.name)
    if keyed is None or len(args) < 2:
        return None
    protected = protected_key(keyed[1], str(args[1]), keyed[0])
    return (*keyed, protected) if protected else None


def permission_of(wire_name: str, message: Message, args: Sequence[Value]) -> str:
    """The permission string: the lower-cased sync wire name, plus ``/key:K`` for a protected
    key, K the protected key lower-cased (a wildcard's own name, ``xencenter.customfields.*``)."""
    base = wire_name.removeprefix("Async.").lower()
    keyed = _keyed(message, args)
    return f"{base}/key:{keyed[2].lower()}" if keyed else base


def allowed_roles(message: Message, args: Sequence[Value]) -> tuple[str, ...]:
    """The roles that may make this call, in xapi's privilege order (none for a message of
    the local superuser only: ``Xapi_role.get_by_permission_name_label`` then finds none)."""
    if message.min_role == LOCAL_ROOT_ONLY:
        return ()
    keyed = _keyed(message, args)
    if keyed:
        return roles_at_least(_key_role(*keyed))
    if message.name in _PLUS_CLIENT_CERT and message.min_role != "read-only":
        base = roles_at_least(_PLUS_CLIENT_CERT[message.name])
        return tuple(r for r in ROLES if r in base or r == "client-cert")
    return roles_at_least(message.min_role)


def map_update_permissions(
    field: str, old: Mapping[str, Value], new: Mapping[str, Value], cls: str = "vm"
) -> list[tuple[str, str]]:
    """(permission, role) that ``<cls>.set_<field>`` from ``old`` to ``new`` needs beyond its
    own (``Helpers.set_map_with_rbac``): ``add_to`` for each protected key added or changed,
    then ``remove_from`` for each removed, protected keys in sorted order."""
    kept = {k for k in old if k in new and old[k] == new[k]}
    added = sorted({p for k in set(new) - kept if (p := protected_key(field, k, cls))})
    removed = sorted({p for k in set(old) - set(new) if (p := protected_key(field, k, cls))})
    return [
        (f"{cls}.{operation}_{field}/key:{key.lower()}", _key_role(cls, field, key))
        for operation, keys in (("add_to", added), ("remove_from", removed))
        for key in keys
    ]


def check_map_update(
    session: SessionInfo,
    field: str,
    old: Mapping[str, Value],
    new: Mapping[str, Value],
    cls: str = "vm",
) -> None:
    """RBAC_PERMISSION_DENIED naming the first protected-key permission the session lacks."""
    if session.superuser:
        return
    for permission, role in map_update_permissions(field, old, new, cls):
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
