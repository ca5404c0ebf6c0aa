"""Hostile loopback HTTP servers: silent, dripping, huge, echoing, redirecting, stalling, dying.

Each is a real socket server on 127.0.0.1 (no mocks): the suite's transport meets them exactly
as it would meet a misbehaving XenAPI host. ``Proxy`` forwards to an honest server until told to
stall or die, for the mid-run cases.

The slow ones misbehave for ``HOSTILE_S`` (a minute, far beyond any deadline a test gives the
client), a byte every ``DRIP_S`` (shorter than any deadline, so that only a deadline on the whole
exchange ends the call), then give up; ``Hostile.hung_up`` tells that the client closed the
connection while the server was still at it. Tests assert on those events, never on durations.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["DRIP_S", "HOSTILE_S", "Hostile", "Proxy", "Request", "hostile_server", "proxy"]

HOSTILE_S = 60.0
"""How long a slow hostile server keeps misbehaving before it gives up."""
DRIP_S = 0.1
"""The time between two bytes a dripping server sends."""


@dataclass(frozen=True)
class Request:
    """One HTTP request as the server read it."""

    head: bytes
    body: bytes


Behaviour = Callable[[Request, socket.socket, threading.Event], bool]
"""Answers one request on the socket; returns whether to keep the connection for another."""


def read_request(sock: socket.socket) -> Request | None:
    """The next request on a kept-alive connection, or None when the client closed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return Request(head, body)


