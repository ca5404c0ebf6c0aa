"""The shapes of the catalogue: XenAPI types, fields, parameters and messages, as frozen data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from models.outcome import Value

__all__ = ["LOCAL_ROOT_ONLY", "ROLES", "Field", "Message", "Param", "XType", "parse_type"]

Kind = Literal[
    "string", "int", "float", "bool", "datetime", "ref", "record", "enum", "set", "map", "void"
]

PRIMITIVES: frozenset[str] = frozenset({"string", "int", "float", "bool", "datetime", "void"})

ROLES: tuple[str, ...] = (
    "pool-admin",
    "pool-operator",
    "vm-power-admin",
    "vm-admin",
    "vm-operator",
    "client-cert",
    "read-only",
)
"""xapi's roles in decreasing order of privilege (datamodel_roles.ml ``ordered``)."""

LOCAL_ROOT_ONLY = "local-root-only"
"""The ``min_role`` of a message no role may call (datamodel_roles.ml ``_R_LOCAL_ROOT_ONLY``,
``Some []``): only a local superuser's session, which RBAC lets through."""


@dataclass(frozen=True)
class XType:
    """A XenAPI type: a primitive, ``C ref``, an enum name, ``T set`` or ``(K -> V) map``."""

    kind: Kind
    name: str = ""
    key: XType | None = None
    item: XType | None = None

    def __str__(self) -> str:
        if self.kind == "ref":
            return f"{self.name} ref"
        if self.kind == "record":
            return f"{self.name} record"
        if self.kind == "enum":
            return self.name
        if self.kind == "set":
            return f"{self.item} set"
        if self.kind == "map":
            return f"({self.key} -> {self.item}) map"
        return self.kind


def parse_type(text: str) -> XType:
    """Parse the type notation of the published reference, e.g. ``(string -> VM ref) map``."""
    text = text.strip()
    if text.startswith("(") and text.endswith(") map"):
        key, _, item = text[1 : -len(") map")].partition(" -> ")
        if not item:
            raise ValueError(f"malformed map type {text!r}")
        return XType("map", key=parse_type(key), item=parse_type(item))
    if text.endswith(" set"):
        return XType("set", item=parse_type(text[: -len(" set")]))
    if text.endswith(" record"):
        return XType("record", name=text[: -len(" record")])
    if text.endswith(" ref"):
        return XType("ref", name=text[: -len(" ref")])
    if text in PRIMITIVES:
        return XType(text)  # type: ignore[arg-type]
    if not text or " " in text:
        raise ValueError(f"unknown type {text!r}")
    return XType("enum", name=text)


@dataclass(frozen=True)
class Field:
    """A field of the VM class.

    ``qualifier`` is ``RW``, ``RO/constructor`` (StaticRO) or ``RO/runtime`` (DynamicRO).
    ``default`` matters only when ``has_default``: VM.create may then omit the field.
    """

    name: str
    type: XType
    qualifier: str
    description: str = ""
    has_default: bool = False
    default: Value | None = None
    deprecated: bool = False
    removed: bool = False


@dataclass(frozen=True)
class Param:
    """A parameter of a message, after the session (which every VM message takes first)."""

    name: str
    type: XType
    description: str = ""
    has_default: bool = False
    default: Value | None = None


@dataclass(frozen=True)
class Message:
    """A message of the VM class, e.g. ``start`` for the wire name ``VM.start``."""

    name: str
    params: tuple[Param, ...]
    returns: XType
    min_role: str
    errors: tuple[str, ...] = ()
    deprecated: bool = False
    removed: bool = False
    has_async: bool = True
    description: str = ""

    @property
    def wire_name(self) -> str:
        """The method name on the wire, e.g. ``VM.start``."""
        return f"VM.{self.name}"

    @property
    def required_count(self) -> int:
        """How many parameters (excluding the session) have no default."""
        return sum(1 for p in self.params if not p.has_default)
