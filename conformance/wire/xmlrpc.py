"""XML-RPC as xapi speaks it (rpclib ``Xmlrpc``, non-strict mode), in both directions.

Server side: ``decode_request`` parses what xapi parses, ``encode_response`` emits xapi's bytes.
Client side: ``encode_request`` sends what a careful client sends, ``decode_response`` and
``parse_value_text`` read xapi's bytes without guessing types, so an int64 arrives as ``"123"``
and a datetime as its text (``typed.from_wire`` applies the declared type).

Raw decoded values: ``<i4>``/``<int>``/``<i8>`` → int, a bare ``<value>`` or ``<string>`` → str,
``<boolean>`` → bool, ``<double>`` → float, ``<dateTime.iso8601>`` → its text, ``<struct>`` → dict,
``<array>`` → list (a tuple on the client side), ``<nil/>`` → None, ``<base64>`` → bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TypeVar
from xml.etree.ElementTree import Element, TreeBuilder
from xml.parsers import expat

from conformance.wire.base import (
    XAPI_TYPING,
    DateTimeText,
    Quirks,
    WireFormatError,
    utf16_halves,
)
from conformance.wire.typed import (
    INT64_MAX,
    INT64_MIN,
    datetime_text,
    failure_from_wire,
    raw_value,
)
from models.outcome import Encoded, Int32, Outcome, Success, Value

__all__ = [
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "parse_value_text",
    "received_params",
    "value_text",
]

_XML_DECL = '<?xml version="1.0"?>'
_T = TypeVar("_T")
_EXCERPT = 200
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,19}")

# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------

_XAPI_DROPPED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xapi_escape(text: str) -> str:
    """rpclib ``Xmlrpc.encode``: escape ``& < > "``, drop control characters but tab, LF, CR."""
    text = _XAPI_DROPPED.sub("", text)
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _client_escape(text: str) -> str:
    """Escape for a request; CR as ``&#13;`` so it survives XML newline normalisation."""
    bad = _XML_ILLEGAL.search(text)
    if bad is not None:
        raise ValueError(f"character {bad.group()!r} cannot be sent in XML 1.0: {text!r}")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "&#13;")


@dataclass(frozen=True)
class _Style:
    """How strings and doubles are written: as xapi does, or as a careful client does."""

    escape: Callable[[str], str]
    double: Callable[[float], str]
    quirks: Quirks = XAPI_TYPING


_XAPI = _Style(escape=_xapi_escape, double=lambda number: f"{number:.16g}")
_CLIENT = _Style(escape=_client_escape, double=repr)


def _encode(value: Value, style: _Style, out: list[str]) -> None:
    """Append the ``<value>…</value>`` XML of ``value`` to ``out``."""
    out.append("<value>")
    if isinstance(value, bool):
        out.append(
            str(value).lower() if style.quirks.bool_text else f"<boolean>{int(value)}</boolean>"
        )
    elif isinstance(value, int):
        number = int(float(value)) if style.quirks.int_through_double else value
        out.append(f"<int>{number:d}</int>" if style.quirks.int_typed else f"{number:d}")
    elif isinstance(value, float):
        if style.quirks.double_as_int and value.is_integer() and abs(value) < 2**31:
            out.append(f"<int>{int(value)}</int>")
        else:
            out.append(f"<double>{style.double(value)}</double>")
    elif isinstance(value, str):
        out.append(
            _halves(style.escape(value)) if style.quirks.non_bmp_mangled else style.escape(value)
        )
    elif isinstance(value, datetime.datetime):
        text = style.quirks.date(datetime_text(value))
        out.append(
            text if style.quirks.datetime_text else f"<dateTime.iso8601>{text}</dateTime.iso8601>"
        )
    elif isinstance(value, Encoded):
        out.append(style.escape(value_text(value.value)))
    elif isinstance(value, Int32):
        out.append(f"<i4>{value.value:d}</i4>")
    elif isinstance(value, Mapping):
        _encode_struct(value, style, out)
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        _encode_array(value, style, out)
    else:
        raise TypeError(f"not a XenAPI value: {value!r}")
    out.append("</value>")


