"""Linearizability of a concurrent history against the model (Wing & Gong, as Knossos does it).

A history is the calls several sessions made at once, each with the time it was sent, the time
its answer arrived and the answer. It is linearizable when some order of the calls' steps
respects real time (a call that was answered before another was sent comes first), the model
accepts every step of that order with the answer the target gave, and the world it ends in has
the VM records the target showed afterwards. A VM operation is two steps, begin and end
(``models.inflight``), and a conflicting begin waits, as xapi's do; every other call is one step.
A ``task.cancel`` of another call's task (an Async call of the history) is one step that marks
that call cancelled: before its begin it then ends with TASK_CANCELLED and does nothing; in
flight it may end in any of the ways ``models.inflight.finish`` gives a cancelled op.

The search is depth first over the calls that may go next, with every (world, calls done, calls
in flight) it has already explored remembered, so each state is explored once; it gives up
(``Undecided``) after ``limit`` states rather than run long.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from conformance.judge.compare import AnswerRules, Mismatch, Strictness, outcome_mismatch
from models.inflight import (
    Began,
    begin,
    cancelled_before_begin,
    cancelled_by,
    finish,
    task_cancel,
)
from models.outcome import Failure, Outcome, Success, Value
from models.transition import Branch, Call
from models.world import World

__all__ = [
    "CREATORS",
    "DEFAULT_LIMIT",
    "Created",
    "Explained",
    "FinalCheck",
    "Observed",
    "Search",
    "Undecided",
    "Unexplained",
    "linearize",
    "renamed",
    "renamed_value",
    "task_name",
]

DEFAULT_LIMIT = 200_000
"""States explored at most before the search gives up."""


def task_name(index: int) -> str:
    """The task ref the model gives call ``index`` of a history (xapi makes one per call)."""
    return f"OpaqueRef:history-task-{index}"


@dataclass(frozen=True)
class Observed:
    """One call of a history, in model terms: who made it, when, and what the target answered.

    ``call`` has the sync method name (``is_async`` says whether it went through a task);
    ``task`` is the target's task ref of an Async call, so that error parameters naming it
    can be compared.
    """

    index: int
    session: int
    call: Call
    invoked: float
    answered: float
    outcome: Outcome
    is_async: bool = False
    task: str = ""
    shown: str = ""
    """The method as sent, when the model judges the call as another (an event read as
    VM.get_record); empty when it is ``call``'s."""


@dataclass(frozen=True)
class Explained:
    """The history is linearizable: one order that explains it, and the world it ends in."""

    order: tuple[str, ...]
    world: World
    states: int
    created: tuple[tuple[str, str], ...] = ()
    """The VMs the calls created: (model ref, target ref)."""


@dataclass(frozen=True)
class Unexplained:
    """No order explains the history; ``closest`` says how far the deepest attempt got."""

    states: int
    closest: str
    expected: Outcome | None = None
    """What the model answers, at the deepest attempt, to the call whose answer ended it (None
    when the calls were all explained and the final records ended it)."""


@dataclass(frozen=True)
class Undecided:
    """The search gave up after ``states`` states."""

    states: int


Search = Explained | Unexplained | Undecided
Created = tuple[tuple[str, str], ...]
"""The VMs the history's calls created: (model ref, target ref), in the order the model made
them (an order of two concurrent clones decides which of the target's VMs is which)."""
FinalCheck = Callable[[World, Created], str | None]
"""Compares a world with the records the target showed at the end, the VMs created paired
as given (None when they agree)."""
CREATORS = frozenset({"VM.clone", "VM.copy", "VM.snapshot", "VM.checkpoint"})
"""Messages whose success is a new VM's ref: the target's is paired with the model's."""


