"""Sending one call to the target and reading its answer, typed strictly at the boundary.

Every call the suite judges goes through ``send``: the harness's sequential calls and each
lane of a race alike. An answer is typed as the message declares (``compare.wire_mismatch``
first: an int64 sent as an XML-RPC ``<int>`` is not one xapi sends); an ``Async.`` call's task is
polled until it ends and its result typed the same way. What cannot be read as xapi's answer
comes back ``malformed``, with the reason, for the caller to judge as a divergence.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from conformance.errors import TargetError
from conformance.judge.compare import AnswerRules, Mismatch, typed_outcome, wire_mismatch
from conformance.targets.base import Target
from conformance.wire import WireFormatError, parse_value_text
from models.outcome import Failure, Outcome, Success, Value
from models.schema import XType

__all__ = ["TASK_POLL_BACKOFF_S", "Answer", "send", "typed"]

TASK_POLL_BACKOFF_S = (0.002, 0.25)
"""The Async poll's first pause and its longest: each pause doubles, so a task that ends at once
costs a few milliseconds and a slow one (a real VM.start) a poll every quarter second."""


@dataclass(frozen=True)
class Answer:
    """What the target answered, as far as it could be read: an outcome, or why it is malformed.

    ``via_task`` says the outcome arrived through an ``Async.`` call's task; ``task`` is that
    task's ref (target terms), empty for other calls.
    """

    outcome: Outcome
    via_task: bool = False
    malformed: Mismatch | None = None
    task: str = ""


def send(
    target: Target,
    rules: AnswerRules,
    args: tuple[Value, ...],
    *,
    task_timeout: float,
    on_task: Callable[[str | None], None] = lambda _task: None,
) -> Answer:
    """``rules.method(*args)`` (target terms) on ``target``, typed; an Async call's task awaited.

    ``on_task`` learns the Async call's task as soon as the target names it (None when there is
    none), before the task is polled: another lane may cancel it meanwhile.
    """
    raw = target.call(rules.method, *args)
    answer = typed(raw, rules.answer, target.protocol, "result")
    if not rules.is_async or answer.malformed or not isinstance(answer.outcome, Success):
        on_task(None)
        return answer
    task = str(answer.outcome.value)
    on_task(task)
    session = str(args[0]) if args else ""
    return replace(_await_task(target, session, task, rules, task_timeout), task=task)


def typed(raw: Outcome, returns: XType | None, protocol: str, where: str) -> Answer:
    """``raw`` typed as ``returns`` (still in target terms), or why it cannot be."""
    if isinstance(raw, Failure) or returns is None:
        return Answer(raw)
    problem = wire_mismatch(raw.value, returns, protocol, where)
    if problem is None:
        try:
            return Answer(typed_outcome(raw, returns))
        except WireFormatError as error:
            problem = Mismatch(where, str(error))
    return Answer(raw, malformed=problem)


def _await_task(
    target: Target, session: str, task: str, rules: AnswerRules, limit: float
) -> Answer:
    """Poll the task until it ends, read its outcome, destroy it."""
    deadline = time.monotonic() + limit
    pause, longest = TASK_POLL_BACKOFF_S
    while True:
        status = target.call("task.get_status", session, task)
        if not isinstance(status, Success) or status.value != "pending":
            break
        left = deadline - time.monotonic()
        if left <= 0:
            raise TargetError(
                f"the task of {rules.method} is still pending after {limit:g}s: "
                "the target looks stalled"
            )
        time.sleep(min(pause, left))
        pause = min(pause * 2, longest)
    record = target.call("task.get_record", session, task)
    target.call("task.destroy", session, task)
    return _task_answer(record, rules, target.protocol)


def _task_answer(record: Outcome, rules: AnswerRules, protocol: str) -> Answer:
    if isinstance(record, Failure):
        problem = Mismatch(
            "task", f"task.get_record of the call's own task failed with {record.code}"
        )
        return Answer(record, via_task=True, malformed=problem)
    task = record.value if isinstance(record.value, Mapping) else {}
    status = task.get("status")
    if status == "success":
        return _task_result(task.get("result", ""), rules, protocol)
    info = task.get("error_info", ())
    if status in ("failure", "cancelled") and isinstance(info, Sequence) and info:
        codes = [str(x) for x in info]
        return Answer(Failure(codes[0], tuple(codes[1:])), via_task=True)
    problem = Mismatch("task", f"status {status!r} with error_info {info!r}")
    return Answer(Failure("", ()), via_task=True, malformed=problem)


def _task_result(text: Value, rules: AnswerRules, protocol: str) -> Answer:
    try:
        raw = parse_value_text(str(text))
    except WireFormatError as error:
        problem = Mismatch("task.result", f"not a XenAPI value ({error})")
        return Answer(Success(str(text)), via_task=True, malformed=problem)
    answer = typed(Success(raw), rules.result, protocol, "task.result")  # type: ignore[arg-type]
    return replace(answer, via_task=True)
