"""From what a client decodes off the wire to the model's typed ``Value``.

Client-side decoders (``xmlrpc.decode_response``, ``jsonrpc.decode_response``) do not guess types:
over XML-RPC xapi sends an int64 as a bare string ``"123"`` and a datetime as text. ``from_wire``
applies the declared XenAPI type to such a raw value. This module also holds the helpers that both
codecs share: the datetime text, the check that a decoded tree is a ``Value``, and the
``ErrorDescription`` to ``Failure`` conversion.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from typing import cast

from conformance.wire.base import WireFormatError, WireNull
from models.outcome import Failure, Value
from models.schema import XType

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "datetime_text",
    "failure_from_wire",
    "from_wire",
    "parse_datetime",
    "raw_value",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
_DATETIME_TEXT = re.compile(
    r"(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})T(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})\Z",
    re.ASCII,
)
"""xapi's text of a date (``Date.to_rfc3339``): basic ISO 8601 to the second, without the
hyphens ("some client limitations" need them absent), then its zone: ``Z`` for the dates xapi
makes (``Date.now``, ``Date.epoch``) and for those read without one (``of_iso8601`` takes them
as UTC), ``±hh:mm`` for a date a client gave with that offset."""


def datetime_text(moment: datetime.datetime) -> str:
    """xapi's text for a datetime: basic ISO 8601 in UTC to the second, e.g. ``19700101T00:00:00Z``.

    This is ``Date.to_rfc3339`` of xapi's clock library. A naive datetime is taken as UTC;
    sub-second precision is dropped, as xapi keeps whole seconds.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC)
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def parse_datetime(text: str) -> datetime.datetime:
    """Parse a datetime as xapi writes it (``_DATETIME_TEXT``), into an aware UTC datetime.

    Raises ``WireFormatError`` for any other text: an answer's date with hyphens, a fraction
    of a second or no zone is not one xapi writes, and not one every client of xapi reads.
    """
    match = _DATETIME_TEXT.match(text)
    if match is None:
        raise WireFormatError(f"not a XenAPI datetime (YYYYMMDDTHH:MM:SSZ): {text!r}")
    part = match.groupdict()
    year, month, day, hour, minute, second = (
        int(part[name]) for name in ("y", "mo", "d", "h", "mi", "s")
    )
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=_zone(part["tz"]))
        return moment.astimezone(datetime.UTC)
    except (ValueError, OverflowError) as error:
        raise WireFormatError(f"not a XenAPI datetime: {text!r} ({error})") from None


def _zone(text: str) -> datetime.tzinfo:
    """The zone of a ``Z`` or ``±hh:mm`` suffix."""
    if text == "Z":
        return datetime.UTC
    digits = text[1:].replace(":", "")
    offset = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return datetime.timezone(-offset if text[0] == "-" else offset)


def raw_value(raw: object) -> Value:
    """Check that a client-side decoded tree is a XenAPI ``Value``; sequences become tuples.

    A null (``<nil/>``) becomes ``WireNull``, which every typed reading refuses (``from_wire``).
    Raises ``WireFormatError`` for what else xapi never sends as a value: base64 bytes,
    non-string struct keys.
    """
    if raw is None:
        return WireNull()
    if isinstance(raw, str | bool | int | float | datetime.datetime):
        return raw
    if isinstance(raw, list | tuple):
        return tuple(raw_value(item) for item in raw)
    if isinstance(raw, Mapping) and all(isinstance(key, str) for key in raw):
        return {key: raw_value(item) for key, item in raw.items()}
    raise WireFormatError(f"not a XenAPI value: {_show(raw)}")


def failure_from_wire(description: object) -> Failure:
    """The ``Failure`` of an ``ErrorDescription``: a non-empty array ``[code, *params]``.

    Scalar params are stringified (xapi sends strings only). Raises ``WireFormatError`` for an
    empty or non-array description or a non-scalar element.
    """
    if not isinstance(description, list | tuple) or not description:
        raise WireFormatError(f"ErrorDescription is not a non-empty array: {_show(description)}")
    texts = [_param_text(item) for item in description]
    return Failure(texts[0], tuple(texts[1:]))


def _param_text(item: object) -> str:
    if isinstance(item, str | int | float):
        return str(item)
    raise WireFormatError(f"ErrorDescription holds a non-scalar element: {_show(item)}")


