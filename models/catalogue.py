"""The XenAPI VM class as an index: fields, messages and enums by name, and their generic shapes.

The data comes from ``models/catalogue_data.py``, which ``tools/gen_catalogue.py`` generates from
the published reference plus ``tools/catalogue_overlay.json``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from models import catalogue_data
from models.schema import ROLES, Field, Message, XType

__all__ = [
    "ENUMS",
    "FIELDS",
    "MESSAGES",
    "MessageKind",
    "create_fields",
    "field",
    "kind_of",
    "message",
    "required_create_fields",
    "roles_at_least",
]

FIELDS: Mapping[str, Field] = MappingProxyType({f.name: f for f in catalogue_data.FIELDS})
"""Every field of the VM class by wire name, in xapi's datamodel declaration order."""

MESSAGES: Mapping[str, Message] = MappingProxyType({m.name: m for m in catalogue_data.MESSAGES})
"""Every message of the VM class by name without ``VM.`` (e.g. ``start``), in reference order."""

ENUMS: Mapping[str, tuple[str, ...]] = MappingProxyType(dict(catalogue_data.ENUMS))
"""Every enum the VM class uses, with its values in datamodel order and spelling."""

_CREATE_QUALIFIERS = frozenset({"RW", "RO/constructor"})
_VM_REF = XType("ref", name="VM")
_STRING = XType("string")


def field(name: str) -> Field:
    """The field with this wire name; KeyError if the VM class has none."""
    return FIELDS[name]


def message(name: str) -> Message:
    """The message with this name (without ``VM.``); KeyError if the VM class has none."""
    return MESSAGES[name]


def create_fields() -> tuple[Field, ...]:
    """The fields of ``VM.create``'s record: RW and RO/constructor ones (xapi's ctor_fields).

    They come in datamodel declaration order, which is the order of xapi's ctor_fields.
    """
    return tuple(f for f in FIELDS.values() if f.qualifier in _CREATE_QUALIFIERS)


def required_create_fields() -> tuple[str, ...]:
    """The names of the constructor fields without a default, which ``VM.create`` requires."""
    return tuple(f.name for f in create_fields() if not f.has_default)


def roles_at_least(min_role: str) -> tuple[str, ...]:
    """The roles allowed by a minimum role: that role and every role above it, in ROLES order.

    ``read-only`` therefore also includes ``client-cert``. This is xapi's ``roles_gte``. Calls
    that xapi declares as a role set plus client-cert (e.g. ``start_on``, whose reference minimum
    is ``client-cert``) get a wider set here than xapi allows; callers override those.
    Raises ValueError for an unknown role.
    """
    if min_role not in ROLES:
        raise ValueError(f"unknown role {min_role!r}; expected one of {', '.join(ROLES)}")
    return ROLES[: ROLES.index(min_role) + 1]


class MessageKind(enum.StrEnum):
    """The generic behaviour of a message, by its name and parameter shape."""

    GET_FIELD = "get_field"
    SET_FIELD = "set_field"
    MAP_ADD = "map_add"
    MAP_REMOVE = "map_remove"
    SET_ADD = "set_add"
    SET_REMOVE = "set_remove"
    GET_RECORD = "get_record"
    GET_ALL = "get_all"
    GET_ALL_RECORDS = "get_all_records"
    GET_BY_UUID = "get_by_uuid"
    GET_BY_NAME_LABEL = "get_by_name_label"
    SPECIAL = "special"


_CLASS_MESSAGES: Mapping[str, tuple[MessageKind, tuple[XType, ...]]] = MappingProxyType(
    {
        "get_record": (MessageKind.GET_RECORD, (_VM_REF,)),
        "get_all": (MessageKind.GET_ALL, ()),
        "get_all_records": (MessageKind.GET_ALL_RECORDS, ()),
        "get_by_uuid": (MessageKind.GET_BY_UUID, (_STRING,)),
        "get_by_name_label": (MessageKind.GET_BY_NAME_LABEL, (_STRING,)),
    }
)

# Checked in this order, so that add_to_/remove_from_ win over add_/remove_.
_FIELD_PREFIXES: tuple[tuple[str, MessageKind], ...] = (
    ("get_", MessageKind.GET_FIELD),
    ("set_", MessageKind.SET_FIELD),
    ("add_to_", MessageKind.MAP_ADD),
    ("remove_from_", MessageKind.MAP_REMOVE),
    ("add_", MessageKind.SET_ADD),
    ("remove_", MessageKind.SET_REMOVE),
)


def kind_of(msg: Message) -> tuple[MessageKind, str | None]:
    """The generic kind of a message and the field it touches (None when it touches none).

    Classification is purely syntactic: a name pattern (``get_<f>``, ``set_<f>``,
    ``add_to_<f>``, ``remove_from_<f>``, ``add_<f>``, ``remove_<f>``) with ``<f>`` an existing
    field, and the parameter shape of the datamodel-generated message for that field:

    - ``get_<f>(self: VM ref) -> type of f``;
    - ``set_<f>(self: VM ref, value: type of f)``;
    - ``add_to_<f>(self, key, value)`` / ``remove_from_<f>(self, key)`` for a map field;
    - ``add_<f>(self, value)`` / ``remove_<f>(self, value)`` for a set field.

    The implicit class messages (get_record, get_all, ...) match by name and parameters. So a
    custom message that fits a pattern is classified by it, e.g. ``set_memory_dynamic_min``
    is ``set_field`` although xapi validates it, and ``set_VCPUs_max`` too although the field is
    RO/constructor; callers override such messages with explicit rules. Anything else
    (lifecycle calls, ``set_memory_limits``, ``add_to_VCPUs_params_live``, ...) is ``special``.
    """
    types = tuple(p.type for p in msg.params)
    implicit = _CLASS_MESSAGES.get(msg.name)
    if implicit is not None:
        kind, shape = implicit
        return (kind, None) if types == shape else (MessageKind.SPECIAL, None)
    for prefix, kind in _FIELD_PREFIXES:
        target = FIELDS.get(msg.name.removeprefix(prefix)) if msg.name.startswith(prefix) else None
        if target is not None and _fits(kind, msg, types, target.type):
            return kind, target.name
    return MessageKind.SPECIAL, None


def _fits(kind: MessageKind, msg: Message, types: tuple[XType, ...], ftype: XType) -> bool:
    """Whether a message has the parameter shape of a generated field message of ``kind``."""
    if kind is MessageKind.GET_FIELD:
        return types == (_VM_REF,) and msg.returns == ftype
    if kind is MessageKind.SET_FIELD:
        return types == (_VM_REF, ftype)
    if kind is MessageKind.MAP_ADD:
        return ftype.kind == "map" and types == (_VM_REF, ftype.key, ftype.item)
    if kind is MessageKind.MAP_REMOVE:
        return ftype.kind == "map" and types == (_VM_REF, ftype.key)
    return ftype.kind == "set" and types == (_VM_REF, ftype.item)
