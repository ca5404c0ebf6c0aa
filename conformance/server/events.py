"""event.from for the embedded server: a change log computed by diffing successive worlds.

A long poll is a ``Poll``: what it waits for, until when, and for which session. It holds no
thread and no lock while it waits: the HTTP front end parks it on the log's listeners, and the
WSGI app (in-process targets) blocks on the log's condition instead.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from models.others import host_record, pool_record, task_record
from models.outcome import Value
from models.records import read_record
from models.world import World

__all__ = [
    "Batch",
    "Event",
    "EventLog",
    "Poll",
    "parse_token",
    "snapshot_all",
    "snapshot_changes",
    "wait_seconds",
]

CLASSES = ("vm", "host", "pool", "sr", "task")
DEFAULT_WAIT_S = 24 * 3600.0
"""xapi's wait when a timeout is not a usable span (``Xapi_event.from``: 24 hours)."""
_MAX_SPAN_NS = 2**53 - 1
"""The longest span ``Mtime.Span.of_float_ns`` accepts (about 104 days)."""
CAPACITY = 10_000
"""Events kept for tokens to catch up on; bounds the log's memory (each holds a snapshot)."""


def wait_seconds(timeout: float) -> float:
    """How long event.from waits for ``timeout`` seconds, as xapi decides it.

    ``Clock.Timer.s_to_span`` refuses NaN, a negative span and one beyond about 104 days
    (2**53 - 1 ns after rounding half away from zero); xapi then waits 24 hours.
    """
    if math.isnan(timeout):
        return DEFAULT_WAIT_S
    scaled = timeout * 1e9
    whole = math.floor(abs(scaled)) if math.isfinite(scaled) else math.inf
    if abs(scaled) - whole >= 0.5:  # OCaml's Float.round: half away from zero, exactly
        whole += 1
    nanoseconds = math.copysign(whole, scaled)
    if nanoseconds < 0 or nanoseconds > _MAX_SPAN_NS:
        return DEFAULT_WAIT_S
    return nanoseconds / 1e9


@dataclass(frozen=True)
class Event:
    """One change: ``operation`` is add, mod or del; ``snapshot`` the record after it."""

    id: int
    timestamp: float
    cls: str
    operation: str
    ref: str
    snapshot: Mapping[str, Value]

    def as_value(self) -> dict[str, Value]:
        """The event struct as xapi sends it."""
        return {
            "id": self.id,
            "timestamp": f"{self.timestamp:.6f}",
            "class": self.cls,
            "operation": self.operation,
            "ref": self.ref,
            "snapshot": dict(self.snapshot),
        }


def snapshot_all(world: World) -> dict[tuple[str, str], Mapping[str, Value]]:
    """Every object of every evented class: (class, ref) → record."""
    objects: dict[tuple[str, str], Mapping[str, Value]] = {}
    for ref in world.vms:
        objects["vm", ref] = read_record(world, ref)
    for ref, host in world.hosts.items():
        objects["host", ref] = host_record(world, host)
    objects["pool", world.pool.ref] = pool_record(world)
    for ref, sr in world.srs.items():
        objects["sr", ref] = dict(sr)
    for ref, task in world.tasks.items():
        objects["task", ref] = task_record(task)
    return objects


def _affected_vms(before: World, after: World) -> set[str]:
    """VMs whose record a client would see change: edited ones and those they relate to."""
    changed = {r for r, vm in after.vms.items() if before.vms.get(r) is not vm}
    changed |= set(before.vms) - set(after.vms)
    related: set[str] = set()
    for ref in changed:
        for world in (before, after):
            vm = world.vms.get(ref)
            if vm is not None:
                related.update(str(vm[name]) for name in ("snapshot_of", "parent"))
    return changed | (related & set(after.vms))


def snapshot_changes(
    before: World, after: World, objects: Mapping[tuple[str, str], Mapping[str, Value]]
) -> dict[tuple[str, str], Mapping[str, Value]]:
    """``snapshot_all(after)``, recomputing only what changed since ``before``."""
    result = {key: snap for key, snap in objects.items() if key[0] in ("vm", "task")}
    for ref in _affected_vms(before, after):
        result.pop(("vm", ref), None)
        if ref in after.vms:
            result["vm", ref] = read_record(after, ref)
    for key in [k for k in result if k[0] == "task" and k[1] not in after.tasks]:
        del result[key]
    for ref, task in after.tasks.items():
        if before.tasks.get(ref) is not task or ("task", ref) not in result:
            result["task", ref] = task_record(task)
    for ref, host in after.hosts.items():
        result["host", ref] = host_record(after, host)
    result["pool", after.pool.ref] = pool_record(after)
    for ref, sr in after.srs.items():
        result["sr", ref] = dict(sr)
    return result


