"""What event.from and event.next answer after a sequence of worlds (xapi_event.ml).

xapi's database stamps every row with the generation of its creation and of its last change, and
remembers deleted rows for a while. ``event.from(classes, token, timeout)`` answers the objects
of the subscribed classes changed since the token's generation, each object at most once
(``Xapi_event.from_inner`` over ``collect_events``): ``add`` when created since the token
(whatever changed after), ``mod`` when changed, ``del`` when destroyed, and nothing when created
and destroyed since the token. The snapshot is the record as it is now.

``EventHistory`` is that bookkeeping as a value: ``record(world)`` gives the history after a
world change, ``since(generation, classes)`` the answer. The legacy ``event.register`` /
``event.next`` queue (``Xapi_event.Next``) is ``NextQueue``. Both are pure; the embedded server
holds them behind a lock and the suite builds its own from the model's worlds, so the server and
the judge follow the same rules.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from models.others import host_record, pool_record, task_record
from models.outcome import Failure, Int32, Value
from models.records import read_record
from models.releases import database_tables
from models.world import World

__all__ = [
    "CAPACITY",
    "CLASSES",
    "DEFAULT_WAIT_S",
    "INJECTABLE",
    "Batch",
    "Change",
    "Event",
    "EventHistory",
    "NextQueue",
    "class_name",
    "event_order",
    "format_token",
    "ocaml_int64",
    "parse_token",
    "read_token",
    "snapshot_all",
    "snapshot_changes",
    "trackid",
    "wait_seconds",
    "wanted",
]

Key = tuple[str, str]
"""An evented object: (class, ref)."""
Snapshot = Mapping[str, Value]

CLASSES = ("task", "pool", "vm", "host", "sr")
"""The evented classes, in the order of xapi's datamodel (``Datamodel.all_system``)."""
DEFAULT_WAIT_S = 24 * 3600.0
"""xapi's wait when a timeout is not a usable span (``Xapi_event.from``: 24 hours)."""
_MAX_SPAN_NS = 2**53 - 1
"""The longest span ``Mtime.Span.of_float_ns`` accepts (about 104 days)."""
CAPACITY = 10_000
"""Destroyed objects remembered for tokens to catch up on (their del events), and event.next's
queue length; bounds the history's memory. Live objects are remembered once each, whatever
their number of changes."""
OPERATION_ORDER = ("add", "mod", "del")
"""The order of operations in an event.from answer."""
INJECTABLE = {"VM": "vm", "host": "host", "pool": "pool", "SR": "sr", "task": "task"}
"""event.inject's class names (the database's table names, case and all) → event classes."""


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


def parse_token(token: str) -> int | None:
    """The generation a token has seen up to (0 for ""); None when xapi cannot parse it
    (``Xapi_event.Token.of_string``: EVENT_FROM_TOKEN_PARSE_FAILURE).

    xapi splits the token at every comma and reads exactly two parts with OCaml's
    ``Int64.of_string`` (``ocaml_int64``), so ``"-1,0"`` and ``"0x10,0"`` are tokens too. Only
    the first number carries meaning here: the second counts messages, which the model has
    none of.
    """
    if token == "":
        return 0
    parts = token.split(",")
    if len(parts) != 2:
        return None
    generation, messages = (ocaml_int64(part) for part in parts)
    return generation if messages is not None else None


def read_token(token: str) -> int | Failure:
    """The generation ``token`` has seen, or what event.from raises when it cannot read it:
    EVENT_FROM_TOKEN_PARSE_FAILURE [token] (``Xapi_event.from``), before it waits."""
    generation = parse_token(token)
    return Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", (token,)) if generation is None else generation


def trackid(session: str) -> str:
    """How xapi names a session in errors and logs (``Context.trackid_of_session``): the hex
    MD5 of its ref, so that the ref, a secret, is never shown."""
    return "trackid=" + hashlib.md5(session.encode(), usedforsecurity=False).hexdigest()


