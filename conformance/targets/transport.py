"""HTTP POST to one origin with a deadline on the whole exchange and a bound on the answer.

A socket timeout bounds each read, not the response: a server that drips a byte a second never
trips it. Here the socket I/O is the transport's own and h11 (python-hyper's sans-I/O HTTP/1.1
state machine, which the embedded server uses too) reads and writes the messages: every send and
receive is given only what is left of the call's deadline, so connecting, sending, the headers
and the body together take at most ``TargetSettings.timeout``. Bodies larger than
``max_response_bytes`` are refused before they fill memory, and redirects are never followed (a
3xx is reported with its Location). Public APIs only: docs/transport.md says why this shape.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import h11

from conformance.targets.base import TargetSettings
from conformance.targets.route import handshake, open_socket, route_to

__all__ = [
    "EXCERPT_CHARS",
    "HttpAnswer",
    "HttpTransport",
    "NotHttp",
    "RemoteClosed",
    "ResponseTooLarge",
    "excerpt",
]

EXCERPT_CHARS = 200
"""The most of a target's text an error message quotes."""

_ERROR_BODY_BYTES = 4096
"""How much of a non-200 answer is read, for the excerpt."""

_CHUNK = 65536
_MAX_HEAD = 65536
"""The largest status line and header block read (http.client's bound on one header line)."""


def excerpt(text: str, secrets: Iterable[str] = (), limit: int = EXCERPT_CHARS) -> str:
    """The start of ``text`` on one line, secrets masked, at most ``limit`` characters.

    Secrets are masked before cutting, so half a secret never survives at the cut.
    """
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    window = text[: limit + sum(map(len, ordered[:1])) + 1]
    for secret in ordered:
        window = window.replace(secret, "***")
    window = " ".join(window.split())
    return window if len(window) <= limit else window[: limit - 1] + "…"


@dataclass(frozen=True)
class HttpAnswer:
    """What came back: the status, the Location of a redirect, and the (bounded) body."""

    status: int
    location: str
    body: bytes


class RemoteClosed(ConnectionError):
    """The server closed the connection before it answered."""


class NotHttp(Exception):
    """What the server sent is not an HTTP/1.x answer (``reason`` says where it is not)."""


class _Connection:
    """One socket to the origin (or tunnelled through a proxy) and its h11 state."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.http = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self.lean = True
        """Whether exchanges still take the lean path (``_lean_request``, ``_lean_answer``):
        h11 has not been used on this connection yet, so its state is a fresh connection's."""
        self.closed_by_peer = False
        """The lean path read the end of the stream: h11 reads it again, not the socket."""
        self.unread = b""
        """What the lean path read of an answer it left to h11."""

    def send(self, deadline: float, *events: h11.Event) -> None:
        """Send ``events`` (a whole request) in one write: a request split over several
        segments costs the server a read and a parse for each."""
        data = b"".join(self.http.send(event) or b"" for event in events)
        if data:
            _arm(self.sock, deadline)
            self.sock.sendall(data)

    def next_event(self, deadline: float) -> h11.Event | type[h11.PAUSED]:
        """The next event of the answer, reading as much as it needs within ``deadline``."""
        while True:
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as error:
                raise NotHttp(str(error)) from None
            if event is not h11.NEED_DATA:
                return cast("h11.Event | type[h11.PAUSED]", event)  # not NEED_DATA
            data = b""
            if not self.closed_by_peer:
                _arm(self.sock, deadline)
                data = self.sock.recv(_CHUNK)
            if not data and self.http.their_state is h11.SEND_RESPONSE:
                raise RemoteClosed("closed before answering")
            self.http.receive_data(data)

    def response(self, deadline: float) -> h11.Response:
        """The final response's head (informational 1xx answers skipped)."""
        while True:
            event = self.next_event(deadline)
            if isinstance(event, h11.Response):
                return event
            if not isinstance(event, h11.InformationalResponse):
                raise NotHttp(f"no response head ({type(event).__name__})")

    def reusable(self) -> bool:
        """Whether the exchange ended cleanly with the connection kept alive."""
        if self.http.our_state is h11.DONE and self.http.their_state is h11.DONE:
            self.http.start_next_cycle()
            return True
        return False

    def dropped(self) -> bool:
        """Whether the server closed the idle connection (it is readable while idle)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self.sock.close()


def _arm(sock: socket.socket, deadline: float) -> None:
    """Give the next send or receive only what is left of ``deadline``."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    sock.settimeout(remaining)


def _header(response: h11.Response, name: bytes) -> str:
    return next((v.decode("latin-1") for n, v in response.headers if n == name), "")


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


# The lean path: nearly every answer is a plain ``HTTP/1.1 200`` with a Content-Length, and h11
# spends more than twice the client CPU of the whole call on it (docs/transport.md). The lean
# path writes the request and reads such an answer itself; at the first sign of anything else
# (another status, chunks, an informational answer, line endings not CRLF, a header out of the
# plain form, bytes past the body, the stream ending early) it hands what it read to h11, which
# reads the answer as it always does, and the connection keeps to h11 from then on.

