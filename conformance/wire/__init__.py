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

from conformance.wire import jsonrpc, typed, xmlrpc
from conformance.wire.base import XAPI_TYPING, DateTimeText, Quirks, WireFormatError, WireNull
from conformance.wire.jsonrpc import JsonRpcRequest
from conformance.wire.typed import from_wire
from conformance.wire.xmlrpc import parse_value_text, value_text

__all__ = [
    "XAPI_TYPING",
    "DateTimeText",
    "JsonRpcRequest",
    "Quirks",
    "WireFormatError",
    "WireNull",
    "from_wire",
    "jsonrpc",
    "parse_value_text",
    "typed",
    "value_text",
    "xmlrpc",
]
