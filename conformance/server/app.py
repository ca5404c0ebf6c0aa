"""The embedded server's XenAPI endpoint: JSON-RPC under /jsonrpc, XML-RPC on any other POST path.

``XenAPIApp.answer`` turns one request body into a ``Reply``, or into a ``Pending`` long poll
that the caller waits on: the HTTP front end (``conformance.server.http``) parks it without a
thread, the WSGI callable (in-process targets, wsgiref) blocks on it.

What xapi answers, and so what this answers: a body its parsers cannot read, or one over
``Constants.http_limit_max_rpc_size``, gets its HTML 500 page (``Http_svr.response_internal_error``);
a readable call gets a XenAPI response, errors included. Unlike xapi's page, ours never quotes the
exception, so it never echoes a byte of the request (a password in a malformed login included).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from conformance.server.config import MAX_REQUEST_BYTES
from conformance.server.events import NextPoll, Poll
from conformance.server.latency import SlowCalls
from conformance.server.state import ServerState
from conformance.wire import WireFormatError, jsonrpc, xmlrpc
from models.outcome import Failure, Outcome, Success
from models.rpc import REGISTRY
from models.schema import XType
from models.unmarshal import UnmarshalError, unmarshal

__all__ = ["Pending", "Reply", "XenAPIApp", "endpoint", "error_page"]

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]

JSONRPC_PATH = "/jsonrpc"
POST_HANDLERS: dict[str, str | None] = {
    "/": "xmlrpc",
    "/RPC2": "xmlrpc",
    "/json": "xmlrpc",
    JSONRPC_PATH: "jsonrpc",
    "/cli": None,
    "/services": None,
    "/services/SM": None,
    "/remote_db_access": None,
    "/remote_db_access_v2": None,
}
"""xapi's POST handlers by path (datamodel.ml http_actions, xapi.ml common_http_handlers): ``/``,
``/RPC2`` and ``/json`` are Api_server.callback (XML-RPC bodies; ``/json`` differs only in how a
slave forwards), ``/jsonrpc`` is jsoncallback; the others are not XenAPI (None: not served here)."""
SERVER_METHODS = (
    "system.listMethods",
    "event.from",
    "event.inject",
    "event.register",
    "event.unregister",
    "event.next",
    "event.get_current_id",
)
_FLOAT = XType("float")

_PAGE_500 = (
    "<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please "
    "wait a while and try again. If the problem persists, please contact your support "
    "representative.<h1> Additional information </h1>{}</body></html>"
)
_PAGES = {
    400: "<html><body><h1>HTTP 400 bad request</h1>The HTTP request was malformed. Please "
    "correct and retry.</body></html>",
    408: "<html><body><h1>HTTP 408 request timeout</h1>Timed out waiting for the request."
    "</body></html>",
    431: "<html><body><h1>HTTP 431 request header fields too large</h1>Exceeded the maximum "
    "header size.</body></html>",
}
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Error",
}


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, content type and body."""

    status: int
    content_type: str
    body: bytes

    @property
    def status_line(self) -> str:
        """``"200 OK"``: the WSGI status."""
        return f"{self.status} {_REASONS.get(self.status, '')}".rstrip()


@dataclass(frozen=True)
class Pending:
    """An event.from or event.next that waits: its poll, and how to answer once it is ready."""

    poll: Poll | NextPoll
    finish: Callable[[], Reply]


def error_page(status: int, extra: str = "") -> Reply:
    """xapi's HTML error page for ``status`` (``Http_svr.response_*``); never the request."""
    text = _PAGE_500.format(extra) if status == 500 else _PAGES.get(status, "")
    return Reply(status, "text/html", text.encode())


def endpoint(path: str) -> str | None:
    """The protocol xapi answers a POST to ``path`` with: its handler is the one registered at
    the longest prefix of the path (http_svr.ml ``handle_one``, ``Radix_tree.longest_prefix``),
    ``/`` catching every path no other handler claims (so ``/xmlrpc`` is XML-RPC)."""
    prefix = max((p for p in POST_HANDLERS if path.startswith(p)), key=len, default=None)
    return POST_HANDLERS[prefix] if prefix is not None else None


