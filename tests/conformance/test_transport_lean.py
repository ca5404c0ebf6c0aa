"""The transport's lean path answers exactly as h11 does: the same request bytes on the wire,
the same answer or the same error, the same connection kept or dropped, for plain answers and
for every kind it hands to h11 (real loopback sockets, no mocks)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from conformance.targets import transport
from conformance.targets.base import TargetSettings
from conformance.targets.transport import HttpTransport
from tests.conformance.hostile import Request, hostile_server

BODY = b"<methodCall>x</methodCall>"
CLOSE = b""
"""The server closes its side here."""
PLAIN = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\nhello"
ANSWERS = {
    "plain": [PLAIN],
    "plain, head and body apart": [PLAIN[:20], PLAIN[20:-3], PLAIN[-3:]],
    "no reason": [b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"],
    "connection close": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"],
    "keep-alive, close": [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: x, Close\r\n\r\nok"
    ],
    "a location": [b"HTTP/1.1 200 OK\r\nLocation: /there\r\nContent-Length: 2\r\n\r\nok"],
    "chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
    "informational first": [b"HTTP/1.1 100 Continue\r\n\r\n" + PLAIN],
    "HTTP/1.0": [b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
    "line feeds alone": [b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"],
    "a folded header": [b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 2\r\n\r\nok"],
    "two lengths": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"],
    "a length not a number": [b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"],
    "no length": [b"HTTP/1.1 200 OK\r\n\r\nok", CLOSE],
    "over the size bound": [b"HTTP/1.1 200 OK\r\nContent-Length: 999999\r\n\r\nok"],
    "bytes past the body": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200"],
    "ends in the head": [b"HTTP/1.1 200 OK\r\nContent-Le", CLOSE],
    "ends in the body": [b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok", CLOSE],
    "ends at once": [CLOSE],
    "not HTTP": [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", CLOSE],
    "a redirect": [
        b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n"
    ],
    "a server error": [b"HTTP/1.1 500 Internal Error\r\nContent-Length: 4\r\n\r\noops"],
}


@contextmanager
def _h11_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with monkeypatch.context() as patched:
        patched.setattr(transport, "_lean_request", lambda *_args: None)
        yield


def _exchange(pieces: list[bytes]) -> tuple[object, list[Request], bool]:
    """Two posts to a server that answers the first with ``pieces`` and the second plainly:
    what each gave (an answer or an error's type and text), the requests it read, and whether
    the second came over the first's connection."""
    connections: list[socket.socket] = []

    def behave(request: Request, sock: socket.socket, _stop: threading.Event) -> bool:
        connections.append(sock)
        if len(connections) > 1:
            sock.sendall(PLAIN)
            return True
        for piece in pieces:
            if piece is CLOSE:
                sock.shutdown(socket.SHUT_WR)
                return False
            sock.sendall(piece)
        return True

    results: list[object] = []
    with hostile_server(behave) as server:
        client = HttpTransport(server.url, TargetSettings(timeout=30.0, max_response_bytes=4096))
        for _ in range(2):
            try:
                results.append(client.post("/", BODY, "text/xml"))
            except Exception as error:
                results.append((type(error).__name__, str(error)))
        client.close()
        port = server.url.rsplit(":", 1)[1].strip("/").encode()
        requests = [Request(r.head.replace(port, b"PORT"), r.body) for r in server.requests]
    return results, requests, len(connections) == 2 and connections[0] is connections[1]


@pytest.mark.parametrize("pieces", list(ANSWERS.values()), ids=list(ANSWERS))
def test_the_lean_path_answers_as_h11_does(
    pieces: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = _exchange(pieces)
    with _h11_only(monkeypatch):
        plain = _exchange(pieces)
    assert lean == plain


def test_a_plain_answer_takes_the_lean_path_and_others_go_to_h11() -> None:
    taken = transport._lean_answer  # the lean reader, not a helper of the test
    seen: list[object] = []

    def spy(*args: object) -> object:
        answer = taken(*args)  # type: ignore[arg-type]
        seen.append(answer is not None)
        return answer

    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(transport, "_lean_answer", spy)
        results, requests, kept = _exchange(ANSWERS["plain"])
        assert seen == [True, True] and kept
        seen.clear()
        _exchange(ANSWERS["chunked"])
        assert seen == [False]  # h11 read it, and the connection keeps to h11
    assert results[0] == transport.HttpAnswer(200, "", b"hello")
    assert requests[0].head.startswith(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:PORT\r\n")
