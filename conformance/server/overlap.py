"""A server-side barrier that makes the calls of a race overlap whatever the machine's load.

A race fault shows only while calls overlap: two starts of one VM both succeed only if the
second begins before the first ends. Without help, whether they overlap depends on how soon
the client's threads reach the server, which a loaded machine stretches past any window.
``Overlap`` removes the timing: once ``expect(n)`` arms it, every operation in flight (and every
map edit of a ``stale-write`` fault) holds after its begin until ``n`` calls of VMs have reached
the server since then (each counted once it has been checked, so its begin happened while the
held ones were in flight), or until its task is cancelled. Tests arm it around a race they send;
unarmed, it holds nothing.
"""

from __future__ import annotations

import threading

__all__ = ["HOLD_LIMIT_S", "Overlap", "counted"]

HOLD_LIMIT_S = 60.0
"""The longest an operation holds at an armed barrier whose calls never all come: then it goes on
(and the race the test expected does not show), rather than hanging the server."""


def counted(method: str) -> bool:
    """Whether a call of ``method`` counts at the barrier: a call of a VM (sync or Async) or a
    task.cancel, not the polls of a task nor event reads, which a lane makes while it waits."""
    name = method.removeprefix("Async.")
    return name.startswith("VM.") or name == "task.cancel"


class Overlap:
    """Holds operations in flight until the calls of a race have all been checked."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._expected = 0
        self._arrived: set[str] = set()

    def expect(self, calls: int) -> None:
        """Arm the barrier for a race of ``calls`` calls (0 disarms it)."""
        with self._changed:
            self._expected = calls
            self._arrived.clear()
            self._changed.notify_all()

    def arrive(self, key: str) -> None:
        """The call ``key`` (its task ref) has been checked; counted once however often it is
        checked again (a call that waits out a conflict tries its begin more than once)."""
        with self._changed:
            self._arrived.add(key)
            self._changed.notify_all()

    def hold(self, cancelled: threading.Event) -> None:
        """Wait until every expected call has arrived, or ``cancelled`` is set."""
        with self._changed:
            self._changed.wait_for(
                lambda: cancelled.is_set() or len(self._arrived) >= self._expected, HOLD_LIMIT_S
            )

    def cancelled(self) -> None:
        """A cancel was asked for: held operations look at their ``cancelled`` event again."""
        with self._changed:
            self._changed.notify_all()