_BASES = {"x": 16, "o": 8, "b": 2, "u": 10}
_HEX = "0123456789abcdef"


def ocaml_int64(text: str) -> int | None:
    """OCaml's ``Int64.of_string``, or None where it fails: an optional sign, a ``0x``, ``0o``,
    ``0b`` or ``0u`` prefix (unsigned: up to 2**64 - 1, wrapping to negative), ``_`` anywhere
    after the first digit, ASCII digits only, plain decimals within the int64 range."""
    sign, rest = (-1, text[1:]) if text[:1] == "-" else (1, text.removeprefix("+"))
    base, signed = 10, True
    if rest[:1] == "0" and rest[1:2].lower() in _BASES:
        base, signed = _BASES[rest[1:2].lower()], False
        rest = rest[2:]
    digits = set(_HEX[:base])
    if not rest or rest[0].lower() not in digits:
        return None
    if any(c != "_" and c.lower() not in digits for c in rest):
        return None
    value = int(rest.replace("_", ""), base)
    if value >= 1 << 64 or (signed and value > (1 << 63) - (sign > 0)):
        return None
    return ((sign * value + (1 << 63)) % (1 << 64)) - (1 << 63)


def format_token(generation: int) -> str:
    """The token of a client that has seen up to ``generation``."""
    return f"{generation:020d},{0:020d}"


def class_name(subscription: str) -> str:
    """A subscription as xapi matches it: the class case-insensitively, the ref of a
    ``vm/REF`` subscription keeping its case (``Subscription.of_string``)."""
    cls, sep, ref = subscription.partition("/")
    return f"{cls.lower()}{sep}{ref}"


def wanted(cls: str, ref: str, classes: Iterable[str]) -> bool:
    """Whether an object of ``cls`` is in a subscription to ``classes`` (``*``, a class, or
    ``class/ref``; ``Subscription.object_matches``)."""
    subscribed = set(classes)
    return "*" in subscribed or cls in subscribed or f"{cls}/{ref}" in subscribed


@dataclass(frozen=True)
class Event:
    """One object's change since a token: ``operation`` add, mod or del; ``snapshot`` the record
    now (None for del from event.from). ``id`` is the generation of the change: of the creation
    for add, of the last change for mod and del."""

    id: int
    cls: str
    operation: str
    ref: str
    snapshot: Snapshot | None
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


@dataclass(frozen=True)
class Batch:
    """What one event.from answers: events, the next token, and live objects per class.

    ``counts`` covers every table of the release's database, zeros included, whatever the
    subscription: xapi (``Xapi_event.from_inner``) counts the rows of every table, and clients
    compare the counts with their caches (Xen Orchestra refetches all tasks when ``task``
    differs). The model counts the objects it has (the evented classes and sessions); it has
    none of the other tables' objects.
    """

    events: tuple[Event, ...]
    token: str
    counts: Mapping[str, int]

    def as_value(self) -> dict[str, Value]:
        """The event.from struct as xapi sends it (the counts as 32-bit ints)."""
        return {
            "events": tuple(e.as_value() for e in self.events),
            "valid_ref_counts": {cls: Int32(count) for cls, count in self.counts.items()},
            "token": self.token,
        }


@dataclass(frozen=True)
class Change:
    """One object's change between two worlds: ``operation`` add, mod or del; ``snapshot`` the
    record after it (before it for del, as Eventgen's PreDelete snapshot keeps it)."""

    key: Key
    operation: str
    snapshot: Snapshot


def snapshot_all(world: World) -> dict[Key, Snapshot]:
    """Every object of every evented class: (class, ref) → record."""
    objects: dict[Key, Snapshot] = {}
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
    before: World, after: World, objects: Mapping[Key, Snapshot]
) -> dict[Key, Snapshot]:
    """``snapshot_all(after)``, recomputing only what changed since ``before`` (``objects``
    being ``snapshot_all(before)``)."""
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


