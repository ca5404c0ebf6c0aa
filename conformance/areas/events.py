"""The events area's watch: a client's event.from subscription, judged after every step.

A session subscribed before the example starts; after each step, event.from with the last
token must answer exactly the objects the model (``models.events``) says changed since it, with
their records as ``VM.get_record`` is judged. Other clients' objects on a shared pool are
tolerated, as queries over the pool are. Polls from an older token, with narrower
subscriptions, with nothing to report, and by a logged-out session are judged too.
"""

from __future__ import annotations

import contextlib
import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NoReturn, cast

from conformance.engine.answers import TaskEnd
from conformance.engine.harness import Cell, Harness
from conformance.errors import TargetError
from conformance.judge.compare import SHAPE_ONLY_FIELDS, Mismatch
from conformance.judge.divergence import DivergenceInfo
from conformance.judge.events import (
    EventQuestion,
    Malformed,
    SeenEvent,
    batch_shape_mismatch,
    coalesced,
    current_id_mismatch,
    event_mismatch,
    next_del_mismatch,
    next_order_mismatch,
    next_shape_mismatch,
    order_mismatch,
    outside_mismatch,
    problem_kind,
    read_batch,
    read_events,
    task_del_mismatch,
    task_event_mismatch,
)
from conformance.judge.refs import RefMap
from conformance.reproduce.reproducer import (
    CATCH_UP,
    INJECT,
    LAST_ID,
    LAST_TASK,
    LOGIN,
    NEXT_CATCH_UP,
    RECORDS,
    TASK_DEL,
    TASK_EVENT,
    TASK_LISTED,
    TOKEN,
    TRACKID,
    LoggedCall,
)
from models.checks import assume_drivers, readings
from models.events import Event, EventHistory, NextQueue, class_name, parse_token, read_token
from models.outcome import Failure, Outcome, Success, Value
from models.records import read_record
from models.world import World, frozen

__all__ = ["IDLE_WAIT_S", "SUBSCRIPTION", "EventWatch"]

SUBSCRIPTION = ("vm", "task")
"""What the watch subscribes to: the suite's VMs and the tasks of its Async calls."""
IDLE_WAIT_S = 0.1
"""How long the poll with nothing to report waits (event.from's timeout)."""
MISREPORTED = frozenset({"missing-add", "missing-mod", "missing-del", "wrong-operation"})
"""Event problems of a change reported wrongly or not at all: blamed on the call that made it."""
MALFORMED_TOKENS = (
    "abc",
    "42",
    "1,2,3",
    "00000000000000000001,",
    "1.5,0",
    "0x,0",
    "0,9223372036854775808",
    "9223372036854775808,0",
)
"""Tokens xapi cannot read (``Xapi_event.Token.of_string``: two parts, each OCaml's
``Int64.of_string``): event.from raises EVENT_FROM_TOKEN_PARSE_FAILURE [token]."""
INT64_BOUNDS = (-(2**63), 2**63 - 1)
"""The message counts of the tokens at the edges of int64 the watch also sends: xapi reads
them (``Int64.of_string``), so event.from answers a batch."""
_SNAPSHOT_FIELD = re.compile(r"(?:field |result\.)(\w+)")


@dataclass(frozen=True)
class Mark:
    """A point the watch polled at: the target's token, the generation the model's token
    would hold (what the target's holds when no other client writes), how many calls the
    example had made, and the model's newest generation then (``seen``; -1: ``generation``)."""

    token: str
    generation: int
    calls: int
    seen: int = -1

    @property
    def newest(self) -> int:
        """The model's newest generation when the watch polled."""
        return self.generation if self.seen < 0 else self.seen


@dataclass
class Legacy:
    """The example's event.register subscription: its session (model ref) and classes, the
    point event.next last read at, and the last queue id it answered (-1: none yet)."""

    session: str
    classes: tuple[str, ...]
    mark: Mark
    answered_up_to: int = -1
    current_id: int = -1
    """What event.get_current_id last answered (-1: not yet called)."""
    script: list[tuple[int, LoggedCall]] = field(default_factory=list)
    """Its calls a reproducer replays, each with how many of the example's calls came before:
    event.register, event.unregister, and each event.next (a catch-up, unjudged)."""