def from_wire(raw: object, xtype: XType) -> Value:
    """Coerce a client-side decoded raw value into the model's value of type ``xtype``.

    - ``int`` from ``123`` or ``"123"`` (int64 range); ``float`` from a float, an int or a
      numeric string; ``bool`` from a bool only; ``datetime`` from basic ISO or RFC 3339 text to
      an aware UTC datetime;
    - ``string``, ``ref``, ``enum`` from a str; ``void`` from ``""``;
    - ``set`` to a tuple of coerced items; ``map`` to a dict whose keys and values are coerced by
      the key and item types (keys stay strings: a non-string key is checked and written in its
      canonical text, e.g. ``"+07"`` → ``"7"`` for an int key);
    - ``record`` to a dict with the values left raw: the caller types them field by field.

    Raises ``WireFormatError`` when ``raw`` cannot be coerced, a null (``WireNull``) included.
    """
    if isinstance(raw, WireNull):
        raise WireFormatError(f"null where xapi sends a {xtype}")
    return _COERCERS[xtype.kind](raw, xtype)


def _string(raw: object, xtype: XType) -> Value:
    if isinstance(raw, str):
        return raw
    raise _mismatch(raw, xtype)


def _int(raw: object, xtype: XType) -> Value:
    if isinstance(raw, str) and _INT_TEXT.match(raw):
        value = int(raw)
    elif isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    else:
        raise _mismatch(raw, xtype)
    if not INT64_MIN <= value <= INT64_MAX:
        raise WireFormatError(f"{xtype} out of the int64 range: {_show(raw)}")
    return value


def _float(raw: object, xtype: XType) -> Value:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _mismatch(raw, xtype)
    try:
        return float(raw)
    except (ValueError, OverflowError):
        raise _mismatch(raw, xtype) from None


def _bool(raw: object, xtype: XType) -> Value:
    if isinstance(raw, bool):
        return raw
    raise _mismatch(raw, xtype)


def _datetime(raw: object, xtype: XType) -> Value:
    if isinstance(raw, str):
        return parse_datetime(raw)
    if isinstance(raw, datetime.datetime):
        aware = raw.replace(tzinfo=datetime.UTC) if raw.tzinfo is None else raw
        return aware.astimezone(datetime.UTC)
    raise _mismatch(raw, xtype)


def _set(raw: object, xtype: XType) -> Value:
    if not isinstance(raw, list | tuple):
        raise _mismatch(raw, xtype)
    item = _part(xtype.item, xtype)
    return tuple(from_wire(element, item) for element in raw)


def _map(raw: object, xtype: XType) -> Value:
    if not isinstance(raw, Mapping):
        raise _mismatch(raw, xtype)
    key, item = _part(xtype.key, xtype), _part(xtype.item, xtype)
    return {_key_text(from_wire(k, key)): from_wire(v, item) for k, v in raw.items()}


def _record(raw: object, xtype: XType) -> Value:
    if isinstance(raw, Mapping) and all(isinstance(key, str) for key in raw):
        return cast(Value, dict(raw))
    raise _mismatch(raw, xtype)


def _void(raw: object, xtype: XType) -> Value:
    if raw == "" and isinstance(raw, str):
        return ""
    raise _mismatch(raw, xtype)


_COERCERS: dict[str, Callable[[object, XType], Value]] = {
    "string": _string,
    "ref": _string,
    "enum": _string,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "datetime": _datetime,
    "set": _set,
    "map": _map,
    "record": _record,
    "void": _void,
}


def _part(part: XType | None, whole: XType) -> XType:
    if part is None:
        raise ValueError(f"malformed type {whole!r}: missing key or item type")
    return part


def _key_text(key: Value) -> str:
    """The canonical text of a coerced map key (``Value`` maps are keyed by str)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return str(key)
    if isinstance(key, datetime.datetime):
        return datetime_text(key)
    raise WireFormatError(f"a map key must be a scalar: {_show(key)}")


def _mismatch(raw: object, xtype: XType) -> WireFormatError:
    return WireFormatError(f"expected {xtype}, got {type(raw).__name__} {_show(raw)}")


def _show(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 200 else text[:200] + "…"