def changes(before: Mapping[Key, Snapshot], after: Mapping[Key, Snapshot]) -> tuple[Change, ...]:
    """The objects added, changed and destroyed from ``before`` to ``after`` (snapshots)."""
    found = [
        Change(key, "add" if key not in before else "mod", snapshot)
        for key, snapshot in after.items()
        if key not in before or before[key] != snapshot
    ]
    found += [Change(key, "del", snapshot) for key, snapshot in before.items() if key not in after]
    return tuple(found)


@dataclass(frozen=True)
class _Stat:
    """When an object was created and last changed (generations), as xapi's database keeps."""

    created: int
    modified: int


@dataclass(frozen=True)
class _Tombstone:
    created: int
    deleted: int
    cls: str
    ref: str


def _ordered(events: Iterable[Event]) -> list[Event]:
    """Class order as xapi's datamodel lists its tables, then refs (a table's rows are a map
    by ref)."""
    return sorted(events, key=lambda e: (CLASSES.index(e.cls), e.ref))


def _deletions_ordered(events: Iterable[Event]) -> list[Event]:
    """Class order, then the newest deletion first (a table's deleted rows are a list, newest
    first)."""
    return sorted(events, key=lambda e: (CLASSES.index(e.cls), -e.id))


def event_order(event: Event) -> tuple[int, int, str | int]:
    """Where ``event`` stands in xapi's event.from answer (``Xapi_event.from_inner``): adds,
    then mods, then dels; within each, classes in the datamodel's order of tables; adds and
    mods by ref (bytewise), dels newest deletion first. Unknown classes sort last."""
    rank = CLASSES.index(event.cls) if event.cls in CLASSES else len(CLASSES)
    within: str | int = -event.id if event.operation == "del" else event.ref
    return OPERATION_ORDER.index(event.operation), rank, within