class EventWatch:
    """One example's subscription, on the target and in the model side by side."""

    def __init__(self, harness: Harness, idle_wait_s: float = IDLE_WAIT_S) -> None:
        self.harness = harness
        self.idle_wait_s = idle_wait_s
        """event.from's timeout in the poll with nothing to report."""
        self.history = EventHistory.start(harness.world)
        self.tasks: dict[str, str] = {}
        """The tasks of the example's Async calls (target refs) and their short names."""
        self.destroyed: dict[str, Mapping[str, Value]] = {}
        """The example's destroyed VMs and their last records (event.next's del snapshots)."""
        self.ended: tuple[TaskEnd, str] | None = None
        """The last Async call's ended task and the token its own subscription read it at."""
        self.legacy = self._register()
        """The legacy subscription, taken before the example too (None if its login failed)."""
        self.marks: list[Mark] = []
        self.marks.append(Mark(self._start_token(), self.history.generation, len(harness.log)))

    def _start_token(self) -> str:
        """A token of now: event.from from the connection's last token (the first example:
        from scratch), its answer not judged. What earlier examples left behind (their
        teardown, a poll a divergence cut short) is consumed here, so an example's polls
        answer its own calls alone, the same each time Hypothesis replays its draws."""
        connection = self.harness.connection
        _seen, token = self._from(
            SUBSCRIPTION, connection.event_token, 0.0, "subscribe", self._scratch_reproducer
        )
        connection.event_token = token
        return token

    def _scratch_reproducer(self) -> str:
        """The script of a finding of the subscription's struct: the calls so far (logins),
        then event.from from scratch, judged by the area's rules (none of the suite's objects
        yet)."""
        final = LoggedCall("event.from", (SUBSCRIPTION, "", 0.0), self.harness.session)
        expected = {"classes": SUBSCRIPTION, "events": (), "named": (), "records": RECORDS}
        text = f"event.from({list(SUBSCRIPTION)}, '')"
        return self.harness.event_reproducer(
            self.harness.log, final, Success({**expected, "since": ""}), text
        )

    # ---- the polls --------------------------------------------------------------------------

    def poll(self) -> None:
        """event.from(vm, task) from the last token: the changes of the last step(s); every
        second time, event.next too (its span two steps)."""
        self._record()
        mark = self.marks[-1]
        _seen, token = self._judged(SUBSCRIPTION, mark, 0.0)
        covered = parse_token(self.history.since(mark.generation, SUBSCRIPTION).token)
        assert covered is not None
        calls, newest = len(self.harness.log), self.history.generation
        self.marks.append(Mark(token, covered, calls, newest))
        self.harness.connection.event_token = token
        if len(self.marks) % 2:
            self.legacy_next()

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
        self.history, found = self.history.record(world)
        self.destroyed.update(
            {c.key[1]: c.snapshot for c in found if c.key[0] == "vm" and c.operation == "del"}
        )

    def resume(self, back: int) -> None:
        """event.from from an older token: every change since, each object once."""
        self._record()
        self._judged(SUBSCRIPTION, self.marks[max(0, len(self.marks) - 1 - back)], 0.0)

    def filtered(self, classes: Sequence[str]) -> None:
        """event.from with another subscription (``vm/<ref>``, ``task``, ``host``, ``VM``:
        classes match case-insensitively; ``*``: every class) from the first token of the
        example: nothing outside it may be answered, and every change within it is."""
        self._record()
        self._judged(tuple(classes), self.marks[0], 0.0)

    def inject(self, vm: str, table: str) -> None:
        """event.inject(table, vm) (``Xapi_event.inject``). With the table's name (``VM``), a
        token just before a new change of the VM: event.from(["vm"], that token) answers the
        VM (mod) alone, and later polls and event.next report the change. Any other spelling
        (``vm``), or a VM destroyed, is HANDLE_INVALID [table, ref]."""
        self._record()
        refs = self.harness.refs
        answer = self.harness.connection.target.call(
            "event.inject", self._session(), table, refs.to_target(vm)
        )
        injected = self.history.inject(table, vm)
        text = f"event.inject({table!r}, {self._name(vm)})"
        if injected is None:
            expected: Outcome = Failure("HANDLE_INVALID", (table, vm))
            if refs.outcome_to_model(answer) != expected:
                problem = Mismatch("outcome", "no such object of that table: HANDLE_INVALID")
                actual = refs.outcome_to_model(answer)
                self._diverge("inject", problem, [expected], actual, ("vm",), text)
            return
        if not isinstance(answer, Success) or not isinstance(answer.value, str):
            problem = Mismatch("outcome", "event.inject answers a token")
            self._diverge("inject", problem, [Success("a token")], answer, ("vm",), text)
        self.history = injected[0]
        mark = Mark(answer.value, self.history.generation - 1, len(self.harness.log))
        final = LoggedCall(INJECT, (table, vm), self.harness.session)
        self._judged(("vm",), mark, 0.0, f"event.from(['vm'], the token of {text})", (final,))
        self.harness.log.append(final)  # later findings' scripts touch the VM too

    def idle(self) -> None:
        """event.from with nothing new since the token: it waits its timeout, then answers
        none of the suite's objects; so does one subscribed to the suite's last VM alone, and
        one subscribed to no class at all from the example's first token (an empty list
        matches nothing, however much changed). From that token, one subscribed to ``VM``
        answers what ``vm`` does (xapi lowercases a subscribed class)."""
        self._record()
        self._judged(SUBSCRIPTION, self.marks[-1], self.idle_wait_s)
        vms = [ref for ref in self.harness.world.vms if self.harness.refs.kind(ref) == "vm"]
        if vms:  # a client watching one VM that did not change
            self._judged((f"vm/{vms[-1]}",), self.marks[-1], self.idle_wait_s)
        self._judged((), self.marks[0], 0.0)
        self._judged(("VM",), self.marks[0], 0.0)

    def task_ended(self, end: TaskEnd) -> None:
        """An ``Async.`` call's task has ended: a client subscribed to it (``task/<ref>``)
        sees it once, as added, its snapshot a finished task as taskHelper leaves it."""
        self.tasks[end.task] = f"task{len(self.tasks) + 1}"
        classes = (f"task/{end.task}",)
        seen, token = self._from(classes, "", 0.0, "task")
        self.ended = (end, token)
        outside = outside_mismatch(classes, seen, self._name)
        span = (end.sent, datetime.datetime.now(datetime.UTC))
        mismatch = outside or task_event_mismatch(
            seen, end.task, end.rules.method, span, self._hosts()
        )
        if mismatch is not None:
            shown = Success(tuple(f"{e.cls} ({e.operation})" for e in seen))
            kind = "class-filter" if outside else "task-event"
            reproducer = self._task_event_reproducer(end)
            self._diverge(
                kind, mismatch, [Success("task (add)")], shown, classes, reproducer=reproducer
            )
        self.harness.connection.tally.coverage["event.from", "task", "add"] += 1

    def _task_event_reproducer(self, end: TaskEnd) -> str:
        """The script of a task event's finding: the example's calls, then the Async call,
        whose task, once ended, is read with event.from(["task/<task>"], "", 0)."""
        refs = self.harness.refs
        sync = end.rules.method.removeprefix("Async.")
        args = tuple(refs.to_model(a) for a in end.args)
        final = LoggedCall(TASK_EVENT, (sync, *args), str(refs.to_model(end.session)))
        expected = Success({"task of": end.rules.method})
        text = f"event.from(['task/<the task of {end.rules.method}>'], '', 0)"
        return self.harness.event_reproducer(self.harness.log, final, expected, text)

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
            final = LoggedCall("task.get_record", (LAST_TASK,), self.harness.session)
            expected = Failure("HANDLE_INVALID", ("task", LAST_TASK))
            text = "task.get_record(the last Async call's task)"
            reproducer = self.harness.event_reproducer(self.harness.log, final, expected, text)
            self._diverge("task-destroy", problem, [gone], record, ("task",), reproducer=reproducer)
        if isinstance(listed, Success) and task in _as_list(listed.value):
            problem = Mismatch("task.get_all", "a destroyed task must not be listed")
            final = LoggedCall(TASK_LISTED, (), self.harness.session)
            text = "task.get_all(), the last Async call's task in it"
            reproducer = self.harness.event_reproducer(
                self.harness.log, final, Success(False), text
            )
            self._diverge(
                "task-destroy",
                problem,
                [Success("without it")],
                listed,
                ("task",),
                reproducer=reproducer,
            )
        self._task_deleted(task)

    def _task_deleted(self, task: str) -> None:
        """The destroyed ``task``'s own subscription, from the token it read the ended task
        at: its del, alone (the task was created by that token and destroyed after it)."""
        if self.ended is None or self.ended[0].task != task:
            return
        end, token = self.ended
        self.ended = None
        classes = (f"task/{task}",)
        seen, _token = self._from(classes, token, 0.0, "task-del")
        mismatch = task_del_mismatch(seen, task)
        if mismatch is not None:
            shown = Success(tuple(f"{e.cls} ({e.operation})" for e in seen))
            refs = self.harness.refs
            sync = end.rules.method.removeprefix("Async.")
            args = tuple(refs.to_model(a) for a in end.args)
            final = LoggedCall(TASK_DEL, (sync, *args), str(refs.to_model(end.session)))
            text = f"event.from(['task/<the task of {end.rules.method}>'], its token, 0)"
            expected = Success({"task of": end.rules.method})
            reproducer = self.harness.event_reproducer(self.harness.log, final, expected, text)
            self._diverge(
                "task-del",
                mismatch,
                [Success("task (del)")],
                shown,
                classes,
                f"{text} after task.destroy",
                reproducer=reproducer,
            )

    def unregister_tasks(self) -> None:
        """event.unregister of ``task`` on the legacy subscription: later event.next calls
        answer VMs alone."""
        if self.legacy is not None and "task" in self.legacy.classes:
            self._legacy_call("event.unregister", self.legacy, ["task"])
            self.legacy.classes = ("vm",)
            self._script(self.legacy, "event.unregister", ["task"])

    def legacy_next(self) -> None:
        """event.next on the legacy subscription, once the model has a change of the suite's
        to report (event.next waits until it has one). Its events must rise past those it
        answered before, and, coalesced per object, be what event.from over the same span
        answers."""
        self._record()
        legacy = self.legacy
        if legacy is None:
            return
        question = self._question(legacy.classes, legacy.mark)
        if not question.expected:
            return
        outcome = self._legacy_call("event.next", legacy)
        try:
            seen = self._in_model_terms(read_events(outcome.value))
        except Malformed as bad:
            self._diverge_next(legacy, bad.mismatch, outcome)
        mismatch = next_shape_mismatch(cast(Sequence[Mapping[str, object]], outcome.value))
        # before coalescing: a task added and destroyed since is coalesced away
        mismatch = mismatch or outside_mismatch(legacy.classes, seen, self._name)
        mismatch = mismatch or next_order_mismatch(seen, legacy.answered_up_to, self._name)
        mismatch = mismatch or next_del_mismatch(seen, self.destroyed, self._name)
        mismatch = mismatch or event_mismatch(question, coalesced(seen), self._name)
        if mismatch is not None:
            shown = Success(
                tuple(_shown_event(e.cls, e.ref, e.operation, self._name) for e in seen)
            )
            self._diverge_next(legacy, mismatch, shown, question, coalesced(seen))
        self._count(coalesced(seen), question, "event.next")
        ids = [int(e.id) for e in seen]
        legacy.answered_up_to = max([legacy.answered_up_to, *ids])
        legacy.mark = Mark("", self.history.generation, len(self.harness.log))
        self._script(legacy, NEXT_CATCH_UP)
        self._current_id(legacy)

    def _current_id(self, legacy: Legacy) -> None:
        """event.get_current_id right after event.next: the id the next queued event gets
        (``Next.id``), past every id event.next answered, never less than it was."""
        outcome = self._legacy_call("event.get_current_id", legacy)
        mismatch = current_id_mismatch(outcome.value, legacy.answered_up_to, legacy.current_id)
        if mismatch is not None:
            expected = Success(f"an id past {legacy.answered_up_to}")
            text = "event.get_current_id() after event.next()"
            self._diverge("current-id", mismatch, [expected], outcome, legacy.classes, text)
        legacy.current_id = int(str(outcome.value))

    def register_everything(self) -> None:
        """event.register(["*"]), then event.unregister of ``vm`` and ``task``, on the legacy
        subscription: ``*`` alone wants every class (unregister removes the subscriptions it
        names, not what ``*`` covers), so later event.next calls answer every change."""
        legacy = self.legacy
        if legacy is None or legacy.classes == ("*",):
            return
        self._legacy_call("event.register", legacy, ["*"])
        self._script(legacy, "event.register", ["*"])
        self._legacy_call("event.unregister", legacy, list(SUBSCRIPTION))
        self._script(legacy, "event.unregister", list(SUBSCRIPTION))
        legacy.classes = ("*",)

    def _register(self) -> Legacy | None:
        """A fresh session's event.register of ``vm`` and ``task`` (None when the login
        fails): xapi keeps one event.next queue position per session, so each example has its
        own, and what earlier examples did is never answered to it."""
        account = self.harness.connection.root.account
        login = self.harness.call(LOGIN, account.name, account.password)
        if not isinstance(login, Success):
            return None
        self._record()
        mark = Mark("", self.history.generation, len(self.harness.log))
        legacy = Legacy(str(login.value), SUBSCRIPTION, mark)
        self._legacy_call("event.register", legacy, list(SUBSCRIPTION))
        self._script(legacy, "event.register", list(SUBSCRIPTION))
        return legacy

    def _script(self, legacy: Legacy, method: str, *args: Value) -> None:
        """Note a call of the legacy session for reproducers, where the example is now."""
        legacy.script.append((len(self.harness.log), LoggedCall(method, args, legacy.session)))

    def _legacy_call(self, method: str, legacy: Legacy, *args: Value) -> Success:
        """``method`` by the legacy session on the target: its success, else a divergence."""
        session = str(self.harness.refs.to_target(legacy.session))
        outcome = self.harness.connection.target.call(method, session, *args)
        if isinstance(outcome, Failure):
            problem = Mismatch("outcome", f"{method} failed with {outcome.code}")
            self._diverge_next(legacy, problem, outcome)
        return outcome

    def _diverge_next(
        self,
        legacy: Legacy,
        mismatch: Mismatch,
        actual: Outcome,
        question: EventQuestion | None = None,
        seen: Sequence[SeenEvent] = (),
    ) -> NoReturn:
        """Diverge on event.next; ``seen`` its events coalesced, when ``question`` is given."""
        expected = [] if question is None else question.expected
        shown = Success(
            tuple(_shown_event(e.cls, e.ref, e.operation, self._name) for e in expected)
        )
        kind = "next-" + problem_kind(mismatch)
        text = f"event.next() registered to {list(legacy.classes)}"
        blamed = None if question is None else self._blamed(question, seen, mismatch)
        reproducer = "" if question is None else self._next_reproducer(legacy, question, text)
        self._diverge(
            kind,
            mismatch,
            [shown],
            actual,
            legacy.classes,
            text,
            legacy.mark.calls,
            reproducer,
            blamed=blamed,
        )

    def _next_reproducer(self, legacy: Legacy, question: EventQuestion, text: str) -> str:
        """The script of an event.next finding: the example's calls with the legacy session's
        event.register, event.unregister and earlier event.next calls (unjudged) where they
        were made, then event.next, judged by the area's rules against the VM records the
        script reads right after it."""
        steps: list[LoggedCall] = []
        made = 0
        for position, call in legacy.script:
            steps += [*self.harness.log[made:position], call]
            made = position
        steps += self.harness.log[made:]
        final = LoggedCall("event.next", (), legacy.session)
        expected = self._expected_events(question)
        expected["after"] = LAST_ID
        return self.harness.event_reproducer(steps, final, Success(expected), text)

    def _expected_events(self, question: EventQuestion) -> dict[str, Value]:
        """What a reproducer's verdict judges an event answer by: the subscription, the suite's
        events, the VMs the calls named and the records read right after."""
        vms = set(self.harness.refs.bound("vm"))
        return {
            "classes": question.classes,
            "events": tuple((e.cls, e.ref, e.operation) for e in question.expected),
            "named": tuple(ref for ref in question.named if ref in vms),
            "records": RECORDS,
        }

    def close(self) -> None:
        """Log the legacy subscription's session out (its subscription ends with it)."""
        if self.legacy is not None:
            session = self.harness.refs.to_target(self.legacy.session)
            with contextlib.suppress(TargetError):
                self.harness.connection.target.call("session.logout", session)

    def _session(self) -> str:
        return str(self.harness.refs.to_target(self.harness.session))

    def _hosts(self) -> list[str]:
        return [str(self.harness.refs.to_target(h)) for h in self.harness.world.hosts]

    def session_poll(self, session: str) -> None:
        """event.from by another live ``session`` (model ref) of the suite's, from the
        example's first token: the same changes as the watch's own session sees (xapi's events
        are the database's, whichever session made the objects)."""
        self._record()
        target_session = str(self.harness.refs.to_target(session))
        mark = self.marks[0]
        outcome = self._call(target_session, SUBSCRIPTION, mark.token, 0.0)
        if isinstance(outcome, Success):
            try:
                seen = self._in_model_terms(read_batch(outcome.value)[0])
            except Malformed as bad:
                seen, outcome = (), Failure("", (str(bad.mismatch),))
            else:
                mismatch = event_mismatch(self._question(SUBSCRIPTION, mark), seen, self._name)
                if mismatch is not None:
                    shown = Success(
                        tuple(_shown_event(e.cls, e.ref, e.operation, self._name) for e in seen)
                    )
                    text = f"event.from({list(SUBSCRIPTION)}, token) by another session"
                    self._diverge(
                        "session",
                        mismatch,
                        [Success("the watch's changes")],
                        shown,
                        SUBSCRIPTION,
                        text,
                        mark.calls,
                    )
        if isinstance(outcome, Failure):
            problem = Mismatch("outcome", f"event.from failed with {outcome.code}")
            reproducer = self._session_reproducer(session, Success({"batch": True}))
            self._diverge(
                "session", problem, [Success("an event batch")], outcome, reproducer=reproducer
            )

    def unregistered_next(self, session: str) -> None:
        """event.next by ``session`` (model ref), which never called event.register: xapi
        raises SESSION_NOT_REGISTERED naming the session by its trackid
        (``Next.assert_subscribed``), before it would wait."""
        target_session = str(self.harness.refs.to_target(session))
        outcome = self.harness.connection.target.call("event.next", target_session)
        expected = NextQueue().refusal(target_session)
        if outcome != expected:
            shown = Failure("SESSION_NOT_REGISTERED", (f"trackid of {session}",))
            problem = Mismatch("outcome", "event.next before event.register must fail")
            final = LoggedCall("event.next", (), session)
            named = Failure("SESSION_NOT_REGISTERED", (f"{TRACKID}{session}",))
            text = f"event.next() by {self._name(session)}, never registered"
            reproducer = self.harness.event_reproducer(self.harness.log, final, named, text)
            actual = self.harness.refs.outcome_to_model(outcome)
            self._diverge("next-unregistered", problem, [shown], actual, (), text, None, reproducer)

    def malformed_token(self, session: str) -> None:
        """event.from by ``session`` (model ref) with a token xapi cannot read (one of
        ``MALFORMED_TOKENS``, chosen by the example's length): EVENT_FROM_TOKEN_PARSE_FAILURE
        [token], before it waits; then the watch's last token with message counts at the
        edges of int64 (``INT64_BOUNDS``), which xapi reads."""
        token = MALFORMED_TOKENS[len(self.harness.log) % len(MALFORMED_TOKENS)]
        outcome = self._call(str(self.harness.refs.to_target(session)), SUBSCRIPTION, token, 0.0)
        expected = read_token(token)
        assert isinstance(expected, Failure)
        if outcome != expected:
            problem = Mismatch("outcome", f"a token xapi cannot read ({token!r}) must fail")
            final = LoggedCall("event.from", (SUBSCRIPTION, token, 0.0), session)
            text = f"event.from({list(SUBSCRIPTION)}, {token!r})"
            reproducer = self.harness.event_reproducer(self.harness.log, final, expected, text)
            actual = self._shown_outcome(outcome)
            self._diverge(
                "token-parse",
                problem,
                [expected],
                actual,
                text=text,
                since=None,
                reproducer=reproducer,
            )
        for count in INT64_BOUNDS:
            self._edge_token(session, f"{self.marks[-1].token.partition(',')[0]},{count}")

    def _edge_token(self, session: str, token: str) -> None:
        """event.from by ``session`` (model ref) with ``token``, which xapi reads
        (``read_token``): any event batch, never EVENT_FROM_TOKEN_PARSE_FAILURE (what the
        batch holds is judged on the watch's own polls). A token the target gave that xapi
        could not read is judged where it was answered, not here."""
        if isinstance(read_token(token), Failure):
            return
        outcome = self._call(str(self.harness.refs.to_target(session)), SUBSCRIPTION, token, 0.0)
        if isinstance(outcome, Success):
            return
        problem = Mismatch("outcome", f"a token xapi reads ({token!r}) must not fail")
        final = LoggedCall("event.from", (SUBSCRIPTION, token, 0.0), session)
        text = f"event.from({list(SUBSCRIPTION)}, {token!r})"
        batch = Success({"batch": True})
        reproducer = self.harness.event_reproducer(self.harness.log, final, batch, text)
        shown = self._shown_outcome(outcome)
        self._diverge(
            "token-parse",
            problem,
            [Success("an event batch")],
            shown,
            text=text,
            since=None,
            reproducer=reproducer,
        )

    def _shown_outcome(self, outcome: Outcome) -> Outcome:
        """An event.from answer as a finding shows it: an error as it came (refs as the model
        names them), a batch as its events."""
        if isinstance(outcome, Failure):
            return self.harness.refs.outcome_to_model(outcome)
        try:
            seen = self._in_model_terms(read_batch(outcome.value)[0])
        except Malformed:
            return outcome
        return Success(tuple(_shown_event(e.cls, e.ref, e.operation, self._name) for e in seen))

    def logged_out(self, session: str) -> None:
        """event.from by ``session`` (model ref), already logged out: SESSION_INVALID."""
        target_session = str(self.harness.refs.to_target(session))
        outcome = self._call(target_session, SUBSCRIPTION, self.marks[-1].token, 0.0)
        expected = Failure("SESSION_INVALID", (target_session,))
        if outcome != expected:
            shown = Failure("SESSION_INVALID", (session,))
            problem = Mismatch("outcome", "a logged-out session's event.from must fail")
            actual = self.harness.refs.outcome_to_model(outcome)
            reproducer = self._session_reproducer(session, shown)
            self._diverge("logout", problem, [shown], actual, reproducer=reproducer)

    def _session_reproducer(self, session: str, expected: Outcome) -> str:
        """The script of a session's event.from finding: the example's calls (its login and
        logout among them), then event.from by ``session`` (model ref) from scratch."""
        final = LoggedCall("event.from", (SUBSCRIPTION, "", 0.0), session)
        text = f"event.from({list(SUBSCRIPTION)}, token) by {self._name(session)}"
        return self.harness.event_reproducer(self.harness.log, final, expected, text)

    # ---- the exchange -------------------------------------------------------------------------

    def _judged(
        self,
        classes: tuple[str, ...],
        mark: Mark,
        timeout: float,
        text: str = "",
        took_token: tuple[LoggedCall, ...] = (),
    ) -> tuple[tuple[SeenEvent, ...], str]:
        """event.from(classes, mark's token, timeout) judged against the model. ``text``
        shows the poll in a finding; ``took_token`` are the steps a reproducer takes the token
        with where the example took it (a catch-up by default)."""
        question = self._question(tuple(class_name(c) for c in classes), mark)

        def reproducer() -> str:
            return self._reproducer(classes, mark, question, took_token)

        seen, token = self._from(classes, mark.token, timeout, "poll", reproducer)
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
            kind = problem_kind(mismatch)
            blamed = self._blamed(question, seen, mismatch)
            self._diverge(
                kind,
                mismatch,
                [expected],
                actual,
                classes,
                text,
                reproducer=reproducer(),
                blamed=blamed,
            )
        self._count(seen, question)
        return seen, token

    def _reproducer(
        self,
        classes: tuple[str, ...],
        mark: Mark,
        question: EventQuestion,
        took_token: tuple[LoggedCall, ...] = (),
    ) -> str:
        """The script of a poll's finding: the example's calls with a catch-up (event.from,
        unjudged; or ``took_token``) where the poll's token was taken, then the poll, judged
        by the same rules against the VM records the script reads right after it."""
        session, log = self.harness.session, self.harness.log
        took = took_token or (LoggedCall(CATCH_UP, (classes,), session),)
        steps = [*log[: mark.calls], *took, *log[mark.calls :]]
        final = LoggedCall("event.from", (classes, TOKEN, 0.0), session)
        expected = Success({**self._expected_events(question), "since": TOKEN})
        text = f"event.from({list(classes)}, token)"
        return self.harness.event_reproducer(steps, final, expected, text)

    def _blamed(
        self, question: EventQuestion, seen: Sequence[SeenEvent], mismatch: Mismatch
    ) -> tuple[str, Cell | None] | None:
        """The call that made the change an answer misreports, and its cell: for a VM's event
        missing or named wrongly, the call that last changed the VM; for a VM's snapshot, the
        call that last wrote the field it differs on. None when the answer itself is what is
        wrong (an object repeated or outside the subscription, a task's event)."""
        kind = problem_kind(mismatch)
        vms = [e for e in question.expected if e.cls == "vm"]
        if kind in MISREPORTED:
            answered = {e.ref: e.operation for e in seen if e.cls == "vm"}
            wrong = next((e for e in vms if answered.get(e.ref) != e.operation), None)
            return None if wrong is None else self.harness.written_by(wrong.ref)
        if kind == "snapshot":
            for event in vms:
                if mismatch.where.endswith(
                    f"the snapshot of vm {self._name(event.ref)} ({event.operation})"
                ):
                    field = _SNAPSHOT_FIELD.match(mismatch.where)
                    written = self.harness.written_by(event.ref, field.group(1) if field else "")
                    return written or self.harness.written_by(event.ref)
        return None

    def _question(self, classes: tuple[str, ...], mark: Mark) -> EventQuestion:
        expected = tuple(
            e
            for e in self.history.since(mark.generation, classes).events
            if self._judged_object(e.cls, e.ref)
        )
        named = self._named(mark.calls)
        doubt = self.history.deletions_in_doubt(mark.generation, mark.newest, classes)
        # An Async call's task lives within its step (made, ended and destroyed between two
        # polls), so the model's history never holds it: its del, due one poll late when the
        # target's token stopped inside its life, is in doubt too.
        doubt |= {("task", t) for t in self.tasks if ("task", t) not in self.history.stats}
        return EventQuestion(
            classes, expected, self._judged_object, named, self._records, frozenset(doubt)
        )

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
        self,
        classes: Sequence[str],
        token: str,
        timeout: float,
        what: str,
        reproducer: Callable[[], str] = str,
    ) -> tuple[tuple[SeenEvent, ...], str]:
        """event.from on the target, read and its struct judged (``batch_shape_mismatch``, the
        counts); ``reproducer`` gives the script of a finding of its struct."""
        outcome = self._call(self._session(), classes, token, timeout)
        if isinstance(outcome, Failure):
            problem = Mismatch("outcome", f"event.from failed with {outcome.code}")
            self._diverge(what, problem, [Success("an event batch")], outcome, tuple(classes))
        try:
            seen, new_token = read_batch(outcome.value)
        except Malformed as bad:
            self._diverge(what, bad.mismatch, [Success("an event batch")], outcome, tuple(classes))
        batch = cast(Mapping[str, object], outcome.value)
        shape = batch_shape_mismatch(batch, token) or self._counts_mismatch(batch)
        if what != "subscribe":  # the catch-up's answer is what earlier examples left
            shape = shape or order_mismatch(seen)
        if shape is not None:
            expected: list[Outcome] = [Success("xapi's event batch")]
            script = reproducer()
            self._diverge(what, shape, expected, outcome, tuple(classes), reproducer=script)
        return self._in_model_terms(seen), new_token

    def _counts_mismatch(self, batch: Mapping[str, object]) -> Mismatch | None:
        """valid_ref_counts must count at least the suite's own live VMs (a shared pool has
        more): clients compare it with their caches (Xen Orchestra refetches on a mismatch)."""
        counts = cast(Mapping[str, int], batch["valid_ref_counts"])
        refs = self.harness.refs
        own = sum(1 for ref in self.harness.world.vms if refs.kind(ref) == "vm")
        if counts["vm"] < own:
            return Mismatch(
                "valid_ref_counts", f"vm {counts['vm']}, fewer than the suite's {own} live VMs"
            )
        return None

    def _in_model_terms(self, seen: Sequence[SeenEvent]) -> tuple[SeenEvent, ...]:
        refs = self.harness.refs
        return tuple(
            replace(e, ref=str(refs.to_model(e.ref)), snapshot=_to_model(refs, e.snapshot))
            for e in seen
        )

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

    def _count(
        self, seen: Sequence[SeenEvent], question: EventQuestion, method: str = "event.from"
    ) -> None:
        coverage = self.harness.connection.tally.coverage
        for event in seen:
            if question.judged(event.cls, event.ref):
                coverage[method, event.cls, event.operation] += 1

    def _diverge(
        self,
        kind: str,
        mismatch: Mismatch,
        expected: list[Outcome],
        actual: Outcome,
        classes: tuple[str, ...] = SUBSCRIPTION,
        text: str = "",
        since: int | None = None,
        reproducer: str = "",
        blamed: tuple[str, Cell | None] | None = None,
    ) -> NoReturn:
        """Diverge on an event call: ``text`` shows it (event.from from the last token unless
        given), after the calls made since ``since`` (the last poll unless given); ``blamed``
        is the call that made the change misreported, and its cell (see ``_blamed``)."""
        first = (self.marks[-1].calls if self.marks else 0) if since is None else since
        calls = [c.method for c in self.harness.log[first:]]
        after = f"after {', '.join(calls)}" if calls else "with no call since the token"
        text = text or f"event.from({list(classes)}, token)"
        shown = self.harness.refs.display_text(f"{text}: {mismatch}")
        message = f"[events] {after}, {shown}"
        info = DivergenceInfo(
            method=text.partition("(")[0],
            params=(tuple(classes),),
            expected=tuple(expected),
            actual=actual,
            area="events",
            kind=kind,
            message=message,
            reason=str(mismatch),
            reproducer=reproducer,
            calls=(*self.harness.shown_calls(), (text, actual)),
            cause="" if blamed is None else blamed[0],
            cell=None if blamed is None else blamed[1],
        )
        self.harness.diverged(info)


def _shown_event(cls: str, ref: str, operation: str, name: object) -> Value:
    return f"{cls} {name(ref)} ({operation})"  # type: ignore[operator]


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
