"""The events area's watch: a client's event.from subscription, judged after every step.

A session subscribed before the example starts; after each step, event.from with the last
token must answer exactly the objects the model (``models.events``) says changed since it, with
their records as ``VM.get_record`` is judged. Other clients' objects on a shared pool are
tolerated, as queries over the pool are. Polls from an older token, with narrower
subscriptions, with nothing to report, and by a logged-out session are judged too.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import NoReturn

from conformance.engine.answers import TaskEnd
from conformance.engine.harness import Harness
from conformance.judge.compare import SHAPE_ONLY_FIELDS, Mismatch
from conformance.judge.divergence import DivergenceInfo
from conformance.judge.events import (
    EventQuestion,
    Malformed,
    SeenEvent,
    event_mismatch,
    problem_kind,
    read_batch,
    task_mismatch,
)
from conformance.judge.refs import RefMap
from models.checks import assume_drivers, readings
from models.events import Event, EventHistory
from models.outcome import Failure, Outcome, Success, Value
from models.records import read_record
from models.world import World, frozen

__all__ = ["SUBSCRIPTION", "EventWatch"]

SUBSCRIPTION = ("vm", "task")
"""What the watch subscribes to: the suite's VMs and the tasks of its Async calls."""
IDLE_WAIT_S = 0.1
"""How long the poll with nothing to report waits (event.from's timeout)."""


@dataclass(frozen=True)
class Mark:
    """A point the watch polled at: the target's token, the model's generation then, and how
    many calls the example had made."""

    token: str
    generation: int
    calls: int


