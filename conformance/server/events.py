"""event.from for the embedded server: objects' generations, computed by diffing successive worlds.

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
from models.releases import database_tables
from models.world import World

__all__ = [
    "Batch",
    "Event",
    "EventLog",
    "NextPoll",
    "Poll",
    "parse_token",
    "snapshot_all",
    "snapshot_changes",
    "wait_seconds",
]

CLASSES = ("task", "pool", "vm", "host", "sr")
"""The evented classes, in the order of xapi's datamodel (``Datamodel.all_system``)."""
DEFAULT_WAIT_S = 24 * 3600.0
"""xapi's wait when a timeout is not a usable span (``Xapi_event.from``: 24 hours)."""
_MAX_SPAN_NS = 2**53 - 1
"""The longest span ``Mtime.Span.of_float_ns`` accepts (about 104 days)."""
CAPACITY = 10_000
"""Destroyed objects remembered for tokens to catch up on (their del events); bounds the log's
memory. Live objects are remembered once each, whatever their number of changes."""


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
    """One object's change since a token: ``operation`` add, mod or del; ``snapshot`` the record
    now (None for del). ``id`` is the generation of the change: of the creation for add, of the
    last change for mod and del."""

    id: int
    cls: str
    operation: str
    ref: str
    snapshot: Mapping[str, Value] | None
    timestamp: str = "0.0"

    def as_value(self) -> dict[str, Value]:
        """The event struct as xapi sends it: the id a string; from event.from
        (``Xapi_event.from_inner``) the timestamp "0.0" and no snapshot for del."""
        value: dict[str, Value] = {
            "id": str(self.id),
            "timestamp": self.timestamp,
            "class": self.cls,
            "operation": self.operation,
            "ref": self.ref,
        }
        if self.snapshot is not None:
            value["snapshot"] = dict(self.snapshot)
        return value


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
    """The generation a token has seen up to (0 for ""); None when it cannot be parsed.

    Tokens look like xapi's ``"%020d,%020d"``; only the first number carries meaning here.
    """
    if token == "":
        return 0
    head, sep, tail = token.partition(",")
    if not (sep and head.isdigit() and tail.isdigit()):
        return None
    return int(head)


INJECTABLE = {"VM": "vm", "host": "host", "pool": "pool", "SR": "sr", "task": "task"}
"""event.inject's class names (the database's table names, case and all) → event classes."""


@dataclass
class _Stat:
    """When an object was created and last changed (generations), as xapi's database keeps."""

    created: int
    modified: int


@dataclass
class _Subscription:
    """A session's event.register subscription and the queue position it has read up to."""

    classes: set[str]
    last_id: int


@dataclass(frozen=True)
class _Tombstone:
    created: int
    deleted: int
    cls: str
    ref: str


