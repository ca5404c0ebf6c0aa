"""Ctrl-C and SIGTERM: the first stops the run cleanly, the second exits at once.

The first signal raises ``KeyboardInterrupt``: pytest unwinds, the suite's VMs are removed and
the reports are written with the counts reached so far. A second signal means the user will not
wait for that: the process writes the summary of the counts so far (``on_second``), then exits
with status 3 and one line, never a traceback. A third exits without waiting for the summary.

The first signal also leaves a marker in the report directory (``MARKER``): the run's workers,
which a signal to the controller alone does not reach, see from it that the run is stopping.
From then on nothing is judged (``interrupted``): calls the interrupt cut short, and the
clean-up that removes the run's VMs under the workers' feet, are not the target's doing.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from conformance.errors import ExitCode

__all__ = ["MARKER", "SECOND_SIGNAL_MESSAGE", "install", "interrupted", "on_second", "received"]

MARKER = ".interrupted"
"""The file the first signal leaves in the report directory: the run is stopping."""

SECOND_SIGNAL_MESSAGE = (
    "xapi-conformance: interrupted again; exiting now without clean-up "
    "(suite VMs may remain: their other_config carries xapi-conformance-run)\n"
)


class _Handler:
    """Counts the signals received; ``quiet`` processes (xdist workers) exit without a word."""

    def __init__(self, quiet: bool, marker: Path | None) -> None:
        self.received = 0
        self.quiet = quiet
        self.marker = marker
        self.terminal = -1 if quiet else os.dup(2)  # pytest's capture will redirect fd 2
        self.last_words: Callable[[], None] = lambda: None

    def __call__(self, signum: int, _frame: object) -> None:
        del signum
        self.received += 1
        if self.received == 1:
            if self.marker is not None:
                with contextlib.suppress(OSError):  # the workers then stop on their own signal
                    self.marker.touch()
            raise KeyboardInterrupt
        if self.received == 2:
            if not self.quiet:
                os.write(self.terminal, SECOND_SIGNAL_MESSAGE.encode())
            with contextlib.suppress(BaseException):  # never a traceback, whatever happens
                self.last_words()
        os._exit(ExitCode.TARGET)


_installed: list[_Handler] = []


def install(quiet: bool = False, marker: Path | None = None) -> None:
    """Handle SIGINT and SIGTERM in this process as described above; ``marker`` is the run's
    ``MARKER`` file, left by the first signal (the run's or any of its workers')."""
    handler = _Handler(quiet, marker)
    _installed[:] = [handler]
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def on_second(last_words: Callable[[], None]) -> None:
    """What a second signal does before the process exits (writing the summary so far)."""
    for handler in _installed:
        handler.last_words = last_words


def received() -> int:
    """How many signals this process received since ``install`` (0 when not installed)."""
    return _installed[0].received if _installed else 0


def interrupted() -> bool:
    """Whether the run is stopping: this process received a signal, or another process of the
    run left the marker (False when not installed)."""
    if not _installed:
        return False
    handler = _installed[0]
    return handler.received > 0 or (handler.marker is not None and handler.marker.exists())