@dataclass(frozen=True)
class EventHistory:
    """Every evented object's creation and last change as generations, and the objects
    destroyed lately: what event.from reads (a value; ``record`` gives the next one)."""

    world: World
    objects: Mapping[Key, Snapshot]
    stats: Mapping[Key, _Stat]
    recent: dict[Key, int]
    """Live objects by their last change, oldest first (re-inserted on each change); never
    changed once the history is built (a dict for its reversed order)."""
    deleted: tuple[_Tombstone, ...] = ()
    generation: int = 1
    capacity: int = CAPACITY

    @classmethod
    def start(cls, world: World, capacity: int = CAPACITY) -> EventHistory:
        """The history of a database whose objects are ``world``'s, all of generation 1."""
        objects = snapshot_all(world)
        stats = dict.fromkeys(objects, _Stat(1, 1))
        return cls(world, objects, stats, dict.fromkeys(objects, 1), capacity=capacity)

    @property
    def token(self) -> str:
        """The token of a client that has seen everything so far."""
        return format_token(self.generation)

    def record(self, world: World) -> tuple[EventHistory, tuple[Change, ...]]:
        """The history once ``world`` follows this one's, and the objects' changes."""
        objects = snapshot_changes(self.world, world, self.objects)
        found = changes(self.objects, objects)
        stats, recent = dict(self.stats), dict(self.recent)
        deleted, generation = list(self.deleted), self.generation
        for change in found:
            generation += 1
            _bump(stats, recent, deleted, change, generation)
        kept = tuple(deleted[max(0, len(deleted) - self.capacity) :])
        history = replace(
            self,
            world=world,
            objects=objects,
            stats=stats,
            recent=recent,
            deleted=kept,
            generation=generation,
        )
        return history, found

    def restated(self, world: World) -> EventHistory:
        """This history with ``world`` as its latest world and no change stamped: the same
        database as the model now describes it (e.g. once a fact it could not see is known,
        its records say what they said under that fact all along)."""
        return replace(self, world=world, objects=snapshot_all(world))

    def inject(self, cls: str, ref: str) -> tuple[EventHistory, Change] | None:
        """event.inject (``Xapi_event.inject``): a change of a live object of table ``cls``
        (``VM``, ``SR``...: the table's name, case and all), and the ``mod`` it queues for
        event.next (a ``RefreshRow``); None when ``ref`` is no object of that table
        (HANDLE_INVALID). The token just before the change is
        ``format_token(history.generation - 1)`` of the history answered."""
        key = (INJECTABLE.get(cls, ""), ref)
        if key not in self.stats:
            return None
        stats, recent, deleted = dict(self.stats), dict(self.recent), list(self.deleted)
        change = Change(key, "mod", self.objects[key])
        _bump(stats, recent, deleted, change, self.generation + 1)
        history = replace(self, stats=stats, recent=recent, generation=self.generation + 1)
        return history, change

    def since(self, since: int, classes: Iterable[str]) -> Batch:
        """What event.from answers for a token that has seen generation ``since``."""
        events, last = self._collect(since, set(classes))
        return Batch(tuple(events), format_token(last), self.counts())

    def has_since(self, since: int, classes: Iterable[str]) -> bool:
        """Whether event.from would answer an event for a token at ``since``."""
        return bool(self._collect(since, set(classes))[0])

    def deletions_in_doubt(self, since: int, newest: int, classes: Iterable[str]) -> set[Key]:
        """The objects whose ``del`` event.from may answer or not for a token the model holds
        at ``since``, when the target's token may have seen up to ``newest`` (other clients'
        changes move it past ``since``): destroyed after ``since`` and created by ``newest``,
        save those it must answer (created by ``since``, destroyed after ``newest``).
        xapi answers a del for a row created by the token and destroyed after it
        (``Table.fold_over_deleted``), and a token does not move past a row created and
        destroyed since it, so such a del may come one poll late."""
        subscribed = set(classes)
        return {
            (tomb.cls, tomb.ref)
            for tomb in self.deleted
            if since < tomb.deleted
            and tomb.created <= newest
            and not (tomb.created <= since and tomb.deleted > newest)
            and wanted(tomb.cls, tomb.ref, subscribed)
        }

    def counts(self) -> dict[str, int]:
        """valid_ref_counts: every table of the release's database, sessions included."""
        counts = dict.fromkeys(database_tables(self.world.release), 0)
        for cls, _ref in self.objects:
            counts[cls] = counts.get(cls, 0) + 1
        counts["session"] = len(self.world.sessions)
        return counts

    def _collect(self, since: int, classes: set[str]) -> tuple[list[Event], int]:
        """Events after generation ``since`` in ``classes`` and the newest generation among the
        objects matched, as ``Xapi_event.collect_events`` finds them and ``from_inner`` orders
        them (``event_order``). An object created and destroyed since is not even matched
        (``Table.fold_over_deleted`` skips it): its deletion does not move the token."""
        last = since
        adds: list[Event] = []
        mods: list[Event] = []
        for (cls, ref), modified in reversed(self.recent.items()):
            if modified <= since:
                break
            if not wanted(cls, ref, classes):
                continue
            last = max(last, modified)
            created = self.stats[cls, ref].created
            snapshot = self.objects[cls, ref]
            if created > since:
                adds.append(Event(created, cls, "add", ref, snapshot))
            else:
                mods.append(Event(modified, cls, "mod", ref, snapshot))
        dels: list[Event] = []
        for tomb in reversed(self.deleted):
            if tomb.deleted <= since:
                break
            if tomb.created <= since and wanted(tomb.cls, tomb.ref, classes):
                last = max(last, tomb.deleted)
                dels.append(Event(tomb.deleted, tomb.cls, "del", tomb.ref, None))
        return [*_ordered(adds), *_ordered(mods), *_deletions_ordered(dels)], last