@dataclass(frozen=True)
class _State:
    world: World
    done: frozenset[int] = frozenset()
    flying: frozenset[int] = frozenset()
    cancelling: frozenset[int] = frozenset()
    """Calls whose task is cancelled (by hard_shutdown, hard_reboot or task.cancel)."""
    waits: frozenset[tuple[int, int]] = frozenset()
    """(call, victim): the call's end waits for the victim's (hard_shutdown's cancellations)."""
    order: tuple[str, ...] = ()
    created: Created = ()


@dataclass
class _Searcher:
    history: Sequence[Observed]
    final: FinalCheck
    strictness: Strictness
    limit: int
    known: frozenset[str] = frozenset()
    """The VMs before the history: a created VM is none of them."""
    states: int = 0
    seen: dict[tuple[frozenset[object], ...], list[World]] = field(default_factory=dict)
    closest: _Attempt | None = None

    def run(self, state: _State) -> Explained | None:
        self.states += 1
        if self.states > self.limit:
            raise _GaveUp
        if len(state.done) == len(self.history):
            return self._at_end(state)
        if self._explored(state):
            return None
        for successor in self._successors(state):
            found = self.run(successor)
            if found is not None:
                return found
        return None

    def _at_end(self, state: _State) -> Explained | None:
        mismatch = self.final(state.world, state.created)
        if mismatch is None:
            return Explained(state.order, state.world, self.states, state.created)
        self._note(state, f"every call explained, but the final records differ: {mismatch}")
        return None

    def _explored(self, state: _State) -> bool:
        key = (
            state.done,
            state.flying,
            state.cancelling,
            frozenset(i for i, _ in state.waits),
            frozenset(state.created),
        )
        worlds = self.seen.setdefault(key, [])
        if state.world in worlds:
            return True
        worlds.append(state.world)
        return False

    def _successors(self, state: _State) -> list[_State]:
        found: list[_State] = []
        for observed in self.history:
            i = observed.index
            if i in state.flying and all(v in state.done for c, v in state.waits if c == i):
                found.extend(self._ends(state, observed))
            elif i not in state.done and i not in state.flying and self._ready(state, observed):
                victim = self._cancelled_call(observed)
                if victim is not None:
                    found.extend(self._cancel(state, observed, victim))
                else:
                    found.extend(self._begins(state, observed))
        return found

    def _cancelled_call(self, observed: Observed) -> Observed | None:
        """The Async call of the history whose task ``observed`` (a task.cancel) cancels."""
        if observed.call.method != "task.cancel" or len(observed.call.args) < 2:
            return None
        task = observed.call.args[1]
        return next((o for o in self.history if o.is_async and task_name(o.index) == task), None)

    def _cancel(self, state: _State, observed: Observed, victim: Observed) -> list[_State]:
        """task.cancel of ``victim``'s task: it succeeds while the task exists (the victim's
        client destroys it after its answer), and marks the victim cancelled until it ends."""
        v = victim.index
        owner = str(victim.call.args[0])
        finished = v in state.done
        answers: list[Branch] = []
        if not finished or observed.invoked <= victim.answered:
            answers.extend(task_cancel(state.world, observed.call, owner, exists=True))
        if finished:
            answers.extend(task_cancel(state.world, observed.call, owner, exists=False))
        found: list[_State] = []
        for branch in answers:
            after = self._ended(state, observed, branch, "call")
            if after is not None and not finished and isinstance(branch.outcome, Success):
                after = replace(after, cancelling=after.cancelling | {v})
            found.extend([after] if after is not None else [])
        return found

    def _ready(self, state: _State, observed: Observed) -> bool:
        """Every call answered before this one was sent is done (real-time order)."""
        return all(
            other.index in state.done for other in self.history if other.answered < observed.invoked
        )

    def _begins(self, state: _State, observed: Observed) -> list[_State]:
        i, task = observed.index, task_name(observed.index)
        if i in state.cancelling:  # cancelled before its begin
            return self._all_ended(
                state, observed, cancelled_before_begin(state.world, task), "call"
            )
        found: list[_State] = []
        for start in begin(state.world, observed.call, task):
            if isinstance(start, Began):
                found.append(self._began(state, observed, start))
            elif isinstance(start, Branch):
                found.extend(self._all_ended(state, observed, (start,), "call"))
        return found

    def _began(self, state: _State, observed: Observed, start: Began) -> _State:
        i = observed.index
        victims = _indices(cancelled_by(start.world, observed.call, task_name(i)))
        return _State(
            start.world,
            state.done,
            state.flying | {i},
            state.cancelling | victims,
            state.waits | {(i, v) for v in victims},
            (*state.order, f"begin #{i}"),
            state.created,
        )

    def _ends(self, state: _State, observed: Observed) -> list[_State]:
        i = observed.index
        cancelled = i in state.cancelling
        ends = finish(state.world, observed.call, task_name(i), cancelled=cancelled)
        return self._all_ended(state, observed, ends, "end")

    def _all_ended(
        self, state: _State, observed: Observed, branches: Sequence[Branch], step: str
    ) -> list[_State]:
        found = (self._ended(state, observed, branch, step) for branch in branches)
        return [after for after in found if after is not None]

    def _ended(self, state: _State, observed: Observed, branch: Branch, step: str) -> _State | None:
        """The state after ``observed`` ends as ``branch`` does, if its answer matches."""
        created = self._paired(state.created, observed, branch.outcome)
        seen = renamed(observed.outcome, {t: m for m, t in created}) if created else None
        shown = replace(observed, outcome=seen) if seen is not None else observed
        mismatch = outcome_mismatch_of(shown, branch.outcome, self.history, self.strictness)
        if mismatch is not None:
            accepted = isinstance(observed.outcome, Success) and isinstance(branch.outcome, Failure)
            self._note(
                state,
                f"{observed.call.method}: {mismatch}",
                branch.outcome,
                index=observed.index,
                accepted=accepted,
            )
            return None
        i = observed.index
        return _State(
            branch.world,
            state.done | {i},
            state.flying - {i},
            state.cancelling - {i},
            state.waits,
            (*state.order, f"{step} #{i}"),
            created,
        )

    def _paired(self, created: Created, observed: Observed, expected: Outcome) -> Created:
        """``created`` with the VM ``observed`` (a clone, copy, snapshot or checkpoint) made,
        when both sides answered a new ref (the target's then stands for the model's)."""
        if observed.call.method not in CREATORS:
            return created
        model, target = expected, observed.outcome
        if not (isinstance(model, Success) and isinstance(target, Success)):
            return created
        m, t = model.value, target.value
        if not isinstance(m, str) or not isinstance(t, str) or t in self.known:
            return created
        if any(m == a or t == b for a, b in created):
            return created
        return (*created, (m, t))

    def _note(
        self,
        state: _State,
        text: str,
        expected: Outcome | None = None,
        *,
        index: int | None = None,
        accepted: bool = False,
    ) -> None:
        attempt = _Attempt(len(state.order), accepted, text, state.order, index, expected)
        if self.closest is None or attempt.closer_than(self.closest):
            self.closest = attempt


