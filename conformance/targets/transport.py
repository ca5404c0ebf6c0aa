"""HTTP POST to one origin with a deadline on the whole exchange and a bound on the answer.

A socket timeout bounds each read, not the response: a server that drips a byte a second never
trips it. Here every send and receive is given only what is left of the call's deadline, so
connecting, sending, the headers and the body together take at most ``TargetSettings.timeout``.
Bodies larger than ``max_response_bytes`` are refused before they fill memory, and redirects are
never followed (a 3xx is reported with its Location).
"""

from __future__ import annotations

import email.parser
import http.client
import io
import math
import re
import select
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from conformance.targets.base import TargetSettings
from conformance.targets.route import handshake, open_socket, route_to

__all__ = ["EXCERPT_CHARS", "HttpAnswer", "HttpTransport", "ResponseTooLarge", "excerpt"]

EXCERPT_CHARS = 200
"""The most of a target's text an error message quotes."""

_ERROR_BODY_BYTES = 4096
"""How much of a non-200 answer is read, for the excerpt."""

_CHUNK = 65536


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


class _DeadlineSocket:
    """A socket whose every send and receive gets only what is left of ``deadline``.

    Like a real socket's ``makefile``, an open reader keeps the socket open after ``close``
    (http.client closes the connection before the body of a ``Connection: close`` answer is read).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = math.inf
        self._readers = 0
        self._closed = False

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self.sock.settimeout(remaining)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self.sock.sendall(data)

    def recv_into(self, buffer: memoryview, nbytes: int = 0) -> int:
        self._arm()
        return self.sock.recv_into(buffer, nbytes)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        del mode, args, kwargs
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def fileno(self) -> int:
        return self.sock.fileno()

    def setsockopt(self, *args: object) -> None:
        self.sock.setsockopt(*args)  # type: ignore[call-overload]

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self.sock.close()

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self.sock.close()


class _DeadlineReader(io.RawIOBase):
    """The raw stream http.client reads responses from."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.reader_closed()
        super().close()


_MAX_LINE = 65536
_MAX_HEADERS = 100
"""http.client's bounds on a header line and on the number of headers."""
_PLAIN_HEADER = re.compile(rb"([!-9;-~]+):([^\r\n]*)\r?\n")
"""A header line that is one ``Name: value`` line (no folding, nothing but a name before the
colon): what xapi and most servers send."""


class _Response(http.client.HTTPResponse):
    """http.client's response, with its headers read without the email parser when every line
    is a plain ``Name: value`` line; any other header block goes to the email parser, as in
    http.client. ``begin`` is http.client's own otherwise."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            _header_lines(self.fp)
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = _parsed_headers(_header_lines(self.fp))
        self._framing(status)

    def _framing(self, status: int) -> None:
        """Chunked or not, the length, and whether the connection closes after the answer."""
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (204, 304) or 100 <= status < 200 or self._method == "HEAD":  # type: ignore[attr-defined]
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


def _header_lines(fp: io.BufferedIOBase) -> list[bytes]:
    """The header lines up to the blank one, within http.client's bounds."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def _parsed_headers(lines: list[bytes]) -> http.client.HTTPMessage:
    """The headers as http.client's email parser reads them; plain lines without it."""
    plain = [_PLAIN_HEADER.fullmatch(line) for line in lines[:-1]]
    if lines[-1] == b"" or None in plain:
        text = b"".join(lines).decode("iso-8859-1")
        return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
    message = http.client.HTTPMessage()
    for match in plain:
        assert match is not None
        name, value = match.groups()
        message.set_raw(name.decode("ascii"), value.decode("iso-8859-1").lstrip(" \t"))
    return message


class _Http(http.client.HTTPConnection):
    """A connection whose opening (resolve, connect, proxy CONNECT) ends by ``deadline``."""

    deadline = math.inf
    connect_s = math.inf
    response_class = _Response

    def connect(self) -> None:
        raw = open_socket(self.host, self.port, self.deadline, self.connect_s)
        self.sock = _DeadlineSocket(raw)
        self.sock.deadline = self.deadline
        if getattr(self, "_tunnel_host", None):
            self._tunnel()  # type: ignore[attr-defined]