def answer(sock: socket.socket, status: str, body: bytes, *headers: str) -> None:
    """Send a complete response with a Content-Length."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers, "", ""]
    sock.sendall("\r\n".join(lines).encode() + body)


@dataclass
class Hostile:
    """A running hostile server: its URL, the requests it saw, and its stop switch."""

    url: str
    requests: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    close: Callable[[], None] = lambda: None
    hung_up: threading.Event = field(default_factory=threading.Event)
    """Set when the client closed a connection while the server was still answering."""
    closed: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    """Released once for each connection the server has closed."""


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def hostile_server(behave: Behaviour) -> Iterator[Hostile]:
    """Serve ``behave`` on a free loopback port until the block ends."""
    state: Hostile

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            try:
                while not state.stop.is_set():
                    request = read_request(sock)
                    if request is None:
                        return
                    state.requests.append(request)
                    if not behave(request, sock, state.stop):
                        return
            except OSError:  # the client closed the connection under us
                state.hung_up.set()
            finally:
                sock.close()
                state.closed.release()

    server = _Server(("127.0.0.1", 0), Handler)

    def close() -> None:
        state.stop.set()
        server.shutdown()
        server.server_close()

    state = Hostile(f"http://127.0.0.1:{server.server_address[1]}/", close=close)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        close()


@contextmanager
def raw_server(behave: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """Serve ``behave`` on each new connection, before any request is read; yield the address
    (``127.0.0.1:PORT``)."""
    stop = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with contextlib.suppress(OSError):
                behave(self.request, stop)

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def tls_drip(sock: socket.socket, stop: threading.Event) -> None:
    """Reads the TLS ClientHello, then answers with a record header announcing 16 KiB and
    sends its bytes one every ``DRIP_S``: no single read ever waits long, the handshake does
    not end while the server drips."""
    sock.recv(65536)
    sock.sendall(b"\x16\x03\x03\x40\x00")
    _drip(sock, stop, b"\x00")


def _drip(sock: socket.socket, stop: threading.Event, byte: bytes) -> None:
    """``byte`` every ``DRIP_S`` for ``HOSTILE_S``."""
    for _ in range(int(HOSTILE_S / DRIP_S)):
        if stop.wait(DRIP_S):
            return
        sock.sendall(byte)


def forward_proxy(seen: list[Request]) -> Behaviour:
    """An HTTP forward proxy: relays ``POST http://host:port/path`` to that origin; refuses
    CONNECT with 407. Every request it gets is appended to ``seen``."""

    def behave(request: Request, sock: socket.socket, _stop: threading.Event) -> bool:
        seen.append(request)
        method, target, _ = request.head.split(b"\r\n")[0].decode().split()
        if method == "CONNECT":
            answer(sock, "407 Proxy Authentication Required", b"")
            return False
        where = urlsplit(target)
        connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
        try:
            connection.request("POST", where.path, request.body, {"Content-Type": "text/xml"})
            response = connection.getresponse()
            answer(sock, f"{response.status} {response.reason}", response.read())
        finally:
            connection.close()
        return True

    return behave


def silent(_request: Request, sock: socket.socket, stop: threading.Event) -> bool:
    """Reads the request and does not answer for ``HOSTILE_S``; notices the client hang up."""
    for _ in range(int(HOSTILE_S / DRIP_S)):
        if stop.is_set():
            return False
        readable, _, _ = select.select([sock], [], [], DRIP_S)
        if readable and not sock.recv(1):
            raise ConnectionResetError("the client hung up")
    return False


def drip(_request: Request, sock: socket.socket, stop: threading.Event) -> bool:
    """A valid status line, then the rest a byte every ``DRIP_S``."""
    sock.sendall(b"HTTP/1.1 200 OK\r\n")
    _drip(sock, stop, b"X")
    return False


def drip_body(_request: Request, sock: socket.socket, stop: threading.Event) -> bool:
    """Complete headers, then a body a byte every ``DRIP_S``."""
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n<")
    _drip(sock, stop, b" ")
    return False


def huge(_request: Request, sock: socket.socket, stop: threading.Event) -> bool:
    """A 200 MB answer, announced, streamed until the client hangs up."""
    return _stream(sock, stop, b"Content-Length: 209715200\r\n")


def huge_chunked(_request: Request, sock: socket.socket, stop: threading.Event) -> bool:
    """A 200 MB answer in chunks, its size never announced."""
    return _stream(sock, stop, b"Transfer-Encoding: chunked\r\n", chunked=True)


def _stream(
    sock: socket.socket, stop: threading.Event, header: bytes, chunked: bool = False
) -> bool:
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n" + header + b"\r\n")
    block = b"<methodResponse>" + b"A" * 2**20
    if chunked:
        block = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    sent = 0
    while not stop.is_set() and sent < 200 * 2**20:
        sock.sendall(block)
        sent += len(block)
    return False


def echo_error(request: Request, sock: socket.socket, _stop: threading.Event) -> bool:
    """HTTP 500 whose page repeats the request, password included."""
    answer(sock, "500 Internal Server Error", b"<html>bad request: " + request.body + b"</html>")
    return True


def echo_body(request: Request, sock: socket.socket, _stop: threading.Event) -> bool:
    """HTTP 200 whose body is the request itself (not a XenAPI response)."""
    answer(sock, "200 OK", request.body, "Content-Type: text/xml")
    return True


def redirect_to(location: str) -> Behaviour:
    """HTTP 307 to ``location``, which a client that follows it would POST the login to."""

    def behave(_request: Request, sock: socket.socket, _stop: threading.Event) -> bool:
        answer(sock, "307 Temporary Redirect", b"", f"Location: {location}")
        return True

    return behave


@dataclass
class Proxy:
    """Forwards to ``upstream`` until ``stall_after`` or ``die_after`` requests were forwarded.

    ``hang_up`` closes each connection after its answer, as servers do with idle keep-alives;
    ``rewrite`` changes each answer's body (given the request) before it is sent.
    """

    upstream: str
    stall_after: int | None = None
    die_after: int | None = None
    hang_up: bool = False
    rewrite: Callable[[Request, bytes], bytes] | None = None
    forwarded: int = 0
    arrived: threading.Condition = field(default_factory=threading.Condition)
    stalled: threading.Event = field(default_factory=threading.Event)
    die: Callable[[], None] = lambda: None
    """Closes the listening socket (``proxy`` sets it)."""

    def behave(self, request: Request, sock: socket.socket, stop: threading.Event) -> bool:
        with self.arrived:
            self.forwarded += 1
            count = self.forwarded
            self.arrived.notify_all()
        if self.die_after is not None and count > self.die_after:
            self.die()  # before this connection closes: the client's next connect is refused
            return False
        if self.stall_after is not None and count > self.stall_after:
            self.stalled.set()
            stop.wait()
            return False
        status, body, content_type = self._forward(request)
        if self.rewrite is not None:
            body = self.rewrite(request, body)
        answer(sock, status, body, f"Content-Type: {content_type}")
        return not self.hang_up

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` requests have arrived; whether they did within ``timeout``."""
        with self.arrived:
            return self.arrived.wait_for(lambda: self.forwarded >= count, timeout)

    def _forward(self, request: Request) -> tuple[str, bytes, str]:
        line = request.head.split(b"\r\n")[0].decode()
        path = line.split()[1]
        host, port = self.upstream.split("//")[1].rstrip("/").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            connection.request("POST", path, request.body, {"Content-Type": "text/xml"})
            response = connection.getresponse()
            body = response.read()
            kind = response.getheader("Content-Type") or "text/xml"
            return f"{response.status} {response.reason}", body, kind
        finally:
            connection.close()


@contextmanager
def proxy(upstream: str, **options: Any) -> Iterator[tuple[Hostile, Proxy]]:
    """A proxy to ``upstream`` (see ``Proxy`` for the options)."""
    relay = Proxy(upstream, **options)
    with hostile_server(relay.behave) as server:
        relay.die = server.close
        yield server, relay


def method_of(request: Request) -> str:
    """The XML-RPC method a request calls."""
    head, _, rest = request.body.partition(b"<methodName>")
    del head
    return rest.partition(b"</methodName>")[0].decode()


def xml_success(value: str) -> bytes:
    """xapi's XML-RPC success envelope around a string."""
    return (
        "<?xml version='1.0'?><methodResponse><params><param><value><struct>"
        "<member><name>Status</name><value>Success</value></member>"
        f"<member><name>Value</name><value>{value}</value></member>"
        "</struct></value></param></params></methodResponse>"
    ).encode()
