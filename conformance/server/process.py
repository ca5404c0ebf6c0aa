"""The embedded server as a process or a thread: the HTTP front end on its own asyncio loop.

Stopping is done on the loop that serves: the listening socket closes, every connection task
(parked long polls included) is cancelled and awaited, then the loop ends. Nothing is closed from
another thread, so no file descriptor is closed twice or written after it is closed.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from dataclasses import dataclass, field

from conformance.faults import races
from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.http import FrontEnd
from conformance.server.latency import SlowCalls
from conformance.server.profiles import NO_LATENCY
from conformance.server.state import ServerState

__all__ = ["RunningServer", "serve_forever", "start_in_thread"]

STOP_TIMEOUT_S = 10.0


@dataclass
class RunningServer:
    """A started server: its URL, its state, and how to stop it."""

    url: str
    state: ServerState
    front: FrontEnd
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _stop_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    def stop(self) -> None:
        """Close the listener and every connection, end the loop; a second call does nothing."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        if self._loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(self.front.close(), self._loop)
            closing.result(timeout=STOP_TIMEOUT_S)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=STOP_TIMEOUT_S)


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _front_end(config: ServerConfig) -> tuple[FrontEnd, ServerState]:
    state = ServerState.from_config(config)
    slow = SlowCalls(config.latency) if config.latency else None
    if slow is None and races(state.faults):
        slow = SlowCalls(NO_LATENCY)  # a race fault needs its calls to take time
    return FrontEnd(XenAPIApp(state, config.max_request_bytes, slow), config), state


def start_in_thread(config: ServerConfig) -> RunningServer:
    """Start a server on a background thread (for tests and ``run`` against the default target).

    Raises what binding raises (e.g. ``OSError`` for a port in use) in the caller's thread.
    """
    front, state = _front_end(config)
    loop = asyncio.new_event_loop()
    started: list[tuple[str, int] | BaseException] = []
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.append(loop.run_until_complete(front.start()))
        except BaseException as error:  # handed to the caller below
            started.append(error)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, name="xapi-conformance-server", daemon=True)
    thread.start()
    ready.wait()
    if isinstance(started[0], BaseException):
        raise started[0]
    return RunningServer(_url(*started[0]), state, front, loop, thread)


def serve_forever(config: ServerConfig) -> int:
    """Serve until SIGINT or SIGTERM; print the one ready line first. Returns the exit status."""
    return asyncio.run(_serve(config))


async def _serve(config: ServerConfig) -> int:
    front, _state = _front_end(config)
    url = _url(*await front.start())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening on {url}", flush=True)
    await stop.wait()
    await front.close()
    sys.stdout.flush()
    return 0
