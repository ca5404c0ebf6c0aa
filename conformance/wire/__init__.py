"""Wire codecs for xapi's XML-RPC and JSON-RPC, client side and server side.

This package is the only place in the project that knows XML or JSON. Everything else exchanges
``models.outcome.Outcome`` and ``Value``.

- ``xmlrpc``: requests, responses and the ``<value>`` text that xapi stores in ``task.result``.
- ``jsonrpc``: JSON-RPC v1 and v2 requests and responses.
- ``typed``: ``from_wire``, which turns a client-side decoded value into the model's value.

Both codecs expose ``encode_request``/``decode_request``/``encode_response``/``decode_response``;
use them through their module (``xmlrpc.encode_request``, ``jsonrpc.decode_response``).
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.errors import ProtocolError


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


# The submodules import WireFormatError from this package, so they come after its definition.
from conformance.wire import jsonrpc, typed, xmlrpc  # noqa: E402
from conformance.wire.jsonrpc import JsonRpcRequest  # noqa: E402
from conformance.wire.typed import from_wire  # noqa: E402
from conformance.wire.xmlrpc import parse_value_text, value_text  # noqa: E402

__all__ = [
    "JsonRpcRequest",
    "WireFormatError",
    "from_wire",
    "jsonrpc",
    "parse_value_text",
    "typed",
    "value_text",
    "xmlrpc",
]