def parse_token(token: str) -> int | None:
    """The id of the first event a token has not seen; None when it cannot be parsed.

    Tokens look like xapi's ``"%020d,%020d"``; only the first number carries meaning here.
    """
    head, sep, tail = token.partition(",")
    if not (sep and head.isdigit() and tail.isdigit()):
        return None
    return int(head)


class EventLog:
    """A bounded log of events with a condition to wait on; thread-safe."""

    def __init__(self, world: World, capacity: int = CAPACITY) -> None:
        self._lock = threading.Condition()
        self._events: list[Event] = []
        self._next_id = 0
        self._capacity = capacity
        self._objects = snapshot_all(world)
        self._world = world
        self._listeners: list[Callable[[], None]] = []

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

    def record(self, world: World) -> None:
        """Append the differences between the last recorded world and ``world``.

        Callers serialise calls to ``record`` (the server state's lock), so the diff base is
        always the world recorded just before.
        """
        objects = snapshot_changes(self._world, world, self._objects)
        self._world = world
        with self._lock:
            now = time.time()
            for (cls, ref), operation, snapshot in _diff(self._objects, objects):
                self._events.append(Event(self._next_id, now, cls, operation, ref, snapshot))
                self._next_id += 1
            del self._events[: max(0, len(self._events) - self._capacity)]
            self._objects = objects
            self._notify()

    def since(self, first: int, classes: set[str]) -> Batch:
        """Events from id ``first`` on in ``classes``, at once (empty when there are none)."""
        with self._lock:
            return self._batch(self._found(first, classes))

    def has_since(self, first: int, classes: set[str]) -> bool:
        """Whether an event from id ``first`` on in ``classes`` is in the log."""
        with self._lock:
            return any(True for _ in self._matching(first, classes))

    def wait_until(self, predicate: Callable[[], bool], seconds: float) -> None:
        """Block until ``predicate`` holds after a change, or ``seconds`` pass.

        ``predicate`` is checked under the log's (re-entrant) lock, so no change is missed
        between a check and the wait.
        """
        with self._lock:
            self._lock.wait_for(predicate, seconds)

    def _found(self, first: int, classes: set[str]) -> list[Event]:
        return list(self._matching(first, classes))

    def _matching(self, first: int, classes: set[str]) -> Iterable[Event]:
        """Events from id ``first`` on in ``classes``; ids are consecutive, so slice, not scan."""
        start = max(0, first - self._events[0].id) if self._events else 0
        return (e for e in self._events[start:] if _wanted(e, classes))

    def current(self, classes: set[str]) -> Batch:
        """Every live object as an ``add`` event: what a "" token returns."""
        with self._lock:
            now = time.time()
            events = [
                Event(-1, now, cls, "add", ref, snap)
                for (cls, ref), snap in self._objects.items()
                if _wanted_class(cls, ref, classes)
            ]
            return self._batch(events)

    def inject(self, cls: str, ref: str) -> str | None:
        """event.inject: a ``mod`` event for a live object; the token just before it.

        None when no such object exists.
        """
        with self._lock:
            snapshot = self._objects.get((cls.lower(), ref))
            if snapshot is None:
                return None
            token = _format(self._next_id)
            self._events.append(
                Event(self._next_id, time.time(), cls.lower(), "mod", ref, snapshot)
            )
            self._next_id += 1
            self._notify()
            return token

    def _batch(self, events: list[Event]) -> Batch:
        """Events with the token and counts of the same moment (the caller holds the lock)."""
        counts = dict.fromkeys(CLASSES, 0)
        for cls, _ref in self._objects:
            counts[cls] = counts.get(cls, 0) + 1
        return Batch(events, _format(self._next_id), counts)


@dataclass(frozen=True)
class Poll:
    """One waiting event.from: events from ``first`` in ``classes`` until ``deadline``.

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
class Batch:
    """What one event.from answers: events, the next token, and live objects per class.

    ``counts`` covers every class, zeros included, whatever the subscription: xapi
    (``Xapi_event.from_inner``) counts every table, and clients compare the counts with their
    caches (Xen Orchestra refetches all tasks when ``task`` differs).
    """

    events: list[Event]
    token: str
    counts: dict[str, int]


def _format(next_id: int) -> str:
    return f"{next_id:020d},{0:020d}"


def _wanted(event: Event, classes: set[str]) -> bool:
    return _wanted_class(event.cls, event.ref, classes)


def _wanted_class(cls: str, ref: str, classes: set[str]) -> bool:
    return "*" in classes or cls in classes or f"{cls}/{ref}" in classes


def _diff(
    before: Mapping[tuple[str, str], Mapping[str, Value]],
    after: Mapping[tuple[str, str], Mapping[str, Value]],
) -> Iterable[tuple[tuple[str, str], str, Mapping[str, Value]]]:
    for key, snapshot in after.items():
        if key not in before:
            yield key, "add", snapshot
        elif before[key] != snapshot:
            yield key, "mod", snapshot
    for key, snapshot in before.items():
        if key not in after:
            yield key, "del", snapshot
