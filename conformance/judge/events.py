"""Judging what event.from answered, and the task of an ``Async.`` call, against the model.

The model (``models.events``) says which objects changed since a token, how (add, mod, del) and
what their records are now; these functions say whether the target's answer is one xapi gives
(xapi_event.ml ``from_inner``, taskHelper.ml), and if not, what is wrong in words. Records are
compared by the rules ``VM.get_record`` is compared by.
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from conformance.judge.compare import Mismatch, typed_vm_record, value_mismatch
from conformance.wire import WireFormatError, from_wire
from models.events import CLASSES, Event, event_order, wanted
from models.outcome import Value
from models.schema import XType
from models.world import NULL_REF

__all__ = [
    "EventQuestion",
    "Malformed",
    "SeenEvent",
    "batch_shape_mismatch",
    "coalesced",
    "current_id_mismatch",
    "event_mismatch",
    "next_del_mismatch",
    "next_order_mismatch",
    "next_shape_mismatch",
    "order_mismatch",
    "outside_mismatch",
    "problem_kind",
    "read_batch",
    "read_events",
    "task_del_mismatch",
    "task_event_mismatch",
    "task_mismatch",
]

_VM_RECORD = XType("record", name="VM")
_DATETIME = XType("datetime")
_INT = XType("int")
CLOCK_SLACK = datetime.timedelta(seconds=2)
"""How far a task's times may lie outside the call's span as the suite's clock measured it:
xapi's dateTime has whole seconds, and the two clocks are not the same clock."""


@dataclass(frozen=True)
class SeenEvent:
    """One event as the target sent it: class, operation, ref, the snapshot as sent, and its
    id (event.next's queue position; event.from's generation)."""

    cls: str
    operation: str
    ref: str
    snapshot: Mapping[str, object] | None
    id: str = ""


class Malformed(Exception):
    """An event.from answer that is not xapi's struct (the mismatch says how)."""

    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(str(mismatch))
        self.mismatch = mismatch