def _halves(text: str) -> str:
    """``text`` with each character beyond U+FFFF written as references to its UTF-16 halves."""
    if text.isascii():
        return text
    return "".join(
        "".join(f"&#{unit};" for unit in utf16_halves(char)) if ord(char) > 0xFFFF else char
        for char in text
    )


def _encode_struct(struct: Mapping[str, Value], style: _Style, out: list[str]) -> None:
    out.append("<struct>")
    for key, item in struct.items():
        out.append(f"<member><name>{style.escape(str(key))}</name>")
        _encode(item, style, out)
        out.append("</member>")
    out.append("</struct>")


def _encode_array(items: Sequence[Value], style: _Style, out: list[str]) -> None:
    out.append("<array><data>")
    for item in items:
        _encode(item, style, out)
    out.append("</data></array>")


_ESCAPED: dict[str, str] = {}
"""Texts escaped as xapi escapes them, by text: an answer's field names, refs and values
recur from one answer to the next (a pool's records, read again and again)."""
_ESCAPED_MAX = 1 << 16
_XAPI_SPECIAL = re.compile('[&<>"\x00-\x08\x0b\x0c\x0e-\x1f]')


def _xapi_text(text: str) -> str:
    """``_xapi_escape(text)``, remembered."""
    escaped = _ESCAPED.get(text)
    if escaped is None:
        escaped = _xapi_escape(text) if _XAPI_SPECIAL.search(text) else text
        if len(_ESCAPED) >= _ESCAPED_MAX:
            _ESCAPED.clear()
        _ESCAPED[text] = escaped
    return escaped


_MEMBER_HEADS: dict[str, str] = {}
"""``<member><name>KEY</name>`` by key (the record fields' names, a few hundred)."""


def _member_head(key: str) -> str:
    head = _MEMBER_HEADS.get(key)
    if head is None:
        head = f"<member><name>{_xapi_text(key)}</name>"
        if len(_MEMBER_HEADS) < _ESCAPED_MAX:
            _MEMBER_HEADS[key] = head
    return head


def _encode_xapi(value: Value, out: list[str]) -> None:
    """``_encode(value, _XAPI, out)`` for an answer without quirks, by the value's exact type
    (the types the model answers with); any other value goes the general way."""
    kind = type(value)
    if kind is str:
        out.append(f"<value>{_xapi_text(value)}</value>")  # type: ignore[arg-type]
    elif kind is dict or kind is MappingProxyType:
        out.append("<value><struct>")
        for key, item in value.items():  # type: ignore[union-attr]
            head = _member_head(key) if type(key) is str else _member_head(str(key))
            if type(item) is str:  # most fields: one piece, no call
                out.append(f"{head}<value>{_xapi_text(item)}</value></member>")
            else:
                out.append(head)
                _encode_xapi(item, out)
                out.append("</member>")
        out.append("</struct></value>")
    elif kind is tuple or kind is list:
        out.append("<value><array><data>")
        for item in value:  # type: ignore[union-attr]
            _encode_xapi(item, out)
        out.append("</data></array></value>")
    elif kind is bool:
        out.append(
            "<value><boolean>1</boolean></value>"
            if value
            else "<value><boolean>0</boolean></value>"
        )
    elif kind is int:
        out.append(f"<value>{value:d}</value>")
    else:
        _encode(value, _XAPI, out)


def encode_request(method: str, params: Sequence[Value]) -> bytes:
    """A ``methodCall`` as a careful client sends it to xapi (client side).

    An int goes as a bare ``<value>123</value>``, which xapi's ``int64_of_rpc`` accepts (the
    stdlib's ``<int>`` cannot carry int64). A float is a ``<double>`` with ``repr`` precision, a
    datetime ``<dateTime.iso8601>YYYYMMDDTHH:MM:SSZ``, a mapping a ``<struct>``, any other sequence
    an ``<array>``. Raises ``ValueError`` for a string holding a character that XML 1.0 cannot
    carry (C0 controls but tab/LF/CR, surrogates, U+FFFE, U+FFFF) and ``TypeError`` for a non-Value.
    """
    out = [_XML_DECL, "<methodCall><methodName>", _client_escape(method), "</methodName><params>"]
    for param in params:
        out.append("<param>")
        _encode(param, _CLIENT, out)
        out.append("</param>")
    out.append("</params></methodCall>")
    return "".join(out).encode("utf-8")


