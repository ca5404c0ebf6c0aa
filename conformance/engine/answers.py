"""Sending one call to the target and reading its answer, typed strictly at the boundary.

Every call the suite judges goes through ``send``: the harness's sequential calls and each
lane of a race alike. An answer is typed as the message declares (``compare.wire_mismatch``
first: an int64 sent as an XML-RPC ``<int>`` is not one xapi sends); an ``Async.`` call's task is
polled until it ends and its result typed the same way. What cannot be read as xapi's answer
comes back ``malformed``, with the reason, for the caller to judge as a divergence.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from conformance.errors import MalformedAnswer, TargetStalled
from conformance.judge.compare import AnswerRules, Mismatch, typed_answer
from conformance.judge.events import task_mismatch
from conformance.targets import Target, give_up
from conformance.wire import WireFormatError, parse_value_text
from models.outcome import Failure, Outcome, Success, Value
from models.schema import XType

__all__ = ["TASK_POLL_BACKOFF_S", "Answer", "TaskEnd", "send", "typed"]

TASK_POLL_BACKOFF_S = (0.002, 0.25)
"""The Async poll's first pause and its longest: each pause doubles, so a task that ends at once
costs a few milliseconds and a slow one (a real VM.start) a poll every quarter second."""


@dataclass(frozen=True)
class Answer:
    """What the target answered, as far as it could be read: an outcome, or why it is malformed.

    ``via_task`` says the outcome arrived through an ``Async.`` call's task; ``task`` is that
    task's ref (target terms), empty for other calls. ``task_problem`` says ``malformed`` is
    the ended task's record, not as xapi's taskHelper leaves it.
    """

    outcome: Outcome
    via_task: bool = False
    malformed: Mismatch | None = None
    task: str = ""
    task_problem: bool = False


@dataclass(frozen=True)
class TaskEnd:
    """An ``Async.`` call whose task has ended: the session and task (target refs), the call's
    rules and when it was sent."""

    session: str
    task: str
    rules: AnswerRules
    sent: datetime.datetime
    args: tuple[Value, ...] = ()
    """The call's arguments after the session (target refs)."""


def send(
    target: Target,
    rules: AnswerRules,
    args: tuple[Value, ...],
    *,
    task_timeout: float,
    on_task: Callable[[str | None], None] = lambda _task: None,
    on_task_end: Callable[[TaskEnd], None] | None = None,
    hosts: Collection[str] | None = None,
    keep_task: bool = False,
) -> Answer:
    """``rules.method(*args)`` (target terms) on ``target``, typed; an Async call's task awaited.

    ``on_task`` learns the Async call's task as soon as the target names it (None when there is
    none), before the task is polled: another lane may cancel it meanwhile. ``on_task_end``
    learns it once it has ended, before it is read and destroyed (left, with ``keep_task``, for
    the caller to use and destroy). With ``hosts`` (the pool's, target terms) the ended task's
    record is judged as taskHelper leaves it.
    """
    sent = datetime.datetime.now(datetime.UTC)
    try:
        raw = target.call(rules.method, *args)
    except MalformedAnswer as error:
        on_task(None)
        return Answer(
            Failure("", ()), malformed=Mismatch("answer", f"not a XenAPI answer: {error}")
        )
    answer = typed(raw, rules.answer, target.protocol, "result")
    if not rules.is_async or answer.malformed or not isinstance(answer.outcome, Success):
        on_task(None)
        return answer
    task = str(answer.outcome.value)
    on_task(task)
    end = TaskEnd(str(args[0]) if args else "", task, rules, sent, tuple(args[1:]))
    answer = _await_task(target, end, task_timeout, on_task_end, hosts, keep_task)
    return replace(answer, task=task)


def typed(raw: Outcome, returns: XType | None, protocol: str, where: str) -> Answer:
    """``raw`` typed as ``returns`` (still in target terms), or why it cannot be."""
    outcome, problem = typed_answer(raw, returns, protocol, where)
    return Answer(outcome, malformed=problem)


def _await_task(
    target: Target,
    end: TaskEnd,
    limit: float,
    on_task_end: Callable[[TaskEnd], None] | None,
    hosts: Collection[str] | None,
    keep_task: bool,
) -> Answer:
    """Poll the task until it ends, read its outcome, destroy it (unless ``keep_task``)."""
    session, task, rules = end.session, end.task, end.rules
    deadline = time.monotonic() + limit
    pause, longest = TASK_POLL_BACKOFF_S
    while True:
        status = target.call("task.get_status", session, task)
        if not isinstance(status, Success) or status.value != "pending":
            break
        left = deadline - time.monotonic()
        if left <= 0:
            reason = (
                f"the task {task} of {rules.method} is still pending after {limit:g}s (the "
                "task timeout, --timeout): the target looks stalled"
            )
            give_up(target, reason)
            raise TargetStalled(reason)
        time.sleep(min(pause, left))
        pause = min(pause * 2, longest)
    if on_task_end is not None:
        on_task_end(end)
    record = target.call("task.get_record", session, task)
    if not keep_task:
        target.call("task.destroy", session, task)
    answer = _task_answer(record, rules, target.protocol)
    problem = None if hosts is None else _task_problem(record, end, hosts)
    if problem is None or answer.malformed:
        return answer
    return replace(answer, malformed=problem, task_problem=True)


def _task_problem(record: Outcome, end: TaskEnd, hosts: Collection[str]) -> Mismatch | None:
    """How the ended task's record differs from what xapi's taskHelper leaves, if it does."""
    if not isinstance(record, Success) or not isinstance(record.value, Mapping):
        return None
    span = (end.sent, datetime.datetime.now(datetime.UTC))
    return task_mismatch(record.value, end.rules.method, span, hosts)


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