@dataclass(frozen=True)
class _Attempt:
    """Where an order the search tried stopped: after ``order``, call ``index`` (None for the
    final records) answered otherwise than the model (``text``; ``expected`` the model's)."""

    depth: int
    accepted: bool
    """The target accepted the call where the model refuses it."""
    text: str
    order: tuple[str, ...]
    index: int | None
    expected: Outcome | None

    def closer_than(self, other: _Attempt) -> bool:
        """Whether this attempt stands for the history rather than ``other``: it got further;
        at the same depth, it is a call the target accepted where the model refuses (the
        call that changed what the others then saw, as a VM destroyed by one of two racing
        destroys xapi refuses is HANDLE_INVALID to the other), then the first by its text.
        Never by the calls' numbers: which session won a race must not change the finding."""
        mine = (-self.depth, not self.accepted, self.text)
        return mine < (-other.depth, not other.accepted, other.text)

    def describe(self) -> str:
        """The attempt in words: the order tried, then the call and how it differed."""
        order = ", ".join(self.order) or "nothing"
        call = "" if self.index is None else f"#{self.index} "
        return f"after {order}: {call}{self.text}"


class _GaveUp(Exception):
    pass


def renamed(value: Outcome, names: Mapping[str, str]) -> Outcome:
    """``value`` with each of ``names``' target refs replaced by its model ref."""
    if isinstance(value, Failure):
        return Failure(value.code, tuple(names.get(p, p) for p in value.params))
    return Success(renamed_value(value.value, names))