class EventWatch:
    """One example's subscription, on the target and in the model side by side."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.history = EventHistory.start(harness.world)
        self.marks = [Mark(self._start_token(), self.history.generation, 0)]
        self.tasks: dict[str, str] = {}
        """The tasks of the example's Async calls (target refs) and their short names."""

    def _start_token(self) -> str:
        """A token of now: event.from from the connection's last token (the first example:
        from scratch), its answer not judged. What earlier examples left behind (their
        teardown, a poll a divergence cut short) is consumed here, so an example's polls
        answer its own calls alone, the same each time Hypothesis replays its draws."""
        connection = self.harness.connection
        _seen, token = self._from(SUBSCRIPTION, connection.event_token, 0.0, "subscribe")
        connection.event_token = token
        return token

    # ---- the polls --------------------------------------------------------------------------

    def poll(self) -> None:
        """event.from(vm, task) from the last token: the changes of the last step(s)."""
        self._record()
        mark = self.marks[-1]
        _seen, token = self._judged(SUBSCRIPTION, mark, 0.0)
        self.marks.append(Mark(token, self.history.generation, len(self.harness.log)))
        self.harness.connection.event_token = token

    def _record(self) -> None:
        """The model's history after the example's world now. What the model learnt since the
        last poll restates the earlier records first (a guest-driver fact, the values of fields
        the target chooses, such as a uuid read back): learning changes what the model knows of
        the records, not the records on the target."""
        world, base = self.harness.world, self.history.world
        learnt = world.facts.guest_has_pv_drivers
        if base.facts.guest_has_pv_drivers is None and learnt is not None:
            base = assume_drivers(base, learnt)
        base = _with_chosen_fields(base, world)
        if base is not self.history.world:
            self.history = self.history.restated(base)
        self.history = self.history.record(world)[0]

    def resume(self, back: int) -> None:
        """event.from from an older token: every change since, each object once."""
        self._record()
        self._judged(SUBSCRIPTION, self.marks[max(0, len(self.marks) - 1 - back)], 0.0)

    def filtered(self, classes: Sequence[str]) -> None:
        """event.from with a narrower subscription (``vm/<ref>``, ``task``, ``host``) from the
        first token of the example: nothing outside it may be answered."""
        self._record()
        self._judged(tuple(classes), self.marks[0], 0.0)

    def idle(self) -> None:
        """event.from with nothing new since the token: it waits its timeout, then answers
        none of the suite's objects."""
        self._record()
        self._judged(SUBSCRIPTION, self.marks[-1], IDLE_WAIT_S)

    def task_ended(self, end: TaskEnd) -> None:
        """An ``Async.`` call's task has ended: a client subscribed to it (``task/<ref>``)
        sees it once, as added, its snapshot a finished task as taskHelper leaves it."""
        self.tasks[end.task] = f"task{len(self.tasks) + 1}"
        classes = (f"task/{end.task}",)
        seen, _token = self._from(classes, "", 0.0, "task")
        mismatch = _task_event_mismatch(seen, end, self._hosts())
        if mismatch is not None:
            shown = Success(tuple(f"{e.cls} ({e.operation})" for e in seen))
            self._diverge("task-event", mismatch, [Success("task (add)")], shown, classes)
        self.harness.connection.tally.coverage["event.from", "task", "add"] += 1

    def task_gone(self) -> None:
        """After the harness destroyed the last Async call's task: task.get_record answers
        HANDLE_INVALID and task.get_all no longer lists it (xapi_task.ml destroy)."""
        if not self.tasks:
            return
        task = list(self.tasks)[-1]
        target, session = self.harness.connection.target, self._session()
        record = target.call("task.get_record", session, task)
        listed = target.call("task.get_all", session)
        gone = Failure("HANDLE_INVALID", ("task", task))
        if record != gone:
            problem = Mismatch("task.get_record", "a destroyed task must be gone")
            self._diverge("task-destroy", problem, [gone], record, ("task",))
        if isinstance(listed, Success) and task in _as_list(listed.value):
            problem = Mismatch("task.get_all", "a destroyed task must not be listed")
            self._diverge("task-destroy", problem, [Success("without it")], listed, ("task",))

    def _session(self) -> str:
        return str(self.harness.refs.to_target(self.harness.session))

    def _hosts(self) -> list[str]:
        return [str(self.harness.refs.to_target(h)) for h in self.harness.world.hosts]

    def session_poll(self, session: str) -> None:
        """event.from by another live ``session`` (model ref) of the suite's: a batch."""
        target_session = str(self.harness.refs.to_target(session))
        outcome = self._call(target_session, SUBSCRIPTION, self.marks[-1].token, 0.0)
        if isinstance(outcome, Failure):
            problem = Mismatch("outcome", f"event.from failed with {outcome.code}")
            self._diverge("session", problem, [Success("an event batch")], outcome)

    def logged_out(self, session: str) -> None:
        """event.from by ``session`` (model ref), already logged out: SESSION_INVALID."""
        target_session = str(self.harness.refs.to_target(session))
        outcome = self._call(target_session, SUBSCRIPTION, self.marks[-1].token, 0.0)
        expected = Failure("SESSION_INVALID", (target_session,))
        if outcome != expected:
            shown = Failure("SESSION_INVALID", (session,))
            problem = Mismatch("outcome", "a logged-out session's event.from must fail")
            self._diverge("logout", problem, [shown], self.harness.refs.outcome_to_model(outcome))

    # ---- the exchange -------------------------------------------------------------------------

    def _judged(
        self, classes: tuple[str, ...], mark: Mark, timeout: float
    ) -> tuple[tuple[SeenEvent, ...], str]:
        seen, token = self._from(classes, mark.token, timeout, "poll")
        question = self._question(classes, mark)
        mismatch = event_mismatch(question, seen, self._name)
        if mismatch is not None:
            expected = Success(
                tuple(
                    _shown_event(e.cls, e.ref, e.operation, self._name) for e in question.expected
                )
            )
            actual = Success(
                tuple(
                    _shown_event(e.cls, e.ref, e.operation, self._name)
                    for e in seen
                    if question.judged(e.cls, e.ref) or e.cls not in classes
                )
            )
            self._diverge(problem_kind(mismatch), mismatch, [expected], actual, classes)
        self._count(seen, question)
        return seen, token

    def _question(self, classes: tuple[str, ...], mark: Mark) -> EventQuestion:
        expected = tuple(
            e
            for e in self.history.since(mark.generation, classes).events
            if self._judged_object(e.cls, e.ref)
        )
        named = self._named(mark.calls)
        return EventQuestion(classes, expected, self._judged_object, named, self._records)

    def _records(self, event: Event) -> list[Mapping[str, Value]]:
        """The VM's record under each guest-driver assumption still open (one when known)."""
        worlds = readings(self.harness.world)
        return [read_record(w, event.ref) for w in worlds if event.ref in w.vms]

    def _judged_object(self, cls: str, ref: str) -> bool:
        """The suite's own VMs and tasks (other clients' objects are tolerated)."""
        if cls == "task":
            return ref in self.tasks
        return cls == "vm" and self.harness.refs.kind(ref) == "vm"

    def _named(self, since: int) -> frozenset[str]:
        named: set[str] = set()
        for call in self.harness.log[since:]:
            named.update(a for a in call.args if isinstance(a, str))
            if call.result_ref:
                named.add(call.result_ref)
        return frozenset(named)

    def _from(
        self, classes: Sequence[str], token: str, timeout: float, what: str
    ) -> tuple[tuple[SeenEvent, ...], str]:
        outcome = self._call(self._session(), classes, token, timeout)
        if isinstance(outcome, Failure):
            problem = Mismatch("outcome", f"event.from failed with {outcome.code}")
            self._diverge(what, problem, [Success("an event batch")], outcome, tuple(classes))
        try:
            seen, new_token = read_batch(outcome.value)
        except Malformed as bad:
            self._diverge(what, bad.mismatch, [Success("an event batch")], outcome, tuple(classes))
        refs = self.harness.refs
        return tuple(
            SeenEvent(e.cls, e.operation, str(refs.to_model(e.ref)), _to_model(refs, e.snapshot))
            for e in seen
        ), new_token

    def _call(self, session: str, classes: Sequence[str], token: str, timeout: float) -> Outcome:
        """event.from on the target, ``classes`` in model terms (``vm/<ref>`` too)."""
        target = self.harness.connection.target
        sent = [self._target_class(c) for c in classes]
        return target.call("event.from", session, sent, token, timeout)

    def _target_class(self, subscription: str) -> str:
        cls, sep, ref = subscription.partition("/")
        return f"{cls}{sep}{self.harness.refs.to_target(ref)}" if sep else subscription

    def _name(self, ref: str) -> str:
        return self.harness.refs.name(ref) or self.tasks.get(ref, ref)

    def _count(self, seen: Sequence[SeenEvent], question: EventQuestion) -> None:
        coverage = self.harness.connection.tally.coverage
        for event in seen:
            if question.judged(event.cls, event.ref):
                coverage["event.from", event.cls, event.operation] += 1

    def _diverge(
        self,
        kind: str,
        mismatch: Mismatch,
        expected: list[Outcome],
        actual: Outcome,
        classes: tuple[str, ...] = SUBSCRIPTION,
    ) -> NoReturn:
        calls = [c.method for c in self.harness.log[self.marks[-1].calls :]]
        after = f"after {', '.join(calls)}" if calls else "with no call since the token"
        text = f"event.from({list(classes)}, token)"
        message = f"[events] {after}, {text}: {self.harness.refs.display_text(str(mismatch))}"
        info = DivergenceInfo(
            method="event.from",
            params=(tuple(classes),),
            expected=tuple(expected),
            actual=actual,
            area="events",
            kind=kind,
            message=message,
            reason=str(mismatch),
            calls=(*self.harness.shown_calls(), (text, actual)),
        )
        self.harness.diverged(info)