def encode_response(outcome: Outcome, quirks: Quirks = XAPI_TYPING) -> bytes:
    """xapi's ``methodResponse`` bytes for ``outcome`` (server side; rpclib ``add_response``).

    ``Success`` is a struct ``{Status: "Success", Value: v}``, ``Failure`` a struct
    ``{Status: "Failure", ErrorDescription: [code, *params]}``. Values are written as by
    ``value_text`` (``quirks``, for seeded faults only, type them otherwise).
    """
    struct: dict[str, Value]
    if isinstance(outcome, Success):
        struct = {"Status": "Success", "Value": outcome.value}
    else:
        struct = {"Status": "Failure", "ErrorDescription": tuple(outcome.description)}
    out = [_XML_DECL, "<methodResponse><params><param>"]
    if quirks == XAPI_TYPING:
        _encode_xapi(struct, out)
    else:
        _encode(struct, replace(_XAPI, quirks=quirks), out)
    out.append("</param></params></methodResponse>")
    return "".join(out).encode("utf-8")


def value_text(value: Value) -> str:
    """The ``<value>…</value>`` text of one value, as xapi writes it (rpclib ``Xmlrpc.to_string``).

    This is also what xapi stores in ``task.result``. Strings are bare (``<value>OpaqueRef:…``,
    void ``""`` is ``<value></value>``), with ``& < > "`` escaped and C0 control characters other
    than tab, LF and CR dropped. An int is bare text, a float ``<double>`` with ``%.16g``, a bool
    ``<boolean>1</boolean>``, a datetime ``<dateTime.iso8601>19700101T00:00:00Z``, a sequence an
    ``<array><data>…``, a mapping a ``<struct>``. ``Encoded(v)`` is the string ``value_text(v)``,
    so ``value_text(Encoded(v))`` is that XML escaped inside a bare ``<value>``.
    """
    out: list[str] = []
    _encode(value, _XAPI, out)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def _refuse_doctype(name: str, *_: object) -> None:
    raise WireFormatError(f"DOCTYPE declarations are refused (<!DOCTYPE {name}>)")


def _refuse_entity(name: str, *_: object) -> None:
    raise WireFormatError(f"ENTITY declarations are refused (<!ENTITY {name}>)")


def _parse(body: bytes) -> Element:
    """Parse XML into an element tree, refusing DTDs and so entity expansion."""
    parser = expat.ParserCreate()
    builder = TreeBuilder()
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    try:
        parser.Parse(body, True)
    except expat.ExpatError as error:
        raise WireFormatError(f"malformed XML ({error})") from None
    return builder.close()


def _excerpt(body: bytes) -> str:
    text = body[:_EXCERPT].decode("utf-8", "replace")
    return repr(text + ("…" if len(body) > _EXCERPT else ""))


def _guarded(body: bytes, decode: Callable[[], _T]) -> _T:
    """Run ``decode``; a failure becomes a ``WireFormatError`` that quotes the body."""
    try:
        return decode()
    except (WireFormatError, RecursionError) as error:
        reason = "nesting too deep" if isinstance(error, RecursionError) else str(error)
        raise WireFormatError(f"{reason}; received {_excerpt(body)}") from None


def _blank(text: str | None) -> bool:
    """Whitespace that rpclib skips between elements."""
    return text is None or text.strip(" \t\r\n") == ""


def _children(element: Element) -> list[Element]:
    """The child elements, refusing non-blank text around them."""
    children = list(element)
    if not _blank(element.text) or not all(_blank(child.tail) for child in children):
        raise WireFormatError(f"unexpected text in <{element.tag}>")
    return children


def _only(element: Element, tag: str) -> Element:
    """The single child element, which must be a ``tag``."""
    children = _children(element)
    if len(children) != 1 or children[0].tag != tag:
        found = ", ".join(f"<{child.tag}>" for child in children) or "nothing"
        raise WireFormatError(f"<{element.tag}> must hold one <{tag}>, found {found}")
    return children[0]


def _leaf(element: Element) -> str:
    """The text of an element that holds no elements."""
    if len(element):
        raise WireFormatError(f"<{element.tag}> must not hold <{element[0].tag}>")
    return element.text or ""


