"""Seeded faults of the event log: what a server gets wrong about event.from, not about calls.

An ``EventFault`` leaves the model's transition alone and alters the server's event history as
it is recorded (``recorded``: a change never stamped, a snapshot left stale, a del forgotten),
event.from's answer (``answered``: the token, the subscription), or the legacy event.next queue
(``queued``: the changes queued; ``taken``: what event.next answers and keeps). Each imitates a mistake an
event implementation plausibly makes: writes that bypass the generation counter, an object
cache refreshed late, a token computed from the request, a filter applied to the wrong list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from models.events import (
    Batch,
    Change,
    Event,
    EventHistory,
    NextQueue,
    class_name,
    format_token,
    parse_token,
    read_token,
    wanted,
)
from models.outcome import Failure
from models.transition import Call, Result
from models.world import World

__all__ = [
    "HONEST_EVENTS",
    "EventFault",
    "class_filter_ignored",
    "counts_empty",
    "current_id_last",
    "empty_subscription_everything",
    "event_fault",
    "idle_object_repeated",
    "ids_not_generations",
    "in_flight_hidden",
    "inject_untouched",
    "lax_token",
    "mods_first",
    "next_class_uppercase",
    "next_del_bare",
    "next_repeats",
    "next_stale_snapshot",
    "no_del_on_destroy",
    "no_mod_after_power_change",
    "stale_snapshot",
    "subscription_case_sensitive",
    "task_del_dropped",
    "task_result_missing",
    "token_stuck",
    "token_unpadded",
    "unregister_ignored",
    "unregistered_handle",
    "unsigned_token",
    "wildcard_unmatched",
]

Recorded = Callable[[EventHistory, EventHistory, tuple[Change, ...]], EventHistory]
"""(history before, honest history after, the changes) → the history the server keeps."""
Answered = Callable[[EventHistory, int, set[str], Batch], Batch]
"""(history, the token's generation, the subscription, the honest answer) → what it answers."""
Queued = Callable[[EventHistory, tuple[Change, ...]], tuple[Change, ...]]
"""(history before, the changes) → the changes event.next's queue gets."""
Taken = Callable[[NextQueue, str], tuple[NextQueue, tuple[Event, ...] | None]]
"""(queue, session) → the queue after the session's event.next, and what it answers."""
Injected = Callable[[EventHistory, EventHistory, Change], tuple[EventHistory, tuple[Change, ...]]]
"""(history before, honest history after an event.inject, its change) → the history the
server keeps and the changes event.next's queue gets."""
Current = Callable[[NextQueue], int]
"""(queue) → what event.get_current_id answers."""
Registered = Callable[[NextQueue, str, Iterable[str], bool], NextQueue]
"""(queue, session, classes, whether to add them) → the queue after event.register (add) or
event.unregister."""
Refused = Callable[[NextQueue, str], Failure | None]
"""(queue, session) → what event.next raises before it waits, if anything."""
Parsed = Callable[[str], int | Failure]
"""(token) → the generation event.from reads from it, or what it raises."""
Subscribed = Callable[[str], str]
"""(a class a client subscribes to) → the class the server matches events against."""


def _kept(_before: EventHistory, after: EventHistory, _found: tuple[Change, ...]) -> EventHistory:
    return after


def _as_is(_history: EventHistory, _since: int, _classes: set[str], batch: Batch) -> Batch:
    return batch


def _all_queued(_before: EventHistory, found: tuple[Change, ...]) -> tuple[Change, ...]:
    return found


def _take(queue: NextQueue, session: str) -> tuple[NextQueue, tuple[Event, ...] | None]:
    return queue.take(session)


def _touched(
    _before: EventHistory, after: EventHistory, change: Change
) -> tuple[EventHistory, tuple[Change, ...]]:
    return after, (change,)


def _next_id(queue: NextQueue) -> int:
    return queue.queued


def _register(queue: NextQueue, session: str, classes: Iterable[str], add: bool) -> NextQueue:
    return queue.register(session, classes, add)


def _refusal(queue: NextQueue, session: str) -> Failure | None:
    return queue.refusal(session)


@dataclass(frozen=True)
class EventFault:
    """A deviation of the event log; calls themselves are answered honestly."""

    recorded: Recorded = _kept
    answered: Answered = _as_is
    queued: Queued = _all_queued
    taken: Taken = _take
    injected: Injected = _touched
    current: Current = _next_id
    refused: Refused = _refusal
    parsed: Parsed = read_token
    registered: Registered = _register
    subscribed: Subscribed = class_name

    def apply(self, world: World, call: Call, honest: Callable[[World, Call], Result]) -> Result:
        """The honest transition: the fault is in the events."""
        return honest(world, call)


HONEST_EVENTS = EventFault()


def event_fault(faults: Iterable[object]) -> EventFault:
    """The event faults among ``faults`` (catalogued or bare), stacked in order."""
    found = [getattr(f, "fault", f) for f in faults]
    found = [getattr(f, "inner", None) or f for f in found]  # a race fault's inner fault
    chosen = [f for f in found if isinstance(f, EventFault)]
    if not chosen:
        return HONEST_EVENTS
    queue_faults = [f for f in chosen if f.queued is not _all_queued or f.taken is not _take]
    queue_fault = queue_faults[-1] if queue_faults else HONEST_EVENTS
    singles: dict[str, Any] = {name: _last_deviating(chosen, name) for name in _SINGLE_FIELDS}
    return replace(
        HONEST_EVENTS,
        recorded=_stack_recorded(chosen),
        answered=_stack_answered(chosen),
        queued=queue_fault.queued,
        taken=queue_fault.taken,
        **singles,
    )


_SINGLE_FIELDS = ("injected", "current", "refused", "parsed", "registered", "subscribed")
"""The fields where the last fault that deviates wins (the others stack)."""


def _last_deviating(chosen: list[EventFault], name: str) -> object:
    honest = getattr(HONEST_EVENTS, name)
    return next(
        (getattr(f, name) for f in reversed(chosen) if getattr(f, name) is not honest), honest
    )


def _stack_recorded(faults: list[EventFault]) -> Recorded:
    def recorded(
        before: EventHistory, after: EventHistory, found: tuple[Change, ...]
    ) -> EventHistory:
        for fault in faults:
            after = fault.recorded(before, after, found)
        return after

    return recorded


def _stack_answered(faults: list[EventFault]) -> Answered:
    def answered(history: EventHistory, since: int, classes: set[str], batch: Batch) -> Batch:
        for fault in faults:
            batch = fault.answered(history, since, classes, batch)
        return batch

    return answered


# ---- the faults -------------------------------------------------------------------------------


def _unstamped(
    before: EventHistory, after: EventHistory, keys: set[tuple[str, str]]
) -> EventHistory:
    """``after`` where ``keys`` keep the generations they had ``before`` (their records new)."""
    if not keys:
        return after
    stats = {**after.stats, **{k: before.stats[k] for k in keys}}
    recent = {**after.recent, **{k: before.recent[k] for k in keys}}
    return replace(after, stats=stats, recent=dict(sorted(recent.items(), key=lambda kv: kv[1])))


def _power_changes(before: EventHistory, found: tuple[Change, ...]) -> set[tuple[str, str]]:
    return {
        c.key
        for c in found
        if c.key[0] == "vm"
        and c.operation == "mod"
        and before.objects[c.key].get("power_state") != c.snapshot.get("power_state")
    }


def _no_power_mod(
    before: EventHistory, after: EventHistory, found: tuple[Change, ...]
) -> EventHistory:
    return _unstamped(before, after, _power_changes(before, found))


no_mod_after_power_change = EventFault(recorded=_no_power_mod)
"""A power change is written without bumping the VM's generation: no mod event for it."""


def _stale(before: EventHistory, after: EventHistory, found: tuple[Change, ...]) -> EventHistory:
    old = {c.key: before.objects[c.key] for c in found if c.key[0] == "vm" and c.operation == "mod"}
    return replace(after, objects={**after.objects, **old}) if old else after


stale_snapshot = EventFault(recorded=_stale)
"""A VM's mod event carries its record from before the change."""


def _no_vm_del(before: EventHistory, after: EventHistory, _f: tuple[Change, ...]) -> EventHistory:
    kept = tuple(t for t in after.deleted if t.cls != "vm" or t.deleted <= before.generation)
    return replace(after, deleted=kept)


no_del_on_destroy = EventFault(recorded=_no_vm_del)
"""A destroyed VM leaves no del event."""


def _stuck(_history: EventHistory, since: int, _classes: set[str], batch: Batch) -> Batch:
    return replace(batch, token=format_token(since))


token_stuck = EventFault(answered=_stuck)
"""event.from answers the token it was given: the next poll repeats the same events."""


def _everything(history: EventHistory, since: int, _classes: set[str], batch: Batch) -> Batch:
    every = history.since(since, {"*"})
    return replace(batch, events=every.events, token=every.token)


class_filter_ignored = EventFault(answered=_everything)
"""event.from answers every class's events, whatever the subscription."""


def _empty_as_star(history: EventHistory, since: int, classes: set[str], batch: Batch) -> Batch:
    return _everything(history, since, classes, batch) if not classes else batch


empty_subscription_everything = EventFault(answered=_empty_as_star)
"""event.from with no classes answers every class's events (an empty list read as ``*``)."""


def _without_result(_history: EventHistory, _since: int, _c: set[str], batch: Batch) -> Batch:
    events = tuple(
        replace(e, snapshot={**e.snapshot, "result": ""})
        if e.cls == "task" and e.snapshot is not None
        else e
        for e in batch.events
    )
    return replace(batch, events=events)


task_result_missing = EventFault(answered=_without_result)
"""Task events carry an empty result (the record read by task.get_record has it)."""


def _stale_queued(before: EventHistory, found: tuple[Change, ...]) -> tuple[Change, ...]:
    return tuple(
        replace(c, snapshot=before.objects[c.key])
        if c.key[0] == "vm" and c.operation == "mod"
        else c
        for c in found
    )


next_stale_snapshot = EventFault(queued=_stale_queued)
"""event.next's mod events of VMs carry the record from before the change."""


def _kept_pending(queue: NextQueue, session: str) -> tuple[NextQueue, tuple[Event, ...] | None]:
    return queue, queue.pending(session)


next_repeats = EventFault(taken=_kept_pending)
"""event.next never moves a session past what it answered: each call repeats every event
since event.register."""


_MARKS = frozenset({"current_operations", "allowed_operations"})


def _marks_only(before: EventHistory, change: Change) -> bool:
    old = before.objects.get(change.key)
    return (
        change.key[0] == "vm"
        and change.operation == "mod"
        and old is not None
        and {k for k in change.snapshot if change.snapshot[k] != old.get(k)} <= _MARKS
    )


def _marks_unseen(
    before: EventHistory, after: EventHistory, found: tuple[Change, ...]
) -> EventHistory:
    hidden = {c.key: before.objects[c.key] for c in found if _marks_only(before, c)}
    return replace(after, objects={**after.objects, **hidden}) if hidden else after


in_flight_hidden = EventFault(recorded=_marks_unseen)
"""A write of a VM's current_operations (and the allowed_operations it implies) alone leaves
the VM's event snapshot as it was: the mod comes, but an operation in flight never shows in
events (its end, which changes more, refreshes the snapshot)."""


def _uncounted(_history: EventHistory, _since: int, _classes: set[str], batch: Batch) -> Batch:
    return replace(batch, counts={})


counts_empty = EventFault(answered=_uncounted)
"""event.from's valid_ref_counts is empty (clients compare it with their caches)."""


def _numbered(_history: EventHistory, _since: int, _classes: set[str], batch: Batch) -> Batch:
    return replace(batch, events=tuple(replace(e, id=n) for n, e in enumerate(batch.events)))


ids_not_generations = EventFault(answered=_numbered)
"""event.from numbers its events 0, 1, 2... in the answer instead of giving each the
generation of its change."""


def _unpadded(_history: EventHistory, _since: int, _classes: set[str], batch: Batch) -> Batch:
    return replace(batch, token=f"{parse_token(batch.token)},0")


token_unpadded = EventFault(answered=_unpadded)
"""event.from's token is "<generation>,0", not xapi's two zero-padded 20-digit numbers (it
resumes, but tokens no longer compare as text)."""


def _uppercase(queue: NextQueue, session: str) -> tuple[NextQueue, tuple[Event, ...] | None]:
    after, events = queue.take(session)
    if events is None:
        return after, None
    return after, tuple(replace(e, cls=e.cls.upper()) for e in events)


next_class_uppercase = EventFault(taken=_uppercase)
"""event.next names classes as the database's tables are named (``VM``), not in lowercase as
xapi's events do."""


def _star_literal(history: EventHistory, since: int, classes: set[str], batch: Batch) -> Batch:
    return history.since(since, classes - {"*"}) if "*" in classes else batch


def _star_literal_next(
    queue: NextQueue, session: str
) -> tuple[NextQueue, tuple[Event, ...] | None]:
    sub = queue.subscriptions.get(session)
    after, events = queue.take(session)
    if events is None or sub is None:
        return after, events
    return after, tuple(e for e in events if wanted(e.cls, e.ref, sub.classes - {"*"}))


wildcard_unmatched = EventFault(answered=_star_literal, taken=_star_literal_next)
"""``*`` is read as a class name, not as every class: event.from(["*"]) and an
event.register(["*"]) subscription answer nothing of it."""


def _as_written(subscription: str) -> str:
    return subscription


subscription_case_sensitive = EventFault(subscribed=_as_written)
"""Subscriptions are matched as written: ``VM`` is not the ``vm`` class, so event.from(["VM"])
and event.register(["VM"]) answer none of the VMs' events (xapi lowercases a subscription's
class)."""


def _untouched(
    before: EventHistory, after: EventHistory, _change: Change
) -> tuple[EventHistory, tuple[Change, ...]]:
    return replace(before, generation=after.generation), ()


inject_untouched = EventFault(injected=_untouched)
"""event.inject answers a token but changes nothing: no mod event of the object follows."""


def _last_id(queue: NextQueue) -> int:
    return queue.queued - 1


current_id_last = EventFault(current=_last_id)
"""event.get_current_id answers the id of the newest queued event, not the id the next one
will get (xapi's ``Next.id``): a client resuming from it sees that event again."""


def _handle_named(queue: NextQueue, session: str) -> Failure | None:
    refusal = queue.refusal(session)
    return None if refusal is None else Failure(refusal.code, (session,))


unregistered_handle = EventFault(refused=_handle_named)
"""event.next before event.register raises SESSION_NOT_REGISTERED naming the session's ref
(the datamodel calls the parameter ``handle``), not xapi's trackid: the secret ref is shown
wherever the error is logged."""


def _lax(token: str) -> int | Failure:
    generation = read_token(token)
    return 0 if isinstance(generation, Failure) else generation


lax_token = EventFault(parsed=_lax)
"""event.from reads a token it cannot parse as "" (from scratch): every object is answered,
where xapi raises EVENT_FROM_TOKEN_PARSE_FAILURE [token]."""


def _unsigned(token: str) -> int | Failure:
    parts = token.split(",")
    narrow = any(p.startswith("-") or p.lstrip("+") == str(2**63 - 1) for p in parts)
    return Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", (token,)) if narrow else read_token(token)


unsigned_token = EventFault(parsed=_unsigned)
"""event.from reads each number of a token as an unsigned count below 2^63 - 1: a negative
number or int64's largest raises EVENT_FROM_TOKEN_PARSE_FAILURE, where xapi's
``Int64.of_string`` reads both."""


def _no_task_del(before: EventHistory, after: EventHistory, _f: tuple[Change, ...]) -> EventHistory:
    kept = tuple(t for t in after.deleted if t.cls != "task" or t.deleted <= before.generation)
    return replace(after, deleted=kept)


task_del_dropped = EventFault(recorded=_no_task_del)
"""A destroyed task leaves no del event: a client subscribed to it never learns it is gone."""


def _mods_first(_history: EventHistory, _since: int, _c: set[str], batch: Batch) -> Batch:
    first = ("mod", "add", "del")
    events = sorted(batch.events, key=lambda e: first.index(e.operation))
    return replace(batch, events=tuple(events))


mods_first = EventFault(answered=_mods_first)
"""event.from answers the objects changed before those created (rows folded over as modified,
then as created), not xapi's adds, then mods, then dels."""


def _bare_dels(queue: NextQueue, session: str) -> tuple[NextQueue, tuple[Event, ...] | None]:
    after, events = queue.take(session)
    if events is None:
        return after, None
    return after, tuple(replace(e, snapshot=None) if e.operation == "del" else e for e in events)


next_del_bare = EventFault(taken=_bare_dels)
"""event.next's del events carry no snapshot, as event.from's do; xapi's carry the record as it
was before the destroy."""


def _objects_repeated(history: EventHistory, since: int, classes: set[str], batch: Batch) -> Batch:
    objects = [tuple(c.split("/", 1)) for c in classes if "/" in c]
    if batch.events or not objects or len(objects) != len(classes):
        return batch
    events = tuple(
        Event(history.stats[cls, ref].modified, cls, "mod", ref, history.objects[cls, ref])
        for cls, ref in objects
        if (cls, ref) in history.stats
    )
    return replace(batch, events=events)


idle_object_repeated = EventFault(answered=_objects_repeated)
"""event.from subscribed to single objects (``vm/<ref>``) answers each one's record as a mod
when none changed, instead of nothing at its timeout (a heartbeat a client takes for a change)."""


def _unregister_ignored(
    queue: NextQueue, session: str, classes: Iterable[str], add: bool
) -> NextQueue:
    return queue.register(session, classes if add else (), add=True)


unregister_ignored = EventFault(registered=_unregister_ignored)
"""event.unregister answers success and changes nothing: the session is still answered the
classes it unregistered."""
