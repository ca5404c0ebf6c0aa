"""Turn raw wire arguments into typed model values, as xapi's generated unmarshallers do.

A raw argument is what a wire decoder produced (str, int, bool, float, list, dict or None). Type
errors become ``INTERNAL_ERROR`` with rpclib's message; the exact texts are **unconfirmed**
(semantics §15.1), which is why they live in this one module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from models.outcome import Value
from models.schema import Field, XType

__all__ = ["UnmarshalError", "rpc_repr", "unmarshal", "unmarshal_record"]

_INT64 = re.compile(r"-?[0-9]+\Z")
_FLOAT = re.compile(r"-?([0-9]+\.?[0-9]*([eE][-+]?[0-9]+)?|nan|inf|infinity)\Z", re.IGNORECASE)


class UnmarshalError(Exception):
    """An argument that xapi's unmarshaller rejects; ``text`` is the INTERNAL_ERROR parameter."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def rpc_repr(raw: object) -> str:
    """rpclib's ``Rpc.to_string`` rendering of a raw value, used inside its error texts.

    An array (``Enum``) is ``[a;b]`` and a struct (``Dict``) is ``{k:v;k2:v2}``, ``;``-joined.
    """
    if isinstance(raw, bool):
        return f"B({str(raw).lower()})"
    if isinstance(raw, int):
        return f"I({raw})"
    if isinstance(raw, float):
        return f"F({raw:g})"
    if isinstance(raw, str):
        return f"S({raw})"
    if isinstance(raw, list | tuple):
        return "[" + ";".join(rpc_repr(x) for x in raw) + "]"
    if isinstance(raw, dict):
        return "{" + ";".join(f"{k}:{rpc_repr(v)}" for k, v in raw.items()) + "}"
    return "N"


def _expected(name: str, raw: object) -> UnmarshalError:
    return UnmarshalError(f"Expected {name}, got '{rpc_repr(raw)}'")


def _string(raw: object, _: XType, __: Mapping[str, tuple[str, ...]]) -> Value:
    if isinstance(raw, str):
        return raw
    raise _expected("string", raw)


def _int(raw: object, _: XType, __: Mapping[str, tuple[str, ...]]) -> Value:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if _INT64.match(text) and len(text.lstrip("-").lstrip("0")) <= 19:
            number = int(text)
            if -(2**63) <= number < 2**63:
                return number
        raise UnmarshalError("Int64.of_string")  # OCaml's Int64.of_string fails on overflow
    raise _expected("int64", raw)


def _float(raw: object, _: XType, __: Mapping[str, tuple[str, ...]]) -> Value:
    if isinstance(raw, float | int) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str) and _FLOAT.match(raw.strip()):
        return float(raw)
    if isinstance(raw, str):
        raise UnmarshalError("float_of_string")
    raise _expected("float", raw)


def _bool(raw: object, _: XType, __: Mapping[str, tuple[str, ...]]) -> Value:
    if isinstance(raw, bool):
        return raw
    raise _expected("bool", raw)


def _enum(raw: object, xtype: XType, enums: Mapping[str, tuple[str, ...]]) -> Value:
    if not isinstance(raw, str):
        raise _expected("string", raw)
    for value in enums.get(xtype.name, ()):
        if value.lower() == raw.lower():
            return value
    raise UnmarshalError(f"Unhandled pattern when unmarshalling variant type: found '{raw}'")


def _set(raw: object, xtype: XType, enums: Mapping[str, tuple[str, ...]]) -> Value:
    if not isinstance(raw, list | tuple):
        raise _expected("enum", raw)
    assert xtype.item is not None
    return tuple(unmarshal(item, xtype.item, enums) for item in raw)


def _map(raw: object, xtype: XType, enums: Mapping[str, tuple[str, ...]]) -> Value:
    if not isinstance(raw, dict):
        raise _expected("dict", raw)
    assert xtype.key is not None and xtype.item is not None
    result: dict[str, Value] = {}
    for key, item in raw.items():
        typed_key = unmarshal(key, xtype.key, enums)
        result[str(typed_key)] = unmarshal(item, xtype.item, enums)
    return result


def _datetime(raw: object, _: XType, __: Mapping[str, tuple[str, ...]]) -> Value:
    if isinstance(raw, str):
        return raw
    raise _expected("datetime", raw)


def _record(raw: object, _: XType, __: Mapping[str, tuple[str, ...]]) -> Value:
    if isinstance(raw, dict):
        return dict(raw)
    raise _expected("dict", raw)


_UNMARSHALLERS: dict[str, Callable[[object, XType, Mapping[str, tuple[str, ...]]], Value]] = {
    "string": _string,
    "ref": _string,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "enum": _enum,
    "set": _set,
    "map": _map,
    "datetime": _datetime,
    "record": _record,
    "void": _string,
}


def unmarshal(raw: object, xtype: XType, enums: Mapping[str, tuple[str, ...]]) -> Value:
    """The typed value of ``raw`` for ``xtype``; raises ``UnmarshalError`` as xapi would fail."""
    return _UNMARSHALLERS[xtype.kind](raw, xtype, enums)


def unmarshal_record(
    raw: Mapping[str, object],
    fields: tuple[Field, ...],
    enums: Mapping[str, tuple[str, ...]],
) -> dict[str, Value]:
    """A constructor record: every field of ``fields`` typed, defaults filled in.

    A missing field without a default fails as ``Dispatcher_FieldNotFound`` (text unconfirmed);
    the first missing field in ``fields`` order is the one reported (order unconfirmed).
    """
    typed: dict[str, Value] = {}
    for spec in fields:
        if spec.name in raw:
            typed[spec.name] = unmarshal(raw[spec.name], spec.type, enums)
        elif spec.has_default:
            assert spec.default is not None
            typed[spec.name] = spec.default
        else:
            raise UnmarshalError(f'Server_helpers.Dispatcher_FieldNotFound("{spec.name}")')
    return typed