def _int(text: str) -> int:
    if _INT_TEXT.fullmatch(text) is None or not INT64_MIN <= int(text) <= INT64_MAX:
        raise WireFormatError(f"not an int64: {text!r}")
    return int(text)


def _double(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise WireFormatError(f"not a double: {text!r}") from None


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except binascii.Error:
        raise WireFormatError(f"not base64: {text[:40]!r}") from None


_SCALARS: dict[str, Callable[[str], object]] = {
    "int": _int,
    "i4": _int,
    "i8": _int,
    "boolean": lambda text: text == "1",  # rpclib: anything but "1" is false
    "double": _double,
    "string": str,
    "dateTime.iso8601": DateTimeText,
    "base64": _base64,
}


def _value(element: Element) -> object:
    """Decode a ``<value>`` element into a raw Python value."""
    if element.tag != "value":
        raise WireFormatError(f"expected <value>, found <{element.tag}>")
    if not len(element):
        return element.text or ""
    return _typed(_only(element, element[0].tag))


def _typed(element: Element) -> object:
    """Decode the type element inside a ``<value>``."""
    tag = element.tag
    if tag == "array":
        return _array(element)
    if tag == "struct":
        return _struct(element)
    if tag == "nil":
        if not _blank(_leaf(element)):
            raise WireFormatError("<nil> must be empty")
        return None
    parse = _SCALARS.get(tag)
    if parse is None:
        raise WireFormatError(f"unknown XML-RPC type <{tag}>")
    text = _leaf(element)
    if element.text is None and tag != "string":
        raise WireFormatError(f"empty <{tag}>")
    return parse(text)


def _array(element: Element) -> list[object]:
    if not _children(element):
        return []
    return [_value(item) for item in _children(_only(element, "data"))]


def _struct(element: Element) -> dict[str, object]:
    """A struct; with duplicate names the first wins, as with rpclib's ``List.assoc``."""
    struct: dict[str, object] = {}
    for member in _children(element):
        if member.tag != "member":
            raise WireFormatError(f"<struct> must hold <member>s, found <{member.tag}>")
        parts = _children(member)
        if [part.tag for part in parts] != ["name", "value"]:
            raise WireFormatError("a <member> must hold <name> then <value>")
        struct.setdefault(_leaf(parts[0]), _value(parts[1]))
    return struct


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def decode_request(body: bytes) -> tuple[str, tuple[object, ...]]:
    """The method name and raw params of a ``methodCall`` (server side).

    Params decode as listed in the module docstring (a bare int64 stays a str; a dateTime stays
    its text). Raises ``WireFormatError`` for malformed XML, a DTD, or a body that is not a
    ``methodCall`` with ``<methodName>`` and ``<params>``: xapi answers those with HTTP 500.
    """
    return _guarded(body, lambda: _call(_parse(body)))


def received_params(params: Sequence[Value]) -> tuple[object, ...]:
    """The params ``decode_request`` reads from ``encode_request(method, params)``: what the
    server receives of a careful client's arguments, computed without writing and parsing the
    XML where the values allow (text XML carries unchanged, numbers, dates, sets and maps);
    anything else makes the round trip, which also raises as ``encode_request`` does."""
    try:
        return tuple(_received(param) for param in params)
    except _NotPlain:
        return decode_request(encode_request("received", params))[1]


class _NotPlain(Exception):
    """A value whose received form only the round trip gives."""


def _received(value: Value) -> object:
    """One value as ``_value`` decodes what ``_encode`` writes for it in the client's style."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return f"{value:d}"  # a bare <value>: the server reads int64 text
    if isinstance(value, str):
        if _XML_ILLEGAL.search(value) is not None:
            raise _NotPlain
        return str(value)
    if isinstance(value, float):
        return _double(repr(value))
    if isinstance(value, datetime.datetime):
        return DateTimeText(datetime_text(value))
    if isinstance(value, Mapping):
        if not all(type(key) is str and _XML_ILLEGAL.search(key) is None for key in value):
            raise _NotPlain
        return {key: _received(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_received(item) for item in value]
    raise _NotPlain  # Encoded, Int32, and what is no Value


def _call(root: Element) -> tuple[str, tuple[object, ...]]:
    if root.tag != "methodCall":
        raise WireFormatError(f"expected <methodCall>, found <{root.tag}>")
    parts = _children(root)
    if [part.tag for part in parts] != ["methodName", "params"]:
        raise WireFormatError("a <methodCall> must hold <methodName> then <params>")
    params = [_value(_only(param, "value")) for param in _params(parts[1])]
    return _leaf(parts[0]), tuple(params)


def _params(element: Element) -> list[Element]:
    params = _children(element)
    for param in params:
        if param.tag != "param":
            raise WireFormatError(f"<params> must hold <param>s, found <{param.tag}>")
    return params


def decode_response(body: bytes) -> Outcome:
    """The outcome of xapi's ``methodResponse`` (client side).

    ``Status`` ``Success`` gives ``Success(value)`` with the raw value (a bare int64 stays a str,
    arrays become tuples); ``Failure`` gives ``Failure(code, params)`` from ``ErrorDescription``.
    Raises ``WireFormatError``, quoting the start of the body, for anything else: not XML, a
    fault, no ``Status``, a missing ``Value``, an empty ``ErrorDescription``, a nil or base64
    value.

    A response in the plain subset xapi writes is read by a lean decoder (``_lean_response``);
    anything else, and anything it doubts, goes through the full parser, which decides. A
    large body the same as one of the last few is not read again: the outcome read then is
    given again, the very same object (callers never change a decoded answer).
    """
    if len(body) < _REPEAT_MIN_BYTES:
        return _decoded_response(body)
    return _repeated_response(body)


_REPEAT_MIN_BYTES = 1024
"""Bodies from this size on are remembered: a suite re-reads the same records often (most
``VM.get_all_records`` answers of a run are the same bytes as a recent one)."""


@functools.lru_cache(maxsize=64)
def _repeated_response(body: bytes) -> Outcome:
    return _decoded_response(body)


def _decoded_response(body: bytes) -> Outcome:
    try:
        return _lean_response(body)
    except _LEAN_MISSES:
        return _guarded(body, lambda: _outcome(_parse(body)))


def _outcome(root: Element) -> Outcome:
    if root.tag != "methodResponse":
        raise WireFormatError(f"expected <methodResponse>, found <{root.tag}>")
    children = _children(root)
    if len(children) == 1 and children[0].tag == "fault":
        raise WireFormatError(f"XML-RPC fault {_value(_only(children[0], 'value'))!r}")
    params = _only(root, "params")
    return _status(_value(_only(_only(params, "param"), "value")))


def _status(struct: object) -> Outcome:
    """Read xapi's ``{Status, Value | ErrorDescription}`` struct."""
    if not isinstance(struct, dict) or "Status" not in struct:
        raise WireFormatError("the response is not a struct with a Status member")
    status = struct["Status"]
    if status == "Success" and "Value" in struct:
        return Success(raw_value(struct["Value"]))
    if status == "Failure" and "ErrorDescription" in struct:
        return failure_from_wire(struct["ErrorDescription"])
    raise WireFormatError(f"Status {status!r} without its Value or ErrorDescription member")


def parse_value_text(text: str) -> object:
    """Decode one ``<value>…</value>`` text, e.g. ``task.result`` (client side).

    The inverse of ``value_text`` up to the client-side rules of ``decode_response``: a bare
    int64 stays a str, a dateTime stays its text, arrays become tuples. Raises
    ``WireFormatError`` for anything else (including ``""``).
    """
    body = text.encode("utf-8", "surrogatepass")
    return _guarded(body, lambda: raw_value(_value(_parse(body))))


# --------------------------------------------------------------------------------------------
# The lean decoder: xapi's responses without an XML parser
# --------------------------------------------------------------------------------------------
#
# xapi writes a response as tags without attributes, text with only the five named entities, no
# comments, CDATA, DTD or processing instructions but the XML declaration. For that subset the
# lean decoder splits the text at its tags and reads the values straight into the client-side
# form. It accepts nothing the full parser refuses: whatever it does not know (another
# declaration, an attribute, a character reference, a CR, a character XML forbids, a self-closing
# or misplaced element, a fault, a nil, a scalar it cannot read) makes it give up, and the full
# parser reads the body and gives its answer or its error.


class _NotLean(Exception):
    """The body is outside the lean decoder's subset: the full parser decides."""


_LEAN_MISSES = (_NotLean, WireFormatError, ValueError, IndexError, RecursionError)
_LEAN_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\r\ufffe\uffff]")
"""Characters XML forbids, and CR (which XML normalises): left to the full parser."""
_PLAIN_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n"
"""Printable ASCII, tab and LF: a body of these alone holds none of ``_LEAN_FORBIDDEN``."""
_LEAN_AMPERSAND = re.compile("&(?!(?:amp|lt|gt|quot|apos);)")
"""An ``&`` that starts no named entity (a character reference, or an error)."""
_LEAN_SCALARS: dict[str, Callable[[str], object]] = {
    "int": _int,
    "i4": _int,
    "i8": _int,
    "boolean": lambda text: text == "1",
    "double": _double,
    "string": str,
    "dateTime.iso8601": DateTimeText,
}


