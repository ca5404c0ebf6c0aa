"""The embedded server's HTTP/1.1 front end: asyncio and h11, no thread per connection.

Each connection is a coroutine and h11 (python-hyper's HTTP/1.1 state machine) parses it. The
model runs on a small thread pool; an event.from long poll waits as a coroutine parked on the
event log, holding neither a thread nor the model's lock, and ends early if its client hangs up.
Idle connections, slow requests and unread responses time out (``ServerConfig``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import h11

from conformance.server.app import (
    TOO_LARGE,
    Pending,
    Reply,
    XenAPIApp,
    error_page,
    log_internal_error,
)
from conformance.server.config import ServerConfig

__all__ = ["FrontEnd"]

RECV_BYTES = 65536
MAX_HEADER_BYTES = 16 * 1024
LINGER_S = 2.0
"""After refusing a request unread, how long its body may still be drained before closing."""


class _Closed(Exception):
    """The client went away, or stayed silent past the idle timeout."""


class _Timeout(Exception):
    """A request began but did not arrive in time."""


class FrontEnd:
    """Serves ``app`` over HTTP/1.1 on an asyncio loop (start and close on that loop)."""

    def __init__(self, app: XenAPIApp, config: ServerConfig) -> None:
        self.app = app
        self.config = config
        self._parked = 0
        self._parking = threading.Condition()
        self._pool = ThreadPoolExecutor(config.threads, thread_name_prefix="xapi-model")
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def parked(self) -> int:
        """Long polls waiting right now (for tests and benchmarks)."""
        return self._parked

    def park(self, change: int) -> None:
        """One more (1) or one fewer (-1) long poll waiting."""
        with self._parking:
            self._parked += change
            self._parking.notify_all()

    def wait_parked(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` long polls are waiting; whether they were within ``timeout``."""
        with self._parking:
            return self._parking.wait_for(lambda: self._parked == count, timeout)

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound host and port."""
        self._slots = asyncio.Semaphore(self.config.max_connections)
        self._server = await asyncio.start_server(
            self._accept, self.config.host, self.config.port, backlog=128
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def close(self) -> None:
        """Stop listening, end every connection (parked polls included), drop queued work."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None and self._slots is not None
        self._connections.add(task)
        try:
            async with self._slots:
                await _Connection(self, reader, writer).serve()
        except (_Closed, ConnectionError, TimeoutError, asyncio.CancelledError):
            pass  # the client left, or did not read its answer in time
        except Exception as error:
            log_internal_error(error)
        finally:
            self._connections.discard(task)
            writer.close()

    async def run_model(self, work: Callable[[], Reply | Pending]) -> Reply | Pending:
        """Run ``work`` on the model's thread pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)


class _Connection:
    """One client connection: requests in, replies out, in order."""

    def __init__(
        self, front: FrontEnd, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.front = front
        self.config = front.config
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.deadline = 0.0

    async def serve(self) -> None:
        """Answer requests until the client closes, a timeout, or a reply that closes."""
        while True:
            try:
                request = await self._request_head()
                reply, keep = await self._handle(request)
            except h11.RemoteProtocolError as error:
                status = error.error_status_hint if error.error_status_hint == 431 else 400
                await self._send_last(error_page(status))
                return
            except _Timeout:
                await self._send_last(error_page(408))
                return
            await self._send(reply, keep)
            if not keep:
                await self._linger()
                return
            if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                return
            self.h11.start_next_cycle()

    # ---- reading --------------------------------------------------------------------------

    async def _request_head(self) -> h11.Request:
        """The next request's head; waits ``idle_timeout`` for its first byte."""
        started = False
        while True:
            event = self.h11.next_event()
            if isinstance(event, h11.Request):
                if not started:
                    self.deadline = time.monotonic() + self.config.request_timeout
                return event
            if event is not h11.NEED_DATA:
                raise _Closed
            if not started:
                await self._receive(self.config.idle_timeout, idle=True)
                started = True
                self.deadline = time.monotonic() + self.config.request_timeout
            else:
                await self._receive(self._read_timeout())

    async def _body(self) -> bytes | None:
        """The request's body; None once it is larger than the limit."""
        if self.h11.they_are_waiting_for_100_continue:
            await self._write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                await self._receive(self._read_timeout())
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.front.app.max_request_bytes:
                    return None
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise _Closed

    def _read_timeout(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        return min(self.config.read_timeout, remaining)

    async def _receive(self, timeout: float, idle: bool = False) -> None:
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(RECV_BYTES)
        except TimeoutError:
            raise (_Closed if idle else _Timeout) from None
        self.h11.receive_data(data)

    # ---- answering ------------------------------------------------------------------------

    async def _handle(self, request: h11.Request) -> tuple[Reply, bool]:
        """The reply, and whether the connection may carry another request."""
        app = self.front.app
        path = request.target.decode("latin-1").partition("?")[0]
        refused = app.refuse(request.method.decode("latin-1"), path, _length(request))
        if refused is not None:
            return refused, False
        body = await self._body()
        if body is None:
            return TOO_LARGE, False
        answer = await self.front.run_model(lambda: app.answer(path, body))
        if isinstance(answer, Pending):
            await self._park(answer)
            answer = await self.front.run_model(answer.finish)
        assert isinstance(answer, Reply)
        return answer, True

    async def _park(self, pending: Pending) -> None:
        """Wait, holding no thread, until the poll is ready; _Closed if the client leaves."""
        poll = pending.poll
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        poll.log.add_listener(notify)
        self.front.park(1)
        hangup = asyncio.ensure_future(self._hangup())
        try:
            while True:
                wake.clear()
                if poll.ready():
                    return
                waiter = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait(
                        {waiter, hangup},
                        timeout=poll.remaining(),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    waiter.cancel()
                if hangup.done():
                    hangup.result()
        finally:
            self.front.park(-1)
            poll.log.remove_listener(notify)
            hangup.cancel()

    async def _hangup(self) -> None:
        """Read while a poll waits: raises _Closed when the client closes its side."""
        while True:
            data = await self.reader.read(RECV_BYTES)
            if not data:
                raise _Closed
            self.h11.receive_data(data)  # a pipelined request, kept for the next cycle
            if len(self.h11.trailing_data[0]) > MAX_HEADER_BYTES:
                await asyncio.Event().wait()  # enough buffered: stop reading, keep waiting

    # ---- writing --------------------------------------------------------------------------

    async def _send(self, reply: Reply, keep: bool) -> None:
        headers = [
            ("Content-Type", reply.content_type),
            ("Content-Length", str(len(reply.body))),
        ]
        if not keep:
            headers.append(("Connection", "close"))
        reason = reply.status_line.partition(" ")[2].encode()
        data = self.h11.send(h11.Response(status_code=reply.status, headers=headers, reason=reason))
        data = (data or b"") + (self.h11.send(h11.Data(data=reply.body)) or b"")
        await self._write(data + (self.h11.send(h11.EndOfMessage()) or b""))

    async def _send_last(self, reply: Reply) -> None:
        """An error reply before closing, when the protocol state still allows one."""
        if self.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            with contextlib.suppress(h11.LocalProtocolError, ConnectionError, TimeoutError):
                await self._send(reply, keep=False)

    async def _write(self, data: bytes | None) -> None:
        if data:
            self.writer.write(data)
            async with asyncio.timeout(self.config.request_timeout):
                await self.writer.drain()

    async def _linger(self) -> None:
        """Half-close, then drain what the client still sends, so it reads our reply, not a reset."""
        with contextlib.suppress(OSError, RuntimeError):
            if self.writer.can_write_eof():
                self.writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(LINGER_S):
                while await self.reader.read(RECV_BYTES):
                    pass


def _length(request: h11.Request) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)
    return None
