"""What both codecs share: the quirks a faulty server types values with, and the format error."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.errors import ProtocolError

__all__ = [
    "XAPI_TYPING",
    "DateTimeText",
    "Quirks",
    "WireFormatError",
    "WireNull",
    "utf16_halves",
]


def utf16_halves(char: str) -> tuple[int, int]:
    """The UTF-16 surrogate pair of a character beyond U+FFFF."""
    offset = ord(char) - 0x10000
    return 0xD800 + (offset >> 10), 0xDC00 + (offset & 0x3FF)


class DateTimeText(str):
    """The text of an XML-RPC ``<dateTime.iso8601>``, as a client decodes it: a string that
    remembers it was sent as a date (a date sent as a plain string is not one xapi sends)."""

    __slots__ = ()


class WireNull(str):
    """A JSON ``null`` or XML-RPC ``<nil/>`` where a value belongs, as a client decodes it: xapi
    never sends one. It reads as the empty text, so that facts read leniently (the import) can
    go on, and every typed reading of it is a mismatch: a divergence, never a tool error."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "null"


@dataclass(frozen=True)
class Quirks:
    """Ways of typing values on the wire that xapi never uses; only seeded faults set them.

    xapi writes an int64 as a bare string over XML-RPC and as a number over JSON-RPC, and a bool
    as ``<boolean>`` or ``true``. A server with quirks answers the same values wrongly typed.
    """

    int_typed: bool = False
    """An int written as the protocol's other scalar: ``<int>`` over XML-RPC, a string over
    JSON-RPC."""
    bool_text: bool = False
    """A bool written as the string ``"true"`` or ``"false"``."""
    int_through_double: bool = False
    """An int64 passed through a double on its way out (as a JavaScript server does): those
    beyond 2^53 come out rounded, 2^63 - 1 as 2^63."""
    non_bmp_mangled: bool = False
    """Text outside the Basic Multilingual Plane written as UTF-16 halves: over XML-RPC as
    character references to surrogates (not XML), over JSON-RPC each half as U+FFFD."""
    datetime_text: bool = False
    """A dateTime written as a plain string over XML-RPC (not ``<dateTime.iso8601>``)."""
    double_as_int: bool = False
    """A double of integral value written as ``<int>`` over XML-RPC, as a server whose numbers
    are of one type (JavaScript) writes it; xapi writes every double as ``<double>``."""
    datetime_hyphenated: bool = False
    """A date's text in extended ISO 8601 (``2024-01-01T00:00:00Z``), with the hyphens xapi
    leaves out for clients that cannot read them (``Date.to_rfc3339``)."""

    empty_as_null: bool = False
    """An empty string written as JSON ``null`` over JSON-RPC (as a server whose objects leave
    unset text out does); xapi writes ``""``."""

    def date(self, text: str) -> str:
        """xapi's ``text`` of a date (``YYYYMMDDTHH:MM:SSZ``) as these quirks write it."""
        if not self.datetime_hyphenated:
            return text
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"


XAPI_TYPING: Quirks = Quirks()
"""No quirks: values typed as xapi types them."""


class WireFormatError(ProtocolError):
    """A body that is not a well-formed XML-RPC or JSON-RPC message, or a value of the wrong type.

    On the server side this is what xapi answers with HTTP 500. On the client side it means the
    target answered something that is not a XenAPI response.
    """