def _unescaped(text: str) -> str:
    if "&" not in text:
        return text
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'")):
        text = text.replace(entity, char)
    return text.replace("&amp;", "&")


class _LeanReader:
    """A cursor over the body split at each ``<``: every piece is a tag, ``>``, then text."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.at = 1
        """The index of the next tag's piece."""
        self.text = pieces[0]
        """The text before the next tag (entities still escaped)."""

    def _take(self, prefix: str) -> bool:
        """Take the next tag if its piece starts with ``prefix`` (the tag and its ``>``)."""
        piece = self.pieces[self.at]
        if not piece.startswith(prefix):
            return False
        self.at += 1
        self.text = piece[len(prefix) :]
        return True

    def blank(self) -> None:
        """The text before the next tag must be blank, as between elements."""
        if self.text.strip(" \t\n"):
            raise _NotLean

    def open(self, name: str) -> bool:
        """Take ``<name>`` (True) or ``<name/>`` (False); anything else is not lean."""
        if self._take(name + ">"):
            return True
        if self._take(name + "/>"):
            return False
        raise _NotLean

    def closes(self, name: str) -> bool:
        """Take ``</name>`` if it comes next."""
        return self._take("/" + name + ">")

    def close(self, name: str) -> None:
        """Take ``</name>``."""
        if not self._take("/" + name + ">"):
            raise _NotLean

    def within(self, name: str) -> None:
        """Blank text, then ``<name>`` that holds something."""
        self.blank()
        if not self.open(name):
            raise _NotLean

    def ended(self, name: str) -> None:
        """Blank text, then ``</name>``."""
        self.blank()
        self.close(name)

    def value(self) -> object:
        """A ``<value>`` element, as the client-side decoder reads it."""
        if not self.open("value"):
            return ""
        text = self.text
        if self.closes("value"):
            return _unescaped(text)
        self.blank()
        tag, sep, after = self.pieces[self.at].partition(">")
        if not sep or tag.startswith("/") or tag.endswith("/"):
            raise _NotLean
        self.at += 1
        self.text = after
        value = self._typed(tag)
        self.ended("value")
        return value

    def _typed(self, tag: str) -> object:
        if tag == "struct":
            return self._struct()
        if tag == "array":
            return self._array()
        parse = _LEAN_SCALARS.get(tag)
        text = self.text
        if parse is None or (not text and tag != "string"):
            raise _NotLean
        self.close(tag)
        return parse(_unescaped(text))

    def _struct(self) -> dict[str, object]:
        struct: dict[str, object] = {}
        while True:
            self.blank()
            if self.closes("struct"):
                return struct
            self.within("member")
            self.blank()
            name = ""
            if self.open("name"):
                name = _unescaped(self.text)
                self.close("name")
            self.blank()
            value = self.value()
            self.ended("member")
            struct.setdefault(name, value)

    def _array(self) -> tuple[object, ...]:
        self.blank()
        if self.closes("array"):
            return ()
        items = []
        if self.open("data"):
            while True:
                self.blank()
                if self.closes("data"):
                    break
                items.append(self.value())
        self.ended("array")
        return tuple(items)