def read_batch(raw: object) -> tuple[tuple[SeenEvent, ...], str]:
    """The events and token of an event.from answer; ``Malformed`` when it is not one."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("events"), list | tuple):
        raise Malformed(Mismatch("result", "not an event batch (a struct with events)"))
    token = raw.get("token")
    if not isinstance(token, str):
        raise Malformed(Mismatch("token", "missing, or not a string"))
    return tuple(_read_event(e) for e in raw["events"]), token


_TOKEN = re.compile(r"[0-9]{20},[0-9]{20}")
"""xapi's token (``Xapi_event.Token.to_string``): the generation and the messages' count,
each zero-padded to 20 digits so that tokens compare as text."""
OPERATIONS = ("add", "mod", "del")
COUNTED = ("vm", "task")
"""Classes whose live objects ``valid_ref_counts`` must count (xapi counts every table)."""


def batch_shape_mismatch(raw: Mapping[str, object], since: str) -> Mismatch | None:
    """How an event.from answer (``read_batch`` read it) from token ``since`` is not built as
    xapi builds it (``Xapi_event.from_inner``, ``Event_types``): the token's form, the
    ``valid_ref_counts`` struct (a count for every class, lowercase), and each event's id (the
    generation of its change: after ``since``'s, not after the new token's), timestamp (a
    string, "0.0"), class (lowercase), operation, and no snapshot for a del. None when it is."""
    token = str(raw["token"])
    if not _TOKEN.fullmatch(token):
        return Mismatch("token", f"{token!r} is not xapi's (two 20-digit numbers and a comma)")
    counts = raw.get("valid_ref_counts")
    if not isinstance(counts, Mapping) or not all(
        isinstance(k, str) and k == k.lower() and type(v) is int for k, v in counts.items()
    ):
        return Mismatch("valid_ref_counts", "not a struct of lowercase classes and numbers")
    missing = [c for c in COUNTED if c not in counts]
    if missing:
        return Mismatch("valid_ref_counts", f"no count of {', '.join(missing)}")
    first = int(since.partition(",")[0] or 0) if _TOKEN.fullmatch(since) or not since else -1
    last = int(token.partition(",")[0])
    for event in raw["events"]:  # type: ignore[attr-defined]
        found = _event_shape_mismatch(event, first, last)
        if found is not None:
            return found
    return None


def order_mismatch(seen: Sequence[SeenEvent]) -> Mismatch | None:
    """Why an event.from answer's events are not in xapi's order
    (``models.events.event_order``: adds, then mods, then dels; classes in the datamodel's
    order; dels newest first). Adds and mods are by ref too, which is not judged: refs are the
    server's random choice, so an example would show it one time and not the next. Only the
    evented classes the model knows are ranked; others (a real pool's other tables, messages)
    are left out."""
    ranked = [e for e in seen if e.cls in CLASSES and e.operation in OPERATIONS]
    if any(e.operation == "del" and not e.id.isdigit() for e in ranked):
        return None  # an id that is no generation is found by the struct's judge

    def order(e: SeenEvent) -> tuple[int, int, str | int]:
        generation = int(e.id) if e.operation == "del" else 0
        operation, cls, within = event_order(Event(generation, e.cls, e.operation, "", None))
        return operation, cls, within if e.operation == "del" else ""

    for first, second in itertools.pairwise(ranked):
        if order(second) < order(first):
            return Mismatch(
                "event order",
                f"{second.cls} {second.ref} ({second.operation}) answered after {first.cls} "
                f"{first.ref} ({first.operation}); xapi answers adds, then mods, then dels, classes in the "
                "datamodel's order, dels newest first",
            )
    return None


def current_id_mismatch(raw: object, answered_up_to: int, before: int) -> Mismatch | None:
    """Why event.get_current_id's answer, read right after an event.next, is not xapi's
    ``Next.id`` (the id the next queued event gets): an int64, past every id event.next
    answered (``answered_up_to``) and never below what it answered ``before`` (-1: never)."""
    try:
        current = from_wire(raw, _INT)
    except WireFormatError as error:
        return Mismatch("event.get_current_id", str(error))
    assert isinstance(current, int)
    if current <= answered_up_to:
        return Mismatch(
            "event.get_current_id",
            f"{current}, not past {answered_up_to}, the last id event.next answered: it is the "
            "id the next queued event gets",
        )
    if current < before:
        return Mismatch("event.get_current_id", f"{current}, less than the {before} it answered")
    return None


def next_shape_mismatch(raw: Sequence[Mapping[str, object]]) -> Mismatch | None:
    """How an event.next answer's events (``read_events`` read them) are not built as xapi
    builds them: each id a queue position (digits), its timestamp a string, its class
    lowercase, its operation add, mod or del. None when they are."""
    for event in raw:
        found = _event_shape_mismatch(event, -1, 0, with_del_snapshot=True)
        if found is not None:
            return found
    return None


def _event_shape_mismatch(
    event: Mapping[str, object], first: int, last: int, *, with_del_snapshot: bool = False
) -> Mismatch | None:
    shown = f"{event.get('class')} ({event.get('operation')})"
    ident = event.get("id")
    if not isinstance(ident, str) or not ident.isdigit():
        return Mismatch("event id", f"{ident!r} of {shown} is not a generation (digits)")
    if not first < int(ident) <= last and first >= 0 and event.get("class") != "message":
        return Mismatch(
            "event id",
            f"{ident} of {shown} is not after the token's generation {first} and up to the "
            f"new token's {last}",
        )
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return Mismatch("event timestamp", f"{stamp!r} of {shown} is not a string")
    if event.get("class") != str(event.get("class")).lower():
        return Mismatch("event class", f"{shown}: xapi names classes in lowercase")
    if event.get("operation") not in OPERATIONS:
        return Mismatch("event operation", f"{shown}: one of {list(OPERATIONS)}")
    if (
        event.get("operation") == "del"
        and event.get("snapshot") is not None
        and not with_del_snapshot
    ):
        return Mismatch("event snapshot", f"{shown}: event.from sends a del without one")
    return None


def read_events(raw: object) -> tuple[SeenEvent, ...]:
    """The events of an event.next answer (an array of event structs); ``Malformed`` when it
    is not one."""
    if not isinstance(raw, list | tuple):
        raise Malformed(Mismatch("result", "not an array of events"))
    return tuple(_read_event(e) for e in raw)


def _read_event(raw: object) -> SeenEvent:
    if not isinstance(raw, Mapping):
        raise Malformed(Mismatch("events", "an event is not a struct"))
    fields = [raw.get(name) for name in ("class", "operation", "ref")]
    if not all(isinstance(f, str) for f in fields):
        raise Malformed(Mismatch("events", "an event lacks its class, operation or ref"))
    snapshot = raw.get("snapshot")
    if snapshot is not None and not isinstance(snapshot, Mapping):
        raise Malformed(Mismatch("events", "an event's snapshot is not a struct"))
    cls, operation, ref = (str(f) for f in fields)
    return SeenEvent(cls, operation, ref, snapshot, str(raw.get("id", "")))


@dataclass(frozen=True)
class EventQuestion:
    """One event.from to judge: its subscription, what the model answers, which objects the
    suite judges, and which of them its calls since the token named.

    A real xapi also writes an object a call names when the call changes nothing a client can
    see (current_operations set and cleared around an operation that then fails): a ``mod`` of
    such an object is accepted though the model does not predict it.
    """

    classes: tuple[str, ...]
    expected: tuple[Event, ...]
    judged: Callable[[str, str], bool]
    named: Collection[str]
    records: Callable[[Event], Sequence[Mapping[str, Value]]] = lambda e: (
        () if e.snapshot is None else (e.snapshot,)
    )
    """The records a snapshot of ``event``'s VM may hold: one per assumption about facts the
    suite cannot see (guest drivers change allowed_operations), else the event's own."""
    optional: Collection[tuple[str, str]] = frozenset()
    """Objects whose ``del`` the answer may hold or not (``EventHistory.deletions_in_doubt``):
    xapi's token does not move past a row created and destroyed since it, so its del comes a
    poll late, unless another client's change moved the token past it first."""


def event_mismatch(
    question: EventQuestion, seen: Sequence[SeenEvent], name: Callable[[str], str]
) -> Mismatch | None:
    """Why the target's events (refs in model terms) are not what xapi answers, or None."""
    return (
        outside_mismatch(question.classes, seen, name)
        or _repeated(question, seen, name)
        or _missing(question, seen, name)
        or _unexpected(question, seen, name)
        or _stale(question, seen, name)
    )


def outside_mismatch(
    classes: Collection[str], seen: Sequence[SeenEvent], name: Callable[[str], str]
) -> Mismatch | None:
    """The first event outside a subscription to ``classes``, as a mismatch; else None."""
    for event in seen:
        if not wanted(event.cls, event.ref, classes):
            return Mismatch(
                "class filter",
                f"answered {_shown(event.cls, event.ref, event.operation, name)}, outside the "
                f"subscription {list(classes)}",
            )
    return None


def _repeated(
    q: EventQuestion, seen: Sequence[SeenEvent], name: Callable[[str], str]
) -> Mismatch | None:
    counts = Counter((e.cls, e.ref) for e in seen if q.judged(e.cls, e.ref))
    for (cls, ref), count in counts.items():
        if count > 1:
            return Mismatch(
                "repeated object",
                f"reported {cls} {name(ref)} {count} times in one answer; xapi reports an "
                "object once (its add, mods and del coalesced)",
            )
    return None


def _missing(
    q: EventQuestion, seen: Sequence[SeenEvent], name: Callable[[str], str]
) -> Mismatch | None:
    answered = {(e.cls, e.ref): e.operation for e in seen}
    for event in q.expected:
        got = answered.get((event.cls, event.ref))
        if got is None and (event.cls, event.ref) in q.optional:
            continue
        if got is None:
            return Mismatch(
                f"missing {event.operation} event",
                f"never reported {_shown(event.cls, event.ref, event.operation, name)}",
            )
        if got != event.operation:
            return Mismatch(
                "wrong operation",
                f"reported {event.cls} {name(event.ref)} as {got}; xapi reports {event.operation}",
            )
    return None


def _unexpected(
    q: EventQuestion, seen: Sequence[SeenEvent], name: Callable[[str], str]
) -> Mismatch | None:
    expected = {(e.cls, e.ref) for e in q.expected}
    for event in seen:
        key = (event.cls, event.ref)
        if key in expected or not q.judged(*key):
            continue
        if event.operation == "del" and key in q.optional:
            continue
        if event.operation == "mod" and event.ref in q.named:
            continue
        return Mismatch(
            "unchanged object",
            f"reported {_shown(event.cls, event.ref, event.operation, name)} though it did not "
            "change since the token",
        )
    return None


def _stale(
    q: EventQuestion, seen: Sequence[SeenEvent], name: Callable[[str], str]
) -> Mismatch | None:
    answered = {(e.cls, e.ref): e for e in seen}
    for event in q.expected:
        if event.snapshot is None or event.cls != "vm":
            continue
        got = answered[event.cls, event.ref]
        where = f"the snapshot of vm {name(event.ref)} ({event.operation})"
        if got.snapshot is None:
            return Mismatch(where, "missing")
        try:
            record = typed_vm_record(got.snapshot)
        except WireFormatError as error:
            return Mismatch(where, str(error))
        found = [value_mismatch(dict(r), record, _VM_RECORD) for r in q.records(event)]
        if found and all(found):
            first = found[0]
            assert first is not None
            return Mismatch(f"{first.where} in {where}", first.how)
    return None


def next_order_mismatch(
    seen: Sequence[SeenEvent], answered_up_to: int, name: Callable[[str], str]
) -> Mismatch | None:
    """Why event.next's events are not read off xapi's queue (``Xapi_event.Next``): ids rise
    past the last id an earlier event.next answered, and each object's add comes first and
    its del last. ``answered_up_to`` is that last id (-1 before the first event.next)."""
    last = answered_up_to
    for event in seen:
        if not event.id.isdigit():
            return Mismatch("event id", f"{event.id!r} is not a position in the queue")
        if int(event.id) <= last:
            return Mismatch(
                "repeated event",
                f"answered {_shown(event.cls, event.ref, event.operation, name)} with id "
                f"{event.id}, not after {last}, the last id already answered; event.next "
                "answers each queued event once",
            )
        last = int(event.id)
    order: dict[tuple[str, str], list[str]] = {}
    for event in seen:
        order.setdefault((event.cls, event.ref), []).append(event.operation)
    for (cls, ref), operations in order.items():
        if "add" in operations[1:] or "del" in operations[:-1]:
            return Mismatch(
                "event order",
                f"reported {cls} {name(ref)} as {' then '.join(operations)}; an object's add "
                "comes first and its del last",
            )
    return None


IDENTITY = ("name_label",)
"""The fields of a del's snapshot judged against the VM's last record: xapi takes it inside
VM.destroy (current_operations may name the destroy), and uuids are the server's choice."""


def next_del_mismatch(
    seen: Sequence[SeenEvent],
    destroyed: Mapping[str, Mapping[str, object] | None],
    name: Callable[[str], str],
) -> Mismatch | None:
    """Why event.next's del of a destroyed VM (``destroyed``: ref → its last record, None
    when not known) is not xapi's: it carries the record as it was before the destroy
    (``Eventgen``'s PreDelete snapshot), where event.from's del has none."""
    for event in seen:
        if event.cls != "vm" or event.operation != "del" or event.ref not in destroyed:
            continue
        where = f"the snapshot of vm {name(event.ref)} (del)"
        if event.snapshot is None:
            return Mismatch(
                where, "missing: event.next's del carries the record before the destroy"
            )
        last = destroyed[event.ref] or {}
        for field in (f for f in IDENTITY if f in last):
            if event.snapshot.get(field) != last[field]:
                return Mismatch(
                    f"field {field} in {where}",
                    f"{event.snapshot.get(field)!r}, not the VM's last {last[field]!r}",
                )
    return None


def coalesced(seen: Sequence[SeenEvent]) -> tuple[SeenEvent, ...]:
    """event.next's events as one event.from over the same span answers them, each object
    once: ``add`` when its first event is an add (nothing when its last is a del too),
    ``del`` when its last is a del, else ``mod``; the snapshot its last add or mod sent.
    xapi queues an event per database write (a VM.start is several mods), event.from one
    per object."""
    grouped: dict[tuple[str, str], list[SeenEvent]] = {}
    for event in seen:
        grouped.setdefault((event.cls, event.ref), []).append(event)
    result: list[SeenEvent] = []
    for (cls, ref), events in grouped.items():
        first, last = events[0].operation, events[-1].operation
        if first == "add" and last == "del":
            continue
        operation = "add" if first == "add" else "del" if last == "del" else "mod"
        snapshots = [e.snapshot for e in events if e.operation != "del"]
        snapshot = snapshots[-1] if snapshots and operation != "del" else None
        result.append(SeenEvent(cls, operation, ref, snapshot, events[-1].id))
    return tuple(result)


def problem_kind(mismatch: Mismatch) -> str:
    """What kind of event problem ``mismatch`` is, as findings group them (``missing-mod``,
    ``unchanged-object``, ``class-filter``, ``snapshot``...)."""
    if " in the snapshot of " in mismatch.where or mismatch.where.startswith("the snapshot of"):
        return "snapshot"
    return mismatch.where.removesuffix(" event").replace(" ", "-")


def _shown(cls: str, ref: str, operation: str, name: Callable[[str], str]) -> str:
    return f"{cls} {name(ref)} ({operation})"


# ---- the task of an Async call ------------------------------------------------------------------


FINISHED = ("success", "failure", "cancelled")


def task_event_mismatch(
    seen: Sequence[SeenEvent],
    task: str,
    method: str,
    span: tuple[datetime.datetime, datetime.datetime],
    hosts: Collection[str],
) -> Mismatch | None:
    """Why the events of one ended ``task`` of an ``Async.`` call of ``method`` (subscribed to
    it from scratch) are not xapi's: one add event, whose snapshot is the ended task."""
    if [(e.cls, e.operation, e.ref) for e in seen] != [("task", "add", task)]:
        listed = ", ".join(f"{e.cls} ({e.operation})" for e in seen) or "nothing"
        return Mismatch("the task's events", f"expected one task (add), got {listed}")
    snapshot = seen[0].snapshot
    if snapshot is None:
        return Mismatch("the task's event", "has no snapshot")
    found = task_mismatch(snapshot, method, span, hosts)
    return None if found is None else Mismatch(f"the task's event: {found.where}", found.how)


def task_del_mismatch(seen: Sequence[SeenEvent], task: str) -> Mismatch | None:
    """Why the events a client subscribed to ``task`` alone sees, from the token it read the
    ended task at, once the task was destroyed, are not xapi's: its del, alone, without a
    snapshot (``Xapi_event.from_inner``)."""
    if [(e.cls, e.operation, e.ref) for e in seen] != [("task", "del", task)]:
        listed = ", ".join(f"{e.cls} ({e.operation})" for e in seen) or "nothing"
        return Mismatch("the destroyed task's events", f"expected one task (del), got {listed}")
    return None


def task_mismatch(
    actual: Mapping[str, object],
    method: str,
    span: tuple[datetime.datetime, datetime.datetime],
    hosts: Collection[str],
) -> Mismatch | None:
    """Why an ended task's record is not as xapi's taskHelper leaves it, or None.

    ``method`` is the ``Async.`` call's name (the task's name_label); ``span`` when the suite
    sent the call and when it saw the task end; ``hosts`` the pool's hosts as the target names
    them. What the task answers (result, error) is the call's outcome, judged as such; here
    only what every ended task shows (taskHelper.ml ``make``, ``complete``, ``failed``).
    """
    for check in (_task_state, _task_outcome, _task_times, _task_placement):
        found = check(actual, method, span, hosts)
        if found:
            return found
    return None


def _task_state(actual: Mapping[str, object], method: str, *_: object) -> Mismatch | None:
    if actual.get("name_label") != method:
        return Mismatch("task name_label", f"expected {method!r}, got {actual.get('name_label')!r}")
    if actual.get("status") not in FINISHED:
        return Mismatch("task status", f"an ended task's is one of {list(FINISHED)}")
    progress = actual.get("progress")
    if isinstance(progress, bool) or not isinstance(progress, float | int) or progress != 1.0:
        return Mismatch("task progress", f"an ended task's is 1.0, got {progress!r}")
    if actual.get("allowed_operations") not in ((), []):
        return Mismatch(
            "task allowed_operations",
            f"an ended task allows nothing, got {actual.get('allowed_operations')!r}",
        )
    return None


def _task_outcome(actual: Mapping[str, object], *_: object) -> Mismatch | None:
    """A success has a result (void calls too: the encoded empty string) and no error_info;
    a failure has error_info and an empty result."""
    succeeded = actual.get("status") == "success"
    result, info = actual.get("result"), actual.get("error_info")
    if not isinstance(result, str) or bool(result) != succeeded:
        wanted_text = "the encoded result" if succeeded else "empty"
        return Mismatch("task result", f"expected {wanted_text}, got {result!r}")
    if not isinstance(info, list | tuple) or bool(info) == succeeded:
        wanted_text = "empty" if succeeded else "the error code and its parameters"
        return Mismatch("task error_info", f"expected {wanted_text}, got {info!r}")
    return None


def _task_times(
    actual: Mapping[str, object],
    _m: str,
    span: tuple[datetime.datetime, datetime.datetime],
    _h: object,
) -> Mismatch | None:
    try:
        created = from_wire(actual.get("created"), _DATETIME)
        finished = from_wire(actual.get("finished"), _DATETIME)
    except WireFormatError as error:
        return Mismatch("task times", str(error))
    assert isinstance(created, datetime.datetime) and isinstance(finished, datetime.datetime)
    start, end = span[0] - CLOCK_SLACK, span[1] + CLOCK_SLACK
    if not start <= created <= end:
        return Mismatch("task created", f"{created.isoformat()} is outside the call's span")
    if not created <= finished <= end:
        return Mismatch(
            "task finished",
            f"{finished.isoformat()} is not between the task's creation and its end",
        )
    return None


def _task_placement(
    actual: Mapping[str, object], _m: str, _s: object, hosts: Collection[str]
) -> Mismatch | None:
    if actual.get("resident_on") not in hosts:
        return Mismatch(
            "task resident_on",
            f"the host that ran the call, got {actual.get('resident_on')!r}",
        )
    if actual.get("subtask_of") != NULL_REF:
        return Mismatch("task subtask_of", f"expected {NULL_REF}, got {actual.get('subtask_of')!r}")
    if actual.get("other_config") not in ({}, None) and not _http_only(actual.get("other_config")):
        return Mismatch(
            "task other_config",
            f"an Async call's task has none, got {actual.get('other_config')!r}",
        )
    return None


def _http_only(other_config: object) -> bool:
    """Keys of the call's HTTP other-config headers (taskHelper.ml ``make``: ``http:`` keys)."""
    return isinstance(other_config, Mapping) and all(
        str(k).startswith("http:") for k in other_config
    )