def _plain(status: int, text: str) -> Reply:
    return Reply(status, "text/plain", text.encode())


UNREADABLE_XML = error_page(500, "the request body is not an XML-RPC methodCall")
UNREADABLE_JSON = error_page(500, "the request body is not a JSON-RPC request")
TOO_LARGE = error_page(500, "Http_svr.Client_requested_size_over_limit")
INTERNAL = error_page(500, "the embedded server failed; its log names the error")


class XenAPIApp:
    """Answers XenAPI calls from a ``ServerState``; also a WSGI callable."""

    def __init__(
        self,
        state: ServerState,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        latency: SlowCalls | None = None,
    ) -> None:
        self.state = state
        self.max_request_bytes = max_request_bytes
        self.latency = latency

    # ---- HTTP-level entry points --------------------------------------------------------

    def refuse(self, method: str, path: str, length: int | None) -> Reply | None:
        """The answer to a request refused before its body is read, or None to read it."""
        if method != "POST":
            return _plain(405, "POST XenAPI calls to / or /jsonrpc\n")
        if endpoint(path) is None:
            return _plain(404, "no XenAPI endpoint at this path (a xapi handler not served here)\n")
        if length is not None and length > self.max_request_bytes:
            return TOO_LARGE
        return None

    def answer(self, path: str, body: bytes) -> Reply | Pending:
        """The answer to one request body; never raises."""
        if len(body) > self.max_request_bytes:
            return TOO_LARGE
        try:
            if endpoint(path) == "jsonrpc":
                return self._jsonrpc(body)
            return self._xmlrpc(body)
        except Exception as error:
            log_internal_error(error)
            return INTERNAL

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """WSGI: the same answers, a long poll blocking the calling thread."""
        path = environ.get("PATH_INFO", "/") or "/"
        length_text = environ.get("CONTENT_LENGTH") or ""
        length = int(length_text) if length_text.isdigit() else None
        reply = self.refuse(environ.get("REQUEST_METHOD", ""), path, length)
        if reply is None:
            limit = length if length is not None else self.max_request_bytes + 1
            answer = self.answer(path, environ["wsgi.input"].read(limit))
            if isinstance(answer, Pending):
                answer.poll.wait_blocking()
                answer = answer.finish()
            reply = answer
        headers = [("Content-Type", reply.content_type), ("Content-Length", str(len(reply.body)))]
        start_response(reply.status_line, headers)
        return [reply.body]

    # ---- the two protocols --------------------------------------------------------------

    def _xmlrpc(self, body: bytes) -> Reply | Pending:
        try:
            method, params = xmlrpc.decode_request(body)
        except WireFormatError:
            return UNREADABLE_XML
        quirks = self.state.quirks

        def encode(outcome: Outcome) -> bytes:
            return xmlrpc.encode_response(outcome, quirks)

        return self._respond(method, params, encode, "text/xml")

    def _jsonrpc(self, body: bytes) -> Reply | Pending:
        try:
            request = jsonrpc.decode_request(body)
        except WireFormatError:
            return UNREADABLE_JSON

        def encode(outcome: Outcome) -> bytes:
            return jsonrpc.encode_response(outcome, request.id, request.version, self.state.quirks)

        return self._respond(request.method, request.params, encode, "application/json")

    def _respond(
        self,
        method: str,
        params: tuple[object, ...],
        encode: Callable[[Outcome], bytes],
        content_type: str,
    ) -> Reply | Pending:
        result = self._dispatch(method, params)
        if isinstance(result, Poll | NextPoll):
            poll = result
            return Pending(poll, lambda: Reply(200, content_type, encode(_poll_outcome(poll))))
        return Reply(200, content_type, encode(result))

    # ---- dispatch -----------------------------------------------------------------------

    def dispatch(self, method: str, params: tuple[object, ...]) -> Outcome:
        """Answer one call, a long poll blocking until it is ready."""
        result = self._dispatch(method, params)
        if isinstance(result, Poll | NextPoll):
            result.wait_blocking()
            return _poll_outcome(result)
        return result

    def _dispatch(self, method: str, params: tuple[object, ...]) -> Outcome | Poll | NextPoll:
        """The server's own methods here, everything else from the model."""
        method = _canonical(method)
        if method == "system.listMethods":
            return Success(tuple(sorted((*REGISTRY, *SERVER_METHODS))))
        if method == "event.from":
            return self._event_from(params)
        if method == "event.inject":
            return self._event_inject(params)
        if method in ("event.register", "event.unregister", "event.next"):
            return self._event_next(method, params)
        if method == "event.get_current_id":
            return self._session_error(method, params, 0) or Success(self.state.events.current_id())
        try:
            if self.latency is not None:
                return self.latency.call(self.state, method, params)
            return self.state.call(method, params)
        except Exception as error:  # xapi's dispatch_exn_wrapper: any exception is an error
            log_internal_error(error)
            return Failure("INTERNAL_ERROR", (f"{type(error).__name__} in the embedded server",))

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

    def _event_from(self, params: tuple[object, ...]) -> Outcome | Poll:
        error = self._session_error("event.from", params, 3)
        if error:
            return error
        session, classes_raw, token, timeout_raw = params
        if not isinstance(classes_raw, list) or not isinstance(token, str):
            return Failure("INTERNAL_ERROR", ("Expected string set and string",))
        try:
            timeout = float(unmarshal(timeout_raw, _FLOAT, {}))  # type: ignore[arg-type]
        except UnmarshalError as bad:
            return Failure("INTERNAL_ERROR", (bad.text,))
        log = self.state.events
        classes = log.subscription(classes_raw)
        first = log.read_token(token)
        if isinstance(first, Failure):
            return first
        state = self.state

        def alive() -> bool:
            return session in state.world.sessions

        poll = Poll.start(log, first, classes, timeout, str(session), alive)
        return _poll_outcome(poll) if poll.ready() else poll

    def _event_next(self, method: str, params: tuple[object, ...]) -> Outcome | NextPoll:
        """The legacy event.register(classes), event.unregister(classes) and event.next()."""
        name = method.removeprefix("event.")
        error = self._session_error(method, params, 0 if name == "next" else 1)
        if error:
            return error
        session, log, state = str(params[0]), self.state.events, self.state
        if name != "next":
            if not isinstance(params[1], list):
                return Failure("INTERNAL_ERROR", ("Expected string set",))
            log.register(session, log.subscription(params[1]), name == "register")
            return Success("")
        refusal = log.refusal(session)
        if refusal is not None:
            return refusal

        def alive() -> bool:
            return session in state.world.sessions

        poll = NextPoll(log, session, alive)
        return _poll_outcome(poll) if poll.ready() else poll

    def _event_inject(self, params: tuple[object, ...]) -> Outcome:
        error = self._session_error("event.inject", params, 2)
        if error:
            return error
        cls, ref = str(params[1]), str(params[2])
        token = self.state.events.inject(cls, ref)
        return Success(token) if token is not None else Failure("HANDLE_INVALID", (cls, ref))


def _poll_outcome(poll: Poll | NextPoll) -> Outcome:
    """What a ready poll answers: its batch (event.from) or events (event.next), or
    SESSION_INVALID once its session is gone."""
    if isinstance(poll, NextPoll):
        events = poll.events()
        if events is None:
            return Failure("SESSION_INVALID", (poll.session,))
        return Success(tuple(e.as_value() for e in events))
    batch = poll.batch()
    if batch is None:
        return Failure("SESSION_INVALID", (poll.session,))
    return Success(batch.as_value())


def log_internal_error(error: BaseException) -> None:
    """Report a failure of the server's own code on stderr: where, and the exception's type.

    The message is left out: it may quote the request (a password included).
    """
    frames = "".join(traceback.format_tb(error.__traceback__))
    print(
        f"xapi-conformance: internal error in the embedded server "
        f"({type(error).__name__}); please report it with these frames:\n{frames}",
        file=sys.stderr,
        flush=True,
    )


def _canonical(method: str) -> str:
    """``event_from`` → ``event.from``: xapi accepts both forms for every message."""
    if "." in method or "_" not in method:
        return method
    cls, _, name = method.partition("_")
    return f"{cls}.{name}" if f"{cls}.{name}" in SERVER_METHODS else method