def _lean_response(body: bytes) -> Outcome:
    """``decode_response`` for the lean subset; raises one of ``_LEAN_MISSES`` outside it.

    xapi's own layout (no blank text between elements) is read by ``_compact_value``, one
    regular-expression scan; any other layout by ``_LeanReader``.
    """
    text = body.decode("utf-8")
    if text.startswith(_XML_DECL):
        text = text[len(_XML_DECL) :]
    if (
        (body.translate(None, _PLAIN_BYTES) and _LEAN_FORBIDDEN.search(text))
        or "]]>" in text
        or ("&" in text and _LEAN_AMPERSAND.search(text))
    ):
        raise _NotLean
    if text.startswith(_RECORDS_HEAD) and text.endswith(_RECORDS_TAIL):
        with contextlib.suppress(_NotLean):
            records = _records(text[len(_RECORDS_HEAD) : len(text) - len(_RECORDS_TAIL)])
            return _lean_status({"Status": "Success", "Value": records})
    if text.startswith(_COMPACT_HEAD) and text.endswith(_COMPACT_TAIL):
        with contextlib.suppress(_NotLean):
            end = len(text) - len(_COMPACT_TAIL)
            tokens = _COMPACT_TOKEN.findall(text, len(_COMPACT_HEAD), end)
            return _lean_status(_compact_value(tokens))
    reader = _LeanReader(text.split("<"))
    reader.within("methodResponse")
    reader.within("params")
    reader.within("param")
    reader.blank()
    value = reader.value()
    reader.ended("param")
    reader.ended("params")
    reader.ended("methodResponse")
    if reader.at != len(reader.pieces):
        raise _NotLean
    reader.blank()
    return _lean_status(value)


