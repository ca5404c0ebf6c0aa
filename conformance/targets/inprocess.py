"""A target that calls the embedded server's WSGI app in memory: the wire codecs, no socket."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from functools import partial

from conformance.errors import MalformedAnswer, ProtocolError
from conformance.server.app import XenAPIApp
from conformance.targets.base import Protocol_, TargetSettings
from conformance.wire import WireFormatError, jsonrpc, xmlrpc
from models.outcome import Outcome, Value

__all__ = ["InProcessTarget"]


class InProcessTarget:
    """Encodes like a client, runs the WSGI app, decodes like a client: fast and faithful."""

    def __init__(self, app: XenAPIApp, protocol: Protocol_ = "xmlrpc") -> None:
        self.app = app
        self.protocol: Protocol_ = protocol
        self.url = "inprocess://embedded/"
        self.settings = TargetSettings()
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Value) -> Outcome:
        """One call through the codecs and the app."""
        if self.protocol == "jsonrpc":
            request_id = next(self._ids)
            body = jsonrpc.encode_request(method, params, request_id)
            decode = partial(jsonrpc.decode_response, request_id=request_id)
            return _decoded(decode, self._post("/jsonrpc", body))
        return _decoded(
            xmlrpc.decode_response, self._post("/", xmlrpc.encode_request(method, params))
        )

    def _post(self, path: str, body: bytes) -> bytes:
        status: list[str] = []
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": path,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        chunks = self.app(environ, lambda s, _headers: status.append(s))
        if not status or not status[0].startswith("200"):
            raise ProtocolError(f"embedded server answered HTTP {status[0] if status else '?'}")
        return b"".join(chunks)

    def with_protocol(self, protocol: Protocol_) -> InProcessTarget:
        """The same app over ``protocol``."""
        return InProcessTarget(self.app, protocol)

    def close(self) -> None:
        """Nothing to release."""


def _decoded(decode: Callable[[bytes], Outcome], body: bytes) -> Outcome:
    """The answer ``body`` holds; a body that does not read as one is a ``MalformedAnswer``."""
    try:
        return decode(body)
    except WireFormatError as error:
        raise MalformedAnswer(
            f"the embedded server answered with a malformed body: {error}"
        ) from None