class EventLog:
    """Every object's creation and last change as generations, as xapi's database keeps them;
    event.from reads the objects changed since a token. Thread-safe.

    As ``Xapi_event.from`` does, an object appears at most once per answer: ``add`` when created
    since the token (whatever changed after), ``mod`` when changed, ``del`` when destroyed, and
    not at all when created and destroyed since the token.
    """

    def __init__(self, world: World, capacity: int = CAPACITY) -> None:
        self._lock = threading.Condition()
        self._generation = 1
        self._capacity = capacity
        self._objects = snapshot_all(world)
        self._stats = {key: _Stat(1, 1) for key in self._objects}
        self._recent: dict[tuple[str, str], int] = dict.fromkeys(self._objects, 1)
        """Live objects by their last change, oldest first (re-inserted on each change)."""
        self._deleted: list[_Tombstone] = []
        self._world = world
        self._listeners: list[Callable[[], None]] = []
        self._queue: list[Event] = []
        """event.next's queue: every change a registered session wants, as it happened."""
        self._queued = 0
        self._subscriptions: dict[str, _Subscription] = {}

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
        """Note the objects created, changed and destroyed since the last recorded world.

        Callers serialise calls to ``record`` (the server state's lock), so the diff base is
        always the world recorded just before.
        """
        objects = snapshot_changes(self._world, world, self._objects)
        self._world = world
        with self._lock:
            for gone in [s for s in self._subscriptions if s not in world.sessions]:
                del self._subscriptions[gone]  # Next.on_session_deleted
            for key, operation, snapshot in _diff(self._objects, objects):
                self._change(key, operation)
                self._enqueue(key, operation, snapshot)
            del self._deleted[: max(0, len(self._deleted) - self._capacity)]
            del self._queue[: max(0, len(self._queue) - self._capacity)]
            self._objects = objects
            self._notify()

    def _change(self, key: tuple[str, str], operation: str) -> None:
        """One more generation for ``key`` (the caller holds the lock)."""
        self._generation += 1
        generation = self._generation
        self._recent.pop(key, None)
        if operation == "del":
            stat = self._stats.pop(key)
            self._deleted.append(_Tombstone(stat.created, generation, *key))
            return
        stat = self._stats.setdefault(key, _Stat(generation, generation))
        stat.modified = generation
        self._recent[key] = generation

    # ---- the legacy event.register / event.next (``Xapi_event.Next``) ------------------------

    def _enqueue(self, key: tuple[str, str], operation: str, snapshot: Mapping[str, Value]) -> None:
        """Queue a change for event.next if a registered session wants it (the caller holds
        the lock); del events keep the record as it was (Eventgen's PreDelete snapshot)."""
        cls, ref = key
        if not any(_wanted_class(cls, ref, s.classes) for s in self._subscriptions.values()):
            return
        stamp = f"{int(time.time())}."  # OCaml's string_of_float (Unix.time ())
        self._queue.append(Event(self._queued, cls, operation, ref, snapshot, stamp))
        self._queued += 1

    def register(self, session: str, classes: Iterable[str], add: bool = True) -> None:
        """event.register (``add``) or event.unregister: the session's subscription, made on
        first use from the queue's current end, gains or loses ``classes``."""
        with self._lock:
            sub = self._subscriptions.setdefault(session, _Subscription(set(), self._queued))
            sub.classes = sub.classes | set(classes) if add else sub.classes - set(classes)

    def current_id(self) -> int:
        """event.get_current_id: the id the next queued event will have (``Next.id``, bumped
        once per change some registered session wants)."""
        with self._lock:
            return self._queued

    def registered(self, session: str) -> bool:
        """Whether ``session`` has called event.register or event.unregister."""
        with self._lock:
            return session in self._subscriptions

    def has_next(self, session: str) -> bool:
        """Whether event.next would answer ``session`` now (also when its subscription ended)."""
        with self._lock:
            events = self._next_events(session, take=False)
            return events is None or bool(events)

    def take_next(self, session: str) -> list[Event] | None:
        """event.next's answer: the queued events the session wants since its last call; None
        once its subscription ended with the session (SESSION_INVALID)."""
        with self._lock:
            return self._next_events(session, take=True)

    def _next_events(self, session: str, take: bool) -> list[Event] | None:
        sub = self._subscriptions.get(session)
        if sub is None:
            return None
        start = max(0, sub.last_id - self._queue[0].id) if self._queue else 0
        events = [e for e in self._queue[start:] if _wanted(e, sub.classes)]
        if take:
            sub.last_id = self._queued
        return events

    def since(self, since: int, classes: set[str]) -> Batch:
        """What event.from answers for a token that has seen generation ``since``."""
        with self._lock:
            events, last = self._collect(since, classes)
            return self._batch(events, last)

    def has_since(self, since: int, classes: set[str]) -> bool:
        """Whether event.from would answer an event for a token at ``since``."""
        with self._lock:
            return bool(self._collect(since, classes)[0])

    def wait_until(self, predicate: Callable[[], bool], seconds: float) -> None:
        """Block until ``predicate`` holds after a change, or ``seconds`` pass.

        ``predicate`` is checked under the log's (re-entrant) lock, so no change is missed
        between a check and the wait.
        """
        with self._lock:
            self._lock.wait_for(predicate, seconds)

    def _collect(self, since: int, classes: set[str]) -> tuple[list[Event], int]:
        """Events after generation ``since`` in ``classes`` (adds, mods, dels, each in class
        then ref order) and the newest generation among the objects matched, as
        ``Xapi_event.collect_events`` finds them (the caller holds the lock)."""
        last = since
        adds: list[Event] = []
        mods: list[Event] = []
        for (cls, ref), modified in reversed(self._recent.items()):
            if modified <= since:
                break
            if not _wanted_class(cls, ref, classes):
                continue
            last = max(last, modified)
            created = self._stats[cls, ref].created
            snapshot = self._objects[cls, ref]
            if created > since:
                adds.append(Event(created, cls, "add", ref, snapshot))
            else:
                mods.append(Event(modified, cls, "mod", ref, snapshot))
        dels: list[Event] = []
        for tomb in reversed(self._deleted):
            if tomb.deleted <= since:
                break
            if _wanted_class(tomb.cls, tomb.ref, classes):
                last = max(last, tomb.deleted)
                if tomb.created <= since:
                    dels.append(Event(tomb.deleted, tomb.cls, "del", tomb.ref, None))
        return [*_ordered(adds), *_ordered(mods), *_ordered(dels)], last

    def inject(self, cls: str, ref: str) -> str | None:
        """event.inject: a change of a live object of class ``cls`` (a table name: ``VM``,
        ``SR``...); the token just before it. None when ``ref`` is no object of that class."""
        with self._lock:
            key = (INJECTABLE.get(cls, ""), ref)
            if key not in self._stats:
                return None
            self._change(key, "mod")
            self._notify()
            return _format(self._generation - 1)

    def _batch(self, events: list[Event], last: int) -> Batch:
        """Events with the token and counts of the same moment (the caller holds the lock)."""
        counts = dict.fromkeys(database_tables(self._world.release), 0)
        for cls, _ref in self._objects:
            counts[cls] = counts.get(cls, 0) + 1
        counts["session"] = len(self._world.sessions)
        return Batch(events, _format(last), counts)


def _ordered(events: list[Event]) -> list[Event]:
    """Class order as xapi's datamodel lists its tables, then refs."""
    return sorted(events, key=lambda e: (CLASSES.index(e.cls), e.ref))


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

    def events(self) -> list[Event] | None:
        """What event.next answers now; None when the session is gone."""
        return self.log.take_next(self.session) if self.alive() else None


@dataclass(frozen=True)
class Batch:
    """What one event.from answers: events, the next token, and live objects per class.

    ``counts`` covers every table of the release's database, zeros included, whatever the
    subscription: xapi (``Xapi_event.from_inner``) counts the rows of every table, and clients
    compare the counts with their caches (Xen Orchestra refetches all tasks when ``task``
    differs). The server counts the objects it has (the evented classes and sessions); it has
    none of the other tables' objects.
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
