"""The embedded server as a WSGI application: XML-RPC on / and /RPC2, JSON-RPC on /jsonrpc."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import Any

from conformance.server.events import parse_token
from conformance.server.state import ServerState
from conformance.wire import WireFormatError, jsonrpc, xmlrpc
from models.outcome import Failure, Outcome, Success, Value
from models.rpc import REGISTRY

__all__ = ["XenAPIApp"]

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]

XMLRPC_PATHS = frozenset({"/", "/RPC2"})
JSONRPC_PATH = "/jsonrpc"
SERVER_METHODS = ("system.listMethods", "event.from", "event.inject")


class _TooLarge(Exception):
    pass


class XenAPIApp:
    """A WSGI callable that answers XenAPI calls from a ``ServerState``."""

    def __init__(self, state: ServerState, max_request_bytes: int = 16 * 2**20) -> None:
        self.state = state
        self.max_request_bytes = max_request_bytes

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/") or "/"
        if environ.get("REQUEST_METHOD") != "POST":
            return _plain(
                start_response, "405 Method Not Allowed", "POST XenAPI calls to / or /jsonrpc\n"
            )
        if path not in XMLRPC_PATHS and path != JSONRPC_PATH:
            return _plain(start_response, "404 Not Found", f"no XenAPI endpoint at {path}\n")
        try:
            body = self._body(environ)
        except _TooLarge:
            return _plain(start_response, "413 Payload Too Large", "request body too large\n")
        try:
            if path == JSONRPC_PATH:
                return _ok(start_response, "application/json", self._jsonrpc(body))
            return _ok(start_response, "text/xml", self._xmlrpc(body))
        except WireFormatError as error:
            return _http_500(start_response, str(error))

    def _body(self, environ: Environ) -> bytes:
        length_text = environ.get("CONTENT_LENGTH") or ""
        length = int(length_text) if length_text.isdigit() else None
        if length is not None and length > self.max_request_bytes:
            raise _TooLarge
        body: bytes = environ["wsgi.input"].read(
            length if length is not None else self.max_request_bytes + 1
        )
        if len(body) > self.max_request_bytes:
            raise _TooLarge
        return body

    def _xmlrpc(self, body: bytes) -> bytes:
        method, params = xmlrpc.decode_request(body)
        return xmlrpc.encode_response(self.dispatch(method, params))

    def _jsonrpc(self, body: bytes) -> bytes:
        request = jsonrpc.decode_request(body)
        outcome = self.dispatch(request.method, request.params)
        return jsonrpc.encode_response(outcome, request.id, request.version)

    def dispatch(self, method: str, params: tuple[object, ...]) -> Outcome:
        """Answer one call: the server's own methods here, everything else from the model."""
        method = _canonical(method)
        if method == "system.listMethods":
            return Success(tuple(sorted((*REGISTRY, *SERVER_METHODS))))
        if method == "event.from":
            return self._event_from(params)
        if method == "event.inject":
            return self._event_inject(params)
        return self.state.call(method, params)

    def _session_error(
        self, name: str, params: tuple[object, ...], expected: int
    ) -> Failure | None:
        if len(params) - 1 != expected:
            return Failure(
                "MESSAGE_PARAMETER_COUNT_MISMATCH", (name, str(expected), str(len(params) - 1))
            )
        if not isinstance(params[0], str) or params[0] not in self.state.world.sessions:
            return Failure("SESSION_INVALID", (str(params[0]),))
        return None

    def _event_from(self, params: tuple[object, ...]) -> Outcome:
        error = self._session_error("event.from", params, 3)
        if error:
            return error
        classes_raw, token, timeout = params[1], params[2], params[3]
        if not isinstance(classes_raw, list) or not isinstance(token, str):
            return Failure("INTERNAL_ERROR", ("Expected string set and string",))
        classes = {_class_name(str(c)) for c in classes_raw}
        wait = (
            float(timeout)
            if isinstance(timeout, int | float | str) and _is_number(timeout)
            else 0.0
        )
        log = self.state.events
        if token == "":
            batch = log.current(classes)
        else:
            first = parse_token(token)
            if first is None:
                return Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", (token,))
            batch = log.since(first, classes, wait)
        result: dict[str, Value] = {
            "events": tuple(e.as_value() for e in batch.events),
            "valid_ref_counts": batch.counts,
            "token": batch.token,
        }
        return Success(result)

    def _event_inject(self, params: tuple[object, ...]) -> Outcome:
        error = self._session_error("event.inject", params, 2)
        if error:
            return error
        cls, ref = str(params[1]), str(params[2])
        token = self.state.events.inject(cls, ref)
        return Success(token) if token is not None else Failure("HANDLE_INVALID", (cls, ref))


def _canonical(method: str) -> str:
    """``event_from`` → ``event.from``: xapi accepts both forms for every message."""
    if "." in method or "_" not in method:
        return method
    cls, _, name = method.partition("_")
    return f"{cls}.{name}" if f"{cls}.{name}" in SERVER_METHODS else method


def _class_name(subscription: str) -> str:
    """Classes match case-insensitively; the ref of a ``vm/REF`` subscription keeps its case."""
    cls, sep, ref = subscription.partition("/")
    return f"{cls.lower()}{sep}{ref}"


def _is_number(value: object) -> bool:
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _ok(start_response: StartResponse, content_type: str, body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _plain(start_response: StartResponse, status: str, text: str) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _http_500(start_response: StartResponse, reason: str) -> list[bytes]:
    body = f"<html><body><h1>HTTP 500 internal server error</h1>{html.escape(reason)}</body></html>".encode()
    start_response(
        "500 Internal Server Error",
        [("Content-Type", "text/html"), ("Content-Length", str(len(body)))],
    )
    return [body]
