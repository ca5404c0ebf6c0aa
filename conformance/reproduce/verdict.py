"""A reproducer's verdict: the target's answer judged by the suite's own comparison rules.

A reproducer script sends its calls with the standard library and imports ``conforms`` to judge
the last answer, so that it can never say "conforms now" where the suite diverged: the answer is
typed (``compare.typed_answer``: wire types included) and compared (``compare.outcome_mismatch``:
shape-only fields, error parameters, strictness) exactly as the harness does.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from conformance.judge.compare import (
    AnswerRules,
    Strictness,
    outcome_mismatch,
    typed_answer,
    typed_outcome,
    typed_vm_record,
)
from conformance.judge.events import (
    EventQuestion,
    Malformed,
    batch_shape_mismatch,
    coalesced,
    event_mismatch,
    next_del_mismatch,
    next_order_mismatch,
    next_shape_mismatch,
    order_mismatch,
    outside_mismatch,
    read_batch,
    read_events,
    task_del_mismatch,
    task_event_mismatch,
    task_mismatch,
)
from conformance.reproduce.reproducer import TASK_DEL, TASK_EVENT, TASK_LISTED, TASK_RECORD
from conformance.wire import WireFormatError
from conformance.wire.base import DateTimeText
from conformance.wire.typed import failure_from_wire, raw_value
from models.events import Event
from models.outcome import Outcome, Success

__all__ = ["conforms"]


def conforms(
    method: str,
    answer: tuple[str, object],
    expected: tuple[str, object],
    *,
    protocol: str,
    strictness: Strictness,
    exact: bool = False,
) -> bool:
    """Whether ``answer`` (``("ok", value)`` or ``("error", [code, *params])``, as the script's
    client decoded it) is ``expected``, an answer of xapi to ``method``, by the suite's rules
    (a success's value equal to the expected one when ``exact``: ``Mismatch.exact``)."""
    if exact and expected[0] == "ok":
        return answer[0] == "ok" and _outcome(answer) == _outcome(expected)
    if expected[0] == "error" and method in _JUDGED_HERE:
        return answer[0] == "error" and _outcome(answer) == _outcome(expected)
    if method in _JUDGED_HERE:
        return _JUDGED_HERE[method](answer, expected)
    rules = AnswerRules.of(method)
    try:
        actual, problem = typed_answer(_outcome(answer), rules.result, protocol)
        wanted = typed_outcome(_outcome(expected), rules.result)
    except WireFormatError:
        return False
    mismatch = outcome_mismatch(
        wanted,
        actual,
        returns=rules.result,
        result_field=rules.result_field,
        shape_only=rules.shape_only,
        strictness=strictness,
    )
    return problem is None and mismatch is None


def _events_conform(answer: tuple[str, object], expected: tuple[str, object]) -> bool:
    """An event.from answer: any event batch when ``expected`` asks for one (``"batch"``),
    else the suite's events (``_polled_events_conform``)."""
    wanted = expected[1]
    if isinstance(wanted, Mapping) and "batch" in wanted:
        try:
            read_batch(_decoded(answer[1]))
        except Malformed:
            return False
        return answer[0] == "ok"
    return _polled_events_conform(answer, expected)


def _polled_events_conform(answer: tuple[str, object], expected: tuple[str, object]) -> bool:
    """Whether an event.from answer reports what xapi's does, judged as the events area judges
    it (``conformance.judge.events``). ``expected`` holds the subscription (``classes``), the
    suite's events as [class, ref, operation] (``events``), the VMs the calls since the token
    named (``named``), and every VM the script made, as VM.get_record answered right after
    (``records``): its own objects, the others tolerated."""
    status, value = answer
    wanted = expected[1]
    if status != "ok" or not isinstance(wanted, Mapping):
        return False
    try:
        seen, _token = read_batch(_decoded(value))
        question = _question(wanted)
    except (Malformed, WireFormatError):
        return False
    since = str(wanted.get("since", ""))
    shape = batch_shape_mismatch(value, since) if isinstance(value, Mapping) else None
    shape = shape or order_mismatch(seen)
    return shape is None and event_mismatch(question, seen, str) is None


def _question(wanted: Mapping[str, Any]) -> EventQuestion:
    """The events area's question of ``wanted`` (``_polled_events_conform``'s expected value)."""
    records = {
        str(ref): typed_vm_record(_decoded(record[1]))
        for ref, record in wanted["records"].items()
        if record[0] == "ok"
    }
    events = tuple(
        Event(0, str(cls), str(op), str(ref), records.get(str(ref)))
        for cls, ref, op in wanted["events"]
    )
    return EventQuestion(
        tuple(wanted["classes"]),
        events,
        lambda cls, ref: cls == "vm" and ref in wanted["records"],
        frozenset(wanted["named"]),
        lambda event: [records[event.ref]] if event.ref in records else [],
    )


def _next_conforms(answer: tuple[str, object], expected: tuple[str, object]) -> bool:
    """An event.next answer: its ids after ``after`` (the last id the script's earlier
    event.next calls answered), each object's add first and del last, and, coalesced per
    object, the changes event.from over the same span answers (``_polled_events_conform``)."""
    status, value = answer
    wanted = expected[1]
    if status != "ok" or not isinstance(wanted, Mapping):
        return False
    try:
        seen = read_events(_decoded(value))
        question = _question(wanted)
    except (Malformed, WireFormatError):
        return False
    after = int(wanted["after"])
    decoded = _decoded(value)
    shape = next_shape_mismatch(decoded) if isinstance(decoded, list) else None
    order = shape or next_order_mismatch(seen, after, str)
    order = order or outside_mismatch(tuple(wanted["classes"]), seen, str)
    gone = {str(ref): None for ref, record in wanted["records"].items() if record[0] != "ok"}
    order = order or next_del_mismatch(seen, gone, str)
    return order is None and event_mismatch(question, coalesced(seen), str) is None


def _span(value: Mapping[str, Any]) -> tuple[datetime.datetime, datetime.datetime]:
    return (
        datetime.datetime.fromisoformat(str(value["sent"])),
        datetime.datetime.fromisoformat(str(value["ended"])),
    )


def _task_record_conforms(answer: tuple[str, object], expected: tuple[str, object]) -> bool:
    """An ended Async call's task record (``task_record`` in the script) as xapi's
    taskHelper leaves it (``judge.events.task_mismatch``); ``expected`` names the call."""
    status, value = answer
    wanted = expected[1]
    if status != "ok" or not isinstance(value, Mapping) or not isinstance(wanted, Mapping):
        return False
    record = _decoded(value["record"])
    if not isinstance(record, Mapping):
        return False
    hosts = [str(h) for h in value["hosts"]]
    return task_mismatch(record, str(wanted["task of"]), _span(value), hosts) is None


def _task_event_conforms(answer: tuple[str, object], expected: tuple[str, object]) -> bool:
    """What a client subscribed to an ended Async call's task sees (``task_event`` in the
    script): one add, its snapshot the ended task (``judge.events.task_event_mismatch``)."""
    status, value = answer
    wanted = expected[1]
    if status != "ok" or not isinstance(value, Mapping) or not isinstance(wanted, Mapping):
        return False
    try:
        seen, _token = read_batch(_decoded(value["batch"]))
    except Malformed:
        return False
    hosts = [str(h) for h in value["hosts"]]
    method = str(wanted["task of"])
    return task_event_mismatch(seen, str(value["task"]), method, _span(value), hosts) is None


def _task_del_conforms(answer: tuple[str, object], _expected: tuple[str, object]) -> bool:
    """What a client subscribed to an Async call's task sees from the token it read the ended
    task at, once the task is destroyed (``task_del_event`` in the script): its del alone
    (``judge.events.task_del_mismatch``)."""
    status, value = answer
    if status != "ok" or not isinstance(value, Mapping):
        return False
    try:
        seen, _token = read_batch(_decoded(value["batch"]))
    except Malformed:
        return False
    return task_del_mismatch(seen, str(value["task"])) is None


_JUDGED_HERE: dict[str, Callable[[tuple[str, object], tuple[str, object]], bool]] = {
    "event.from": _events_conform,
    "event.next": _next_conforms,
    TASK_RECORD: _task_record_conforms,
    TASK_EVENT: _task_event_conforms,
    TASK_DEL: _task_del_conforms,
    TASK_LISTED: lambda answer, expected: tuple(answer) == tuple(expected),
}
"""Answers judged by the events area's rules, not as a call's answer (an expected error is
compared as any error)."""


def _outcome(answer: tuple[str, object]) -> Outcome:
    status, value = answer
    if status == "ok":
        return Success(raw_value(_decoded(value)))
    return failure_from_wire(value)


def _decoded(value: object) -> object:
    """``value`` as the suite's codecs decode it: an XML-RPC dateTime as its text, marked as a
    date (``DateTimeText``)."""
    text = getattr(value, "value", None)
    if isinstance(text, str) and type(value).__name__ == "DateTime":
        return DateTimeText(text)
    if isinstance(value, Mapping):
        return {key: _decoded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_decoded(item) for item in value]
    return value
