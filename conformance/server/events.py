"""event.from for the embedded server: a change log computed by diffing successive worlds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from models.others import host_record, pool_record, task_record
from models.outcome import Value
from models.records import read_record
from models.world import World

__all__ = ["Batch", "Event", "EventLog", "parse_token", "snapshot_all", "snapshot_changes"]

CLASSES = ("vm", "host", "pool", "sr", "task")
MAX_WAIT_S = 60.0


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

    def __init__(self, world: World, capacity: int = 100_000) -> None:
        self._lock = threading.Condition()
        self._events: list[Event] = []
        self._next_id = 0
        self._capacity = capacity
        self._objects = snapshot_all(world)
        self._world = world

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
            self._lock.notify_all()

    def since(self, first: int, classes: set[str], timeout: float) -> Batch:
        """Events from id ``first`` on in ``classes``, waiting up to ``timeout`` for one."""
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT_S)
        with self._lock:
            while True:
                found = [e for e in self._events if e.id >= first and _wanted(e, classes)]
                remaining = deadline - time.monotonic()
                if found or remaining <= 0:
                    return self._batch(found)
                self._lock.wait(remaining)

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
            self._lock.notify_all()
            return token

    def _batch(self, events: list[Event]) -> Batch:
        """Events with the token and counts of the same moment (the caller holds the lock)."""
        counts = dict.fromkeys(CLASSES, 0)
        for cls, _ref in self._objects:
            counts[cls] = counts.get(cls, 0) + 1
        return Batch(events, _format(self._next_id), counts)


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
