"""A reproducer's verdict: the target's answer judged by the suite's own comparison rules.

A reproducer script sends its calls with the standard library and imports ``conforms`` to judge
the last answer, so that it can never say "conforms now" where the suite diverged: the answer is
typed (``compare.typed_answer``: wire types included) and compared (``compare.outcome_mismatch``:
shape-only fields, error parameters, strictness) exactly as the harness does.
"""

from __future__ import annotations

from collections.abc import Mapping

from conformance.judge.compare import (
    AnswerRules,
    Strictness,
    outcome_mismatch,
    typed_answer,
    typed_outcome,
    typed_vm_record,
)
from conformance.judge.events import EventQuestion, Malformed, event_mismatch, read_batch
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
) -> bool:
    """Whether ``answer`` (``("ok", value)`` or ``("error", [code, *params])``, as the script's
    client decoded it) is ``expected``, an answer of xapi to ``method``, by the suite's rules."""
    if method == "event.from":
        return _events_conform(answer, expected)
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
        records = {
            str(ref): typed_vm_record(_decoded(record[1]))
            for ref, record in wanted["records"].items()
            if record[0] == "ok"
        }
    except (Malformed, WireFormatError):
        return False
    events = tuple(
        Event(0, str(cls), str(op), str(ref), records.get(str(ref)))
        for cls, ref, op in wanted["events"]
    )
    question = EventQuestion(
        tuple(wanted["classes"]),
        events,
        lambda cls, ref: cls == "vm" and ref in wanted["records"],
        frozenset(wanted["named"]),
        lambda event: [records[event.ref]] if event.ref in records else [],
    )
    return event_mismatch(question, seen, str) is None


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