class _Https(_Http):
    """TLS over ``_Http``'s socket (or its proxy tunnel), the handshake within the deadline."""

    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_name: str) -> None:
        super().__init__(host, port)
        self.context = context
        self.server_name = server_name

    def connect(self) -> None:
        super().connect()
        plain = self.sock
        assert isinstance(plain, _DeadlineSocket)
        tls = self.context.wrap_socket(
            plain.sock, server_hostname=self.server_name, do_handshake_on_connect=False
        )
        handshake(tls, self.deadline)
        self.sock = _DeadlineSocket(tls)
        self.sock.deadline = self.deadline


def _tls_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)


class HttpTransport:
    """One keep-alive connection to the URL's origin; ``post`` is one bounded exchange.

    Raises ``TimeoutError`` when the deadline passes, ``ssl.SSLError`` for TLS failures and
    ``OSError``/``http.client.HTTPException`` for the rest; the caller names them for the user.
    """

    def __init__(self, url: str, settings: TargetSettings) -> None:
        parts = urlsplit(url)
        self.settings = settings
        self.route = route_to(url)
        self._https = parts.scheme == "https"
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._context = _tls_context(settings.verify) if self._https else None
        self._connection: _Http | None = None

    def post(self, path: str, body: bytes, content_type: str) -> HttpAnswer:
        """POST ``body``; the answer within the deadline, its body bounded in size.

        A kept-alive connection the server closed just before the request was sent is retried
        once on a new connection (nothing of an answer came back), as browsers and urllib3 do.
        """
        deadline = time.monotonic() + self.settings.timeout
        reused = self._connection is not None
        try:
            return self._exchange(path, body, content_type, deadline)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
        return self._exchange(path, body, content_type, deadline)

    def _exchange(self, path: str, body: bytes, content_type: str, deadline: float) -> HttpAnswer:
        connection = self._open(deadline)
        try:
            sock = connection.sock
            assert isinstance(sock, _DeadlineSocket)
            sock.deadline = deadline
            connection.request("POST", self._target_of(path), body, self._headers(content_type))
            response = connection.getresponse()
            answer = self._answer(response)
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return answer

    def _target_of(self, path: str) -> str:
        """The request target: the path, or the absolute URL when a proxy relays plain HTTP."""
        return self._origin + path if self.route.proxy and not self._https else path

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type, "User-Agent": "xapi-conformance"}
        if self.route.proxy and not self._https:  # the proxy reads where to from these
            headers["Host"] = urlsplit(self._origin).netloc
            if self.route.proxy_authorization:
                headers["Proxy-Authorization"] = self.route.proxy_authorization
        return headers

    def _open(self, deadline: float) -> _Http:
        if self._connection is not None and _dropped(self._connection):
            self.close()
        if self._connection is None:
            self._connection = self._new_connection()
            self._connection.deadline = deadline
            self._connection.connect_s = self.settings.connect_timeout
            self._connection.connect()
        return self._connection

    def _new_connection(self) -> _Http:
        """A connection to the target's origin, or to the proxy (tunnelled for https)."""
        route = self.route
        where = urlsplit(route.proxy) if route.proxy else None
        host, port = (where.hostname or "", where.port or 80) if where else (route.host, route.port)
        if not self._https:
            return _Http(host, port)
        assert self._context is not None
        connection = _Https(host, port, self._context, route.host)
        if where is not None:
            auth = route.proxy_authorization
            connection.set_tunnel(
                route.host, route.port, {"Proxy-Authorization": auth} if auth else None
            )
        return connection

    def _answer(self, response: http.client.HTTPResponse) -> HttpAnswer:
        location = response.getheader("Location") or ""
        if response.status != 200:
            return HttpAnswer(response.status, location, self._read(response, _ERROR_BODY_BYTES))
        limit = self.settings.max_response_bytes
        if response.length is not None and response.length > limit:
            raise ResponseTooLarge(response.length, limit)
        return HttpAnswer(200, location, self._read(response, limit, refuse=True))

    def _read(self, response: http.client.HTTPResponse, limit: int, refuse: bool = False) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while size < limit or refuse:
            chunk = response.read1(_CHUNK)
            if not chunk:
                response.close()  # fully read: the connection is free for the next call
                return b"".join(chunks)
            size += len(chunk)
            if refuse and size > limit:
                raise ResponseTooLarge(None, limit)
            chunks.append(chunk)
        self.close()  # the rest of an error body is not worth waiting for
        return b"".join(chunks)[:limit]

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


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether a kept-alive connection was closed by the server (readable while idle)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
