"""The embedded server as a process: waitress around the WSGI app, clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType
from typing import Any

import waitress
import waitress.server

from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.state import ServerState

__all__ = ["RunningServer", "serve_forever", "start_in_thread"]


@dataclass
class RunningServer:
    """A started server: its URL, its state, and how to stop it."""

    url: str
    state: ServerState
    _server: Any
    _thread: threading.Thread | None = None

    def stop(self) -> None:
        """Close the listening socket and every connection, then wait for the loop to end."""
        self._server.trigger.pull_trigger(lambda: _shutdown(self._server))
        if self._thread is not None:
            self._thread.join(timeout=10)


def _shutdown(server: Any) -> None:
    """Stop accepting, drop open keep-alive connections, stop the workers; run in the loop thread."""
    server.close()
    for channel in list(server._map.values()):
        channel.close()
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)


def _create(config: ServerConfig) -> tuple[Any, ServerState, str]:
    state = ServerState.from_config(config)
    app = XenAPIApp(state, config.max_request_bytes)
    server = waitress.server.create_server(
        app,
        host=config.host,
        port=config.port,
        threads=config.threads,
        max_request_body_size=config.max_request_bytes,
        channel_timeout=120,
        ident="xapi-conformance",
        clear_untrusted_proxy_headers=True,
    )
    host, port = server.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return server, state, f"http://{shown}:{port}/"


def start_in_thread(config: ServerConfig) -> RunningServer:
    """Start a server on a background thread (for tests and ``run`` against the default target)."""
    server, state, url = _create(config)
    thread = threading.Thread(target=server.run, name="xapi-conformance-server", daemon=True)
    thread.start()
    return RunningServer(url, state, server, thread)


def serve_forever(config: ServerConfig) -> int:
    """Serve until SIGINT or SIGTERM; print the one ready line first. Returns the exit status."""
    server, _state, url = _create(config)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # queue depth chatter under load

    def stop(signum: int, _frame: FrameType | None) -> None:
        del signum
        _shutdown(server)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {url}", flush=True)
    with contextlib.suppress(OSError, ValueError):  # close() inside the loop empties its map
        server.run()
    sys.stdout.flush()
    return 0