_PLAIN_TEXT = re.compile(rb"[\x21-\x7e](?:[ \x21-\x7e]*[\x21-\x7e])?")
"""A request target or header value the lean path writes as it is (h11 would too)."""
_LONGEST_LENGTH = 18
"""The most digits of a Content-Length the lean path reads (h11 reads any other)."""
_PLAIN_STATUS = re.compile(rb"HTTP/1\.1 200 [A-Za-z ]*")
_PLAIN_HEADER = re.compile(
    rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*((?:[\x21-\x7e](?:[ \t\x21-\x7e]*[\x21-\x7e])?)?)[ \t]*"
)


def _lean_request(
    connection: _Connection, target: str, headers: list[tuple[str, str]], body: bytes
) -> bytes | None:
    """The request's bytes as h11 writes them, or None where the lean path does not send it."""
    if not connection.lean or not _plain(target):
        return None
    lines = [f"POST {target} HTTP/1.1".encode()]
    for name, value in headers:
        line = f"{name}: {value}".encode() if _plain(name) and _plain(value) else b""
        if not _PLAIN_HEADER.fullmatch(line):
            return None
        lines.append(line)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _plain(text: str) -> bool:
    return text.isascii() and _PLAIN_TEXT.fullmatch(text.encode()) is not None


def _lean_answer(
    connection: _Connection, deadline: float, limit: int
) -> tuple[HttpAnswer, bool] | None:
    """A plain 200 answer and whether the connection may be kept; None, with what was read in
    ``connection.unread``, for any other answer (``ResponseTooLarge`` past ``limit``)."""
    read = bytearray()
    while (end := read.find(b"\r\n\r\n")) < 0:
        if b"\n\n" in read or len(read) > _MAX_HEAD or not _received(connection, read, deadline):
            connection.unread = bytes(read)
            return None
    head = _plain_head(bytes(read[:end])) if end <= _MAX_HEAD else None
    if head is None:
        connection.unread = bytes(read)
        return None
    length, location, keep = head
    if length > limit:
        raise ResponseTooLarge(length, limit)
    start = end + 4
    while len(read) - start < length:
        if not _received(connection, read, deadline):
            connection.unread = bytes(read)
            return None
    if len(read) - start > length:
        connection.unread = bytes(read)
        return None
    return HttpAnswer(200, location, bytes(read[start:])), keep


def _received(connection: _Connection, read: bytearray, deadline: float) -> bool:
    """Read more of the answer into ``read``; False once the stream has ended."""
    _arm(connection.sock, deadline)
    data = connection.sock.recv(_CHUNK)
    if not data:
        connection.closed_by_peer = True
        return False
    read += data
    return True


def _plain_head(head: bytes) -> tuple[int, str, bool] | None:
    """A plain 200 head's Content-Length, Location and whether it keeps the connection; None
    for any other head."""
    status, *lines = head.split(b"\r\n")
    if not _PLAIN_STATUS.fullmatch(status):
        return None
    fields: dict[bytes, bytes] = {}
    for line in lines:
        field = _PLAIN_HEADER.fullmatch(line)
        if field is None:
            return None
        name = field.group(1).lower()
        if name in fields or name == b"transfer-encoding":
            return None
        fields[name] = field.group(2)
    length = fields.get(b"content-length", b"")
    if not length.isdigit() or len(length) > _LONGEST_LENGTH:
        return None
    tokens = {t.strip().lower() for t in fields.get(b"connection", b"").split(b",")}
    return int(length), fields.get(b"location", b"").decode("latin-1"), b"close" not in tokens