def _lean_status(struct: object) -> Outcome:
    """``_status`` for a value the lean decoder read (already in client-side form)."""
    if not isinstance(struct, dict) or "Status" not in struct:
        raise _NotLean
    status = struct["Status"]
    if status == "Success" and "Value" in struct:
        return Success(struct["Value"])
    if status == "Failure" and "ErrorDescription" in struct:
        return failure_from_wire(struct["ErrorDescription"])
    raise _NotLean


# xapi's compact layout, read in one scan. Each token is a whole piece of a value (a member with
# a scalar value, a member's name, a scalar value, a container's opening or closing), all found
# by one ``findall`` in C; the walk over the tokens only checks their order and builds values.
# Anything else in the text (blank text between elements, another form of an element) is the
# catch-all token, and then ``_LeanReader`` reads the body.

_COMPACT_HEAD = "<methodResponse><params><param>"
_COMPACT_TAIL = "</param></params></methodResponse>"
_SCALAR_TAG = "<(i4|int|i8|boolean|double|string|dateTime\\.iso8601)>"
_COMPACT_TOKEN = re.compile(
    # 1-2: a member and its name; 3-4: its value, bare text; 5-6: its value, a typed scalar;
    # neither: its value (a container) is the next token
    "(<member><name>)([^<]*)</name>"
    f"(?:(<value>)([^<]*)</value></member>|<value>{_SCALAR_TAG}([^<]*)</\\5></value></member>)?"
    # 7: a value: 8-9 bare text; 10-11 a typed scalar; 12 a struct opens; 13 an array opens
    f"|(<value>)(?:([^<]*)(</value>)|{_SCALAR_TAG}([^<]*)</\\10></value>"
    "|(<struct>)|(<array><data>))"
    # 14: a struct closes; 15: an array closes; 16: a member whose value closed
    "|</(?:(struct)|(data></array))></value>|(</member>)"
    # 17: anything else
    "|([\\s\\S])"
)
_BETWEEN = object()
"""A struct's state between members (a list's state is always None)."""
_FILLED = object()
"""A struct's state once a member's value is read: its ``</member>`` comes next."""

_Frame = list[object]
"""An open container and its state: ``[dict, _BETWEEN | name | _FILLED]`` or ``[list, None]``."""


def _compact_value(tokens: list[tuple[str, ...]]) -> object:
    """The value the tokens of ``_COMPACT_TOKEN`` spell, in the client-side form of
    ``_LeanReader``; raises ``_NotLean`` (or an error of ``_LEAN_MISSES``) where they do not."""
    done: list[object] = []
    frames: list[_Frame] = []
    _walk(tokens, frames, done)
    if frames or len(done) != 1:
        raise _NotLean
    return done[0]


