"""Ctrl-C and SIGTERM: the first stops the run cleanly, the second exits at once.

The first signal raises ``KeyboardInterrupt``: pytest unwinds, the suite's VMs are removed and
the reports are written with the counts reached so far. A second signal means the user will not
wait for that: the process exits with status 3 and one line, never a traceback.
"""

from __future__ import annotations

import os
import signal

from conformance.errors import ExitCode

__all__ = ["SECOND_SIGNAL_MESSAGE", "install"]

SECOND_SIGNAL_MESSAGE = (
    "xapi-conformance: interrupted again; exiting now without clean-up "
    "(suite VMs may remain: their other_config carries xapi-conformance-run)\n"
)


class _Handler:
    """Counts the signals received; ``quiet`` processes (xdist workers) exit without a word."""

    def __init__(self, quiet: bool) -> None:
        self.received = 0
        self.quiet = quiet
        self.terminal = -1 if quiet else os.dup(2)  # pytest's capture will redirect fd 2

    def __call__(self, signum: int, _frame: object) -> None:
        del signum
        self.received += 1
        if self.received == 1:
            raise KeyboardInterrupt
        if not self.quiet:
            os.write(self.terminal, SECOND_SIGNAL_MESSAGE.encode())
        os._exit(ExitCode.TARGET)


def install(quiet: bool = False) -> None:
    """Handle SIGINT and SIGTERM in this process as described above."""
    handler = _Handler(quiet)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