def _shown_event(cls: str, ref: str, operation: str, name: object) -> Value:
    return f"{cls} {name(ref)} ({operation})"  # type: ignore[operator]


def _task_event_mismatch(
    seen: Sequence[SeenEvent], end: TaskEnd, hosts: Sequence[str]
) -> Mismatch | None:
    """Why the events of one ended task (subscribed from scratch) are not xapi's: one add
    event, whose snapshot is the ended task."""
    if [(e.cls, e.operation, e.ref) for e in seen] != [("task", "add", end.task)]:
        listed = ", ".join(f"{e.cls} ({e.operation})" for e in seen) or "nothing"
        return Mismatch("the task's events", f"expected one task (add), got {listed}")
    snapshot = seen[0].snapshot
    if snapshot is None:
        return Mismatch("the task's event", "has no snapshot")
    span = (end.sent, datetime.datetime.now(datetime.UTC))
    found = task_mismatch(snapshot, end.rules.method, span, hosts)
    return None if found is None else Mismatch(f"the task's event: {found.where}", found.how)


def _to_model(refs: RefMap, snapshot: Mapping[str, object] | None) -> Mapping[str, object] | None:
    """A snapshot as the model names things: the suite's target refs in it mapped back."""
    if snapshot is None:
        return None
    return {key: refs.to_model(value) for key, value in snapshot.items()}  # type: ignore[arg-type]


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _with_chosen_fields(base: World, now: World) -> World:
    """``base`` whose VMs hold the values ``now`` has for the fields the target chooses
    (``SHAPE_ONLY_FIELDS``); ``base`` itself when none differs."""
    vms = dict(base.vms)
    for ref, vm in base.vms.items():
        current = now.vms.get(ref)
        if current is None:
            continue
        chosen = {f: current[f] for f in SHAPE_ONLY_FIELDS if f in vm and f in current}
        if any(vm[f] != value for f, value in chosen.items()):
            vms[ref] = frozen({**vm, **chosen})
    return base if vms == base.vms else replace(base, vms=MappingProxyType(vms))