def _walk(tokens: list[tuple[str, ...]], frames: list[_Frame], done: list[object]) -> None:
    """Read ``tokens`` into the open containers ``frames`` (a value that closes with none left
    open goes to ``done``)."""
    for token in tokens:
        if token[0]:
            _member_token(token, frames[-1])
        elif token[6]:
            _value_token(token, frames, done)
        elif token[13]:
            struct, state = frames.pop()
            if state is not _BETWEEN:
                raise _NotLean
            _put(frames, done, struct)
        elif token[14]:
            items, state = frames.pop()
            if not isinstance(items, list):
                raise _NotLean
            _put(frames, done, tuple(items))
        elif token[15] and frames[-1][1] is _FILLED:
            frames[-1][1] = _BETWEEN
        else:
            raise _NotLean


_RECORDS_HEAD = (
    _COMPACT_HEAD + "<value><struct><member><name>Status</name><value>Success</value></member>"
    "<member><name>Value</name><value><struct>"
)
_RECORDS_TAIL = "</struct></value></member></struct></value>" + _COMPACT_TAIL
_RECORD = "<member><name>OpaqueRef:"
"""A successful answer whose value is a map of records by ref (``get_all_records``), in xapi's
compact layout, is read record by record (``_records``)."""


def _records(text: str) -> dict[str, object]:
    """The map of records by ref that ``text`` (the map's members) spells; each member is read
    once while its text recurs (``_record``): a pool's records mostly come back unchanged
    from one query to the next, another client's VMs among them. Raises ``_NotLean`` where
    the text does not split into whole members (then the answer is read whole)."""
    first, *rest = text.split(_RECORD)
    if first:
        raise _NotLean
    records: dict[str, object] = {}
    for member in rest:
        ref, record = _record(member)
        records.setdefault(ref, record)
    return records


@functools.lru_cache(maxsize=1024)
def _record(member: str) -> tuple[str, object]:
    """One member of a map of records (its text after ``_RECORD``): its ref and its record,
    the very same objects while the text recurs (callers never change a decoded answer)."""
    outer: _Frame = [{}, _BETWEEN]
    frames: list[_Frame] = [outer]
    done: list[object] = []
    _walk(_COMPACT_TOKEN.findall(_RECORD + member), frames, done)
    members = outer[0]
    whole = not done and len(frames) == 1 and outer[1] is _BETWEEN
    if not whole or not isinstance(members, dict) or len(members) != 1:
        raise _NotLean
    ((ref, record),) = members.items()
    return ref, record


def _member_token(token: tuple[str, ...], frame: _Frame) -> None:
    """A member's name, and its scalar value if the token holds it."""
    struct = frame[0]
    if frame[1] is not _BETWEEN or not isinstance(struct, dict):
        raise _NotLean
    name = _unescaped(token[1])
    if token[2]:
        struct.setdefault(name, _unescaped(token[3]))
    elif token[4]:
        struct.setdefault(name, _compact_scalar(token[4], token[5]))
    else:
        frame[1] = name


def _value_token(token: tuple[str, ...], frames: list[_Frame], done: list[object]) -> None:
    """A scalar value, or a struct or an array that opens."""
    if token[8]:
        _put(frames, done, _unescaped(token[7]))
    elif token[9]:
        _put(frames, done, _compact_scalar(token[9], token[10]))
    elif token[11]:
        frames.append([{}, _BETWEEN])
    else:
        frames.append([[], None])


def _put(frames: list[_Frame], done: list[object], value: object) -> None:
    """A value read: the response's, an array's next item or the pending member's."""
    if not frames:
        done.append(value)
        return
    frame = frames[-1]
    container, state = frame
    if isinstance(container, list):
        container.append(value)
    elif isinstance(state, str) and isinstance(container, dict):
        container.setdefault(state, value)
        frame[1] = _FILLED
    else:
        raise _NotLean


def _compact_scalar(tag: str, text: str) -> object:
    if not text and tag != "string":
        raise _NotLean
    return _LEAN_SCALARS[tag](_unescaped(text))