class HttpTransport:
    """One keep-alive connection to the URL's origin; ``post`` is one bounded exchange.

    Raises ``TimeoutError`` when the deadline passes, ``ssl.SSLError`` for TLS failures,
    ``RemoteClosed`` when the server hangs up without answering, ``NotHttp`` when what it sends
    is not HTTP and ``OSError`` for the rest; the caller names them for the user.
    """

    def __init__(self, url: str, settings: TargetSettings) -> None:
        parts = urlsplit(url)
        self.settings = settings
        self.route = route_to(url)
        self._https = parts.scheme == "https"
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.netloc
        self._context = _tls_context(settings.verify) if self._https else None
        self._connection: _Connection | None = None

    def post(self, path: str, body: bytes, content_type: str) -> HttpAnswer:
        """POST ``body``; the answer within the deadline, its body bounded in size.

        A kept-alive connection the server closed just before the request was sent is retried
        once on a new connection (nothing of an answer came back), as browsers and urllib3 do.
        """
        deadline = time.monotonic() + self.settings.timeout
        reused = self._connection is not None
        try:
            return self._exchange(path, body, content_type, deadline)
        except (RemoteClosed, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
        return self._exchange(path, body, content_type, deadline)

    def _exchange(self, path: str, body: bytes, content_type: str, deadline: float) -> HttpAnswer:
        connection = self._open(deadline)
        target, headers = self._target_of(path), self._headers(content_type, body)
        try:
            request = _lean_request(connection, target, headers, body)
            taken = None
            if request is not None:
                _arm(connection.sock, deadline)
                connection.sock.sendall(request)
                taken = _lean_answer(connection, deadline, self.settings.max_response_bytes)
            if taken is not None:
                answer, reusable = taken
            else:
                answer, reusable = self._h11_exchange(
                    connection, target, headers, body, deadline, sent=request is not None
                )
        except BaseException:
            self.close()
            raise
        if not reusable:
            self.close()
        return answer

    def _h11_exchange(
        self,
        connection: _Connection,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        deadline: float,
        *,
        sent: bool,
    ) -> tuple[HttpAnswer, bool]:
        """The exchange through h11 (``sent``: the lean path sent the request and read what
        ``connection.unread`` holds); the answer, and whether the connection may be kept."""
        connection.lean = False
        request = h11.Request(method="POST", target=target, headers=headers)
        events = (request, h11.Data(data=body), h11.EndOfMessage())
        if sent:
            for event in events:
                connection.http.send(event)  # its bytes are those the lean path sent
            if connection.unread:  # (no bytes would tell h11 the stream ended)
                connection.http.receive_data(connection.unread)
        else:
            connection.send(deadline, *events)
        answer = self._answer(connection, connection.response(deadline), deadline)
        return answer, connection.reusable()

    def _target_of(self, path: str) -> str:
        """The request target: the path, or the absolute URL when a proxy relays plain HTTP."""
        return self._origin + path if self.route.proxy and not self._https else path

    def _headers(self, content_type: str, body: bytes) -> list[tuple[str, str]]:
        headers = [
            ("Host", self._host),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("User-Agent", "xapi-conformance"),
        ]
        if self.route.proxy and not self._https and self.route.proxy_authorization:
            headers.append(("Proxy-Authorization", self.route.proxy_authorization))
        return headers

    def _open(self, deadline: float) -> _Connection:
        if self._connection is not None and self._connection.dropped():
            self.close()
        if self._connection is None:
            self._connection = self._connect(deadline)
        return self._connection

    def _connect(self, deadline: float) -> _Connection:
        """A connection to the target's origin, or to the proxy (tunnelled for https)."""
        route = self.route
        where = urlsplit(route.proxy) if route.proxy else None
        host, port = (where.hostname or "", where.port or 80) if where else (route.host, route.port)
        sock = open_socket(host, port, deadline, self.settings.connect_timeout)
        try:
            if not self._https:
                return _Connection(sock)
            if where is not None:
                self._tunnel(sock, deadline)
            assert self._context is not None
            tls = self._context.wrap_socket(
                sock, server_hostname=route.host, do_handshake_on_connect=False
            )
            handshake(tls, deadline)
            return _Connection(tls)
        except BaseException:
            sock.close()
            raise

    def _tunnel(self, sock: socket.socket, deadline: float) -> None:
        """CONNECT through the proxy to the target's origin; raises OSError when refused."""
        route = self.route
        origin = f"{route.host}:{route.port}"
        headers = [("Host", origin)]
        if route.proxy_authorization:
            headers.append(("Proxy-Authorization", route.proxy_authorization))
        proxy = _Connection(sock)
        proxy.send(
            deadline,
            h11.Request(method="CONNECT", target=origin, headers=headers),
            h11.EndOfMessage(),
        )
        response = proxy.response(deadline)
        if not 200 <= response.status_code < 300:
            reason = response.reason.decode("latin-1")
            raise OSError(f"Tunnel connection failed: {response.status_code} {reason}")

    def _answer(
        self, connection: _Connection, response: h11.Response, deadline: float
    ) -> HttpAnswer:
        location = _header(response, b"location")
        if response.status_code != 200:
            body = self._read(connection, deadline, _ERROR_BODY_BYTES)
            return HttpAnswer(response.status_code, location, body)
        limit = self.settings.max_response_bytes
        length = _header(response, b"content-length")
        if length.isdigit() and int(length) > limit:
            raise ResponseTooLarge(int(length), limit)
        return HttpAnswer(200, location, self._read(connection, deadline, limit, refuse=True))

    def _read(
        self, connection: _Connection, deadline: float, limit: int, refuse: bool = False
    ) -> bytes:
        """The body up to ``limit`` bytes: past it, refused (``refuse``) or cut and the
        connection dropped (the rest of an error body is not worth waiting for)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            event = connection.next_event(deadline)
            if not isinstance(event, h11.Data):
                return b"".join(chunks)  # EndOfMessage: the connection may be kept
            size += len(event.data)
            if size > limit:
                if refuse:
                    raise ResponseTooLarge(None, limit)
                self.close()
                return b"".join([*chunks, event.data])[:limit]
            chunks.append(bytes(event.data))

    def close(self) -> None:
        """Drop the connection (the next post opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class ResponseTooLarge(Exception):
    """The answer is larger than ``max_response_bytes`` (``length`` when it was announced)."""

    def __init__(self, length: int | None, limit: int) -> None:
        super().__init__(length, limit)
        self.length = length
        self.limit = limit
