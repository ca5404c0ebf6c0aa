"""What both codecs share: the quirks a faulty server types values with, and the format error."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.errors import ProtocolError

__all__ = ["XAPI_TYPING", "Quirks", "WireFormatError"]


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


XAPI_TYPING: Quirks = Quirks()
"""No quirks: values typed as xapi types them."""


class WireFormatError(ProtocolError):
    """A body that is not a well-formed XML-RPC or JSON-RPC message, or a value of the wrong type.

    On the server side this is what xapi answers with HTTP 500. On the client side it means the
    target answered something that is not a XenAPI response.
    """