def _bump(
    stats: dict[Key, _Stat],
    recent: dict[Key, int],
    deleted: list[_Tombstone],
    change: Change,
    generation: int,
) -> None:
    """Stamp ``change`` with ``generation`` in the (fresh, unshared) tables given."""
    recent.pop(change.key, None)
    if change.operation == "del":
        stat = stats.pop(change.key)
        deleted.append(_Tombstone(stat.created, generation, *change.key))
        return
    created = stats[change.key].created if change.key in stats else generation
    stats[change.key] = _Stat(created, generation)
    recent[change.key] = generation


# ---- the legacy event.register / event.next (``Xapi_event.Next``) ----------------------------


@dataclass(frozen=True)
class _Subscription:
    """A session's event.register subscription and the queue position it has read up to."""

    classes: frozenset[str]
    last_id: int


@dataclass(frozen=True)
class NextQueue:
    """event.next's queue: every change some registered session wants, as it happened, and
    each session's subscription. ``queued`` is the id the next queued event gets
    (``Next.id``, what event.get_current_id answers)."""

    queue: tuple[Event, ...] = ()
    queued: int = 0
    subscriptions: Mapping[str, _Subscription] = field(default_factory=lambda: MappingProxyType({}))
    capacity: int = CAPACITY

    def record(self, found: Iterable[Change], world: World, timestamp: str) -> NextQueue:
        """The queue after ``found`` happened in ``world`` at ``timestamp`` (OCaml's
        ``string_of_float (Unix.time ())``): subscriptions of ended sessions go
        (``Next.on_session_deleted``), then every wanted change is queued."""
        subs = {s: sub for s, sub in self.subscriptions.items() if s in world.sessions}
        queue, queued = list(self.queue), self.queued
        for change in found:
            cls, ref = change.key
            if any(wanted(cls, ref, sub.classes) for sub in subs.values()):
                queue.append(Event(queued, cls, change.operation, ref, change.snapshot, timestamp))
                queued += 1
        kept = tuple(queue[max(0, len(queue) - self.capacity) :])
        return replace(self, queue=kept, queued=queued, subscriptions=subs)

    def register(self, session: str, classes: Iterable[str], add: bool = True) -> NextQueue:
        """event.register (``add``) or event.unregister: the session's subscription, made on
        first use from the queue's current end, gains or loses ``classes``."""
        sub = self.subscriptions.get(session, _Subscription(frozenset(), self.queued))
        chosen = sub.classes | set(classes) if add else sub.classes - set(classes)
        subs = {**self.subscriptions, session: replace(sub, classes=frozenset(chosen))}
        return replace(self, subscriptions=subs)

    def registered(self, session: str) -> bool:
        """Whether ``session`` has called event.register or event.unregister."""
        return session in self.subscriptions

    def refusal(self, session: str) -> Failure | None:
        """What event.next raises before it waits (``Next.assert_subscribed``):
        SESSION_NOT_REGISTERED [trackid] for a session that never called event.register or
        event.unregister (either makes its subscription); None once it did."""
        if self.registered(session):
            return None
        return Failure("SESSION_NOT_REGISTERED", (trackid(session),))

    def pending(self, session: str) -> tuple[Event, ...] | None:
        """The queued events ``session`` wants since its last event.next; None once its
        subscription ended with the session (SESSION_INVALID)."""
        sub = self.subscriptions.get(session)
        if sub is None:
            return None
        start = max(0, sub.last_id - self.queue[0].id) if self.queue else 0
        return tuple(e for e in self.queue[start:] if wanted(e.cls, e.ref, sub.classes))

    def take(self, session: str) -> tuple[NextQueue, tuple[Event, ...] | None]:
        """event.next: the queue once ``session`` has read its pending events, and those."""
        events = self.pending(session)
        if events is None:
            return self, None
        sub = replace(self.subscriptions[session], last_id=self.queued)
        return replace(self, subscriptions={**self.subscriptions, session: sub}), events
