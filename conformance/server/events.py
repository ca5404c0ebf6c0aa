"""event.from and event.next for the embedded server: the model's event history behind a lock.

What an event.from or event.next answers is the model's (``models.events``); this module holds
the current ``EventHistory`` and ``NextQueue``, replaces them as worlds are recorded, and lets
long polls wait. A long poll is a ``Poll``: what it waits for, until when, and for which
session. It holds no thread and no lock while it waits: the HTTP front end parks it on the log's
listeners, and the WSGI app (in-process targets) blocks on the log's condition instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conformance.faults.events import HONEST_EVENTS, EventFault
from models.events import (
    CAPACITY,
    DEFAULT_WAIT_S,
    Batch,
    Event,
    EventHistory,
    NextQueue,
    format_token,
    wait_seconds,
)
from models.outcome import Failure
from models.world import World

__all__ = ["EventLog", "NextPoll", "Poll"]


class EventLog:
    """The model's event history and event.next queue of the server's worlds. Thread-safe."""

    def __init__(
        self,
        world: World,
        capacity: int = CAPACITY,
        fault: EventFault = HONEST_EVENTS,
        lock: threading.RLock | None = None,
    ) -> None:
        """``lock``: the re-entrant lock the log's reads and writes take (the server state's,
        so that a world and its events are committed as one; a lock of its own by default)."""
        self._lock = threading.Condition(lock or threading.RLock())
        self._history = EventHistory.start(world, capacity)
        self._queue = NextQueue(capacity=capacity)
        self._fault = fault
        self._listeners: list[Callable[[], None]] = []
        self._waiting = 0
        self.waited = 0
        """How many calls have waited in ``wait_until`` (not ready when they came)."""

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from any thread, so it must be quick) after every change."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            self._listeners.remove(listener)

    def _notify(self) -> None:
        """Wake blocking waiters and listeners (the caller holds the lock)."""
        self._lock.notify_all()
        for listener in self._listeners:
            listener()

    def notify(self) -> None:
        """Wake blocking waiters and listeners: what they wait for may have changed."""
        with self._lock:
            self._notify()

    def record(self, world: World, *, notify: bool = True) -> None:
        """Note the objects created, changed and destroyed since the last recorded world, and
        wake the waiters unless ``notify`` is false (the server state wakes them once ``world``
        is current: a waiter woken earlier reads the world before and sleeps again).

        Callers serialise calls to ``record`` (the server state's lock), so the history's base
        is always the world recorded just before.
        """
        with self._lock:
            before = self._history
            after, found = before.record(world)
            self._history = self._fault.recorded(before, after, found)
            queued = self._fault.queued(before, found)
            self._queue = self._queue.record(queued, world, _timestamp())
            if notify:
                self._notify()

    def inject(self, cls: str, ref: str) -> str | None:
        """event.inject: the token just before a change of ``ref`` of table ``cls``; None
        when there is no such object."""
        with self._lock:
            injected = self._history.inject(cls, ref)
            if injected is None:
                return None
            self._history, queued = self._fault.injected(self._history, *injected)
            self._queue = self._queue.record(queued, self._history.world, _timestamp())
            self._notify()
            return format_token(self._history.generation - 1)

    def subscription(self, classes: Iterable[object]) -> set[str]:
        """The classes a client subscribes to as the server matches them (``class_name``)."""
        return {self._fault.subscribed(str(c)) for c in classes}

    def since(self, since: int, classes: set[str]) -> Batch:
        """What event.from answers for a token that has seen generation ``since``."""
        with self._lock:
            batch = self._history.since(since, classes)
            return self._fault.answered(self._history, since, classes, batch)

    def has_since(self, since: int, classes: set[str]) -> bool:
        """Whether event.from would answer an event for a token at ``since``."""
        with self._lock:
            return bool(self.since(since, classes).events)

    def wait_until(self, predicate: Callable[[], bool], seconds: float) -> None:
        """Block until ``predicate`` holds after a change, or ``seconds`` pass.

        ``predicate`` is checked under the log's (re-entrant) lock, so no change is missed
        between a check and the wait.
        """
        with self._lock:
            if predicate():
                return
            self._waiting += 1
            self.waited += 1
            self._lock.notify_all()  # for ``wait_for_waiters``
            try:
                self._lock.wait_for(predicate, seconds)
            finally:
                self._waiting -= 1

    def wait_for_waiters(self, count: int, seconds: float) -> bool:
        """Block until ``count`` calls wait in ``wait_until`` (or ``seconds`` pass); whether
        they do: a long poll is known to wait without guessing how long it takes to start."""
        with self._lock:
            return self._lock.wait_for(lambda: self._waiting >= count, seconds)

    # ---- the legacy event.register / event.next ------------------------------------------------

    def register(self, session: str, classes: Iterable[str], add: bool = True) -> None:
        """event.register (``add``) or event.unregister of ``classes`` for ``session``."""
        with self._lock:
            self._queue = self._fault.registered(self._queue, session, classes, add)

    def refusal(self, session: str) -> Failure | None:
        """What event.next by ``session`` raises before it waits (SESSION_NOT_REGISTERED)."""
        with self._lock:
            return self._fault.refused(self._queue, session)

    def read_token(self, token: str) -> int | Failure:
        """The generation event.from reads from ``token``, or what it raises."""
        return self._fault.parsed(token)

    def current_id(self) -> int:
        """event.get_current_id: the id the next queued event will have."""
        with self._lock:
            return self._fault.current(self._queue)

    def has_next(self, session: str) -> bool:
        """Whether event.next would answer ``session`` now (also when its subscription ended)."""
        with self._lock:
            events = self._queue.pending(session)
            return events is None or bool(events)

    def take_next(self, session: str) -> tuple[Event, ...] | None:
        """event.next's answer: the queued events the session wants since its last call; None
        once its subscription ended with the session (SESSION_INVALID)."""
        with self._lock:
            self._queue, events = self._fault.taken(self._queue, session)
            return events


def _timestamp() -> str:
    """An event.next event's timestamp: OCaml's ``string_of_float (Unix.time ())``."""
    return f"{int(time.time())}."


@dataclass(frozen=True)
class Poll:
    """One waiting event.from: events after generation ``first`` in ``classes`` until ``deadline``.

    ``alive`` tells whether ``session``, the caller's, still exists: xapi wakes a waiting call with
    SESSION_INVALID when its session is destroyed (``Xapi_event.From.wait2``).
    """

    log: EventLog
    first: int
    classes: frozenset[str]
    deadline: float
    session: str
    alive: Callable[[], bool]

    @classmethod
    def start(
        cls,
        log: EventLog,
        first: int,
        classes: set[str],
        timeout: float,
        session: str,
        alive: Callable[[], bool],
    ) -> Poll:
        """A poll of ``session`` that waits as xapi waits for ``timeout`` seconds, from now."""
        deadline = time.monotonic() + wait_seconds(timeout)
        return cls(log, first, frozenset(classes), deadline, session, alive)

    def remaining(self) -> float:
        """Seconds left before the deadline (0 once it has passed)."""
        return max(0.0, self.deadline - time.monotonic())

    def ready(self) -> bool:
        """Whether to answer now: an event, the deadline, or the session gone."""
        return (
            self.remaining() <= 0
            or not self.alive()
            or self.log.has_since(self.first, set(self.classes))
        )

    def wait_blocking(self) -> None:
        """Block the calling thread until ``ready`` (the WSGI app's way)."""
        self.log.wait_until(self.ready, self.remaining())

    def batch(self) -> Batch | None:
        """What event.from answers now; None when the session is gone."""
        if not self.alive():
            return None
        return self.log.since(self.first, set(self.classes))


@dataclass(frozen=True)
class NextPoll:
    """One waiting event.next: it waits, without a deadline, for an event the session wants,
    or for the session to end (``Xapi_event.Next.wait``: SESSION_INVALID)."""

    log: EventLog
    session: str
    alive: Callable[[], bool]

    def remaining(self) -> float:
        """event.next has no timeout: xapi's own 24-hour wait stands in for it."""
        return DEFAULT_WAIT_S

    def ready(self) -> bool:
        """Whether to answer now: a wanted event, or the session gone."""
        return not self.alive() or self.log.has_next(self.session)

    def wait_blocking(self) -> None:
        """Block the calling thread until ``ready``."""
        self.log.wait_until(self.ready, self.remaining())

    def events(self) -> tuple[Event, ...] | None:
        """What event.next answers now; None when the session is gone."""
        return self.log.take_next(self.session) if self.alive() else None