def renamed_value(value: Value, names: Mapping[str, str]) -> Value:
    """A value (record, map, list, ref) with each of ``names``' keys replaced by its value."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, Mapping):
        return {str(renamed_value(k, names)): renamed_value(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(renamed_value(v, names) for v in value)
    return value


def _indices(tasks: frozenset[str]) -> frozenset[int]:
    return frozenset(int(t.rsplit("-", 1)[1]) for t in tasks if t.startswith(task_name(0)[:-1]))


def outcome_mismatch_of(
    observed: Observed, expected: Outcome, history: Sequence[Observed], strictness: Strictness
) -> Mismatch | None:
    """Why the target's answer to ``observed`` is not ``expected`` (None when it matches).

    Task refs in error parameters (OTHER_OPERATION_IN_PROGRESS, TASK_CANCELLED) are compared
    where the client can know them (Async calls' tasks); a synchronous call's own task, which
    xapi never shows its caller, matches any task ref.
    """
    rules = AnswerRules.of(observed.call.method)
    known = {task_name(o.index): o.task for o in history if o.is_async and o.task}
    return outcome_mismatch(
        _tasks_shown(expected, known, model=True),
        _tasks_shown(observed.outcome, known, model=False),
        returns=rules.result,
        result_field=rules.result_field,
        shape_only=rules.shape_only,
        strictness=strictness,
    )


_REF = re.compile(r"OpaqueRef:[0-9A-Za-z-]+")
_TASK_ERRORS = {"OTHER_OPERATION_IN_PROGRESS": 3, "TASK_CANCELLED": 0}


def _task_param(outcome: Outcome) -> int | None:
    """Where ``outcome`` names a task: the parameter of the task errors, or of
    HANDLE_INVALID [task, ref] (a task.cancel of a task already destroyed)."""
    if not isinstance(outcome, Failure):
        return None
    if outcome.code == "HANDLE_INVALID" and outcome.params[:1] == ("task",):
        return 1
    return _TASK_ERRORS.get(outcome.code)


def _tasks_shown(outcome: Outcome, known: Mapping[str, str], *, model: bool) -> Outcome:
    at = _task_param(outcome)
    if at is None or not isinstance(outcome, Failure):
        return outcome
    if at >= len(outcome.params):
        return outcome
    target_tasks = set(known.values())

    def shown(match: re.Match[str]) -> str:
        ref = match.group(0)
        if model:
            return known.get(ref, "<a task>")
        return ref if ref in target_tasks else "<a task>"

    params = list(outcome.params)
    params[at] = _REF.sub(shown, params[at])
    return Failure(outcome.code, tuple(params))


def linearize(
    world: World,
    history: Sequence[Observed],
    final: FinalCheck,
    *,
    strictness: Strictness = "exact",
    limit: int = DEFAULT_LIMIT,
) -> Search:
    """Search for an order of ``history``'s steps from ``world`` that explains it all."""
    searcher = _Searcher(history, final, strictness, limit, frozenset(world.vms))
    try:
        found = searcher.run(_State(world))
    except _GaveUp:
        return Undecided(searcher.states)
    if found is not None:
        return found
    closest = searcher.closest
    if closest is None:
        return Unexplained(searcher.states, "no call could go first")
    return Unexplained(searcher.states, closest.describe(), closest.expected)
