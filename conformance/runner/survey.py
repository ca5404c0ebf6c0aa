"""A survey: every divergence is noted and the example goes on, then each finding is shrunk once.

Exploration never stops at a divergence: the harness notes it here (``Survey.__call__``) and
follows what the target shows, so a divergent server is mapped as far as the model can follow it.
The first example that showed each distinct difference is remembered (its Hypothesis choices);
after exploration that example alone is replayed with only that difference raised, and
Hypothesis shrinks it (within the budget's shrinking share). ``-x`` / ``--max-findings`` keep the
old behaviour: the first divergence ends its example and Hypothesis shrinks it at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

from hypothesis import Phase, settings
from hypothesis.control import current_build_context
from hypothesis.database import ExampleDatabase, choices_to_bytes
from hypothesis.errors import FlakyFailure, InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine

from conformance.engine.harness import Connection
from conformance.errors import TargetInconsistent
from conformance.judge.divergence import Divergence, DivergenceInfo
from conformance.runner.budget import Budget, BudgetSpent, Watch, run_machine, run_watched
from conformance.runner.results import divergence_record
from reports import difference

__all__ = ["SHRINK_SECONDS", "Survey", "difference_key", "survey_machine", "surveyed"]

SHRINK_SECONDS = 60.0
"""How long one test may spend shrinking its findings in a run without a time budget."""


def difference_key(info: DivergenceInfo) -> str:
    """The key of the difference ``info`` shows: its finding (see ``reports.findings``)."""
    return difference(divergence_record(info)).key


class _Replay(ExampleDatabase):
    """A database holding one example: what Hypothesis replays first, then shrinks."""

    def __init__(self, blob: bytes) -> None:
        super().__init__()
        self._blob = blob

    def fetch(self, key: bytes) -> Iterable[bytes]:
        """The example, under the test's own key only."""
        return () if key.endswith((b".secondary", b".pareto")) else (self._blob,)

    def save(self, key: bytes, value: bytes) -> None:
        """Nothing is kept."""

    def delete(self, key: bytes, value: bytes) -> None:
        """Nothing is kept."""


def _current_choices() -> bytes | None:
    """The choices the running Hypothesis example made so far, serialised; None outside one."""
    try:
        data = current_build_context().data
    except InvalidArgument:
        return None
    choices = getattr(data, "choices", None)
    return None if choices is None else choices_to_bytes(choices)


@contextlib.contextmanager
def _unseeded() -> Iterator[None]:
    """Hypothesis replays from a database only in a test without a forced seed: the run's
    seed is lifted while one example is replayed and shrunk."""
    from hypothesis import core

    previous = core.global_force_seed
    core.global_force_seed = None
    try:
        yield
    finally:
        core.global_force_seed = previous


class Survey:
    """The divergences one test notes while it goes on past them, one per difference, method
    and cell; the example that first showed each difference; the difference being shrunk."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.first: dict[str, DivergenceInfo] = {}
        """Difference key -> the first divergence that showed it, in order of discovery."""
        self.examples: dict[str, bytes] = {}
        self.focus: str | None = None
        self._seen: set[tuple[object, ...]] = set()
        self._pending: list[str] = []

    def __call__(self, info: DivergenceInfo) -> bool:
        """Note ``info`` and go on (True); while shrinking, go on past every other difference."""
        key = difference_key(info)
        if self.focus is not None:
            return key != self.focus
        where = (key, info.method, info.cause, info.cell)
        if where not in self._seen:
            self._seen.add(where)
            self.connection.tally.divergences.append(info)
        if key not in self.first:
            self.first[key] = info
            self._pending.append(key)
        return True

    def example_ended(self) -> None:
        """Remember the ending example for the differences it showed first."""
        if self._pending:
            blob = _current_choices()
            for key in self._pending:
                if blob is not None:
                    self.examples.setdefault(key, blob)
        self._pending.clear()

    def machine(self, machine: type[RuleBasedStateMachine]) -> type[RuleBasedStateMachine]:
        """``machine`` whose examples report their end to the survey."""
        survey = self

        def teardown(self: Any) -> None:
            try:
                machine.teardown(self)
            finally:
                survey.example_ended()

        return type(f"{machine.__name__}Surveyed", (machine,), {"teardown": teardown})

    def shrink(
        self,
        machine: type[RuleBasedStateMachine],
        base: settings,
        budget: Budget | None,
        seed: int | None = None,
    ) -> list[Divergence]:
        """Each difference's first example replayed with only that difference raised, shrunk.

        A difference is shrunk once a process: one an earlier test already shrank keeps its
        first divergence here. The test's shrinking time (``SHRINK_SECONDS``, or what is left
        of the budget's shrinking share) is split evenly over the differences still to shrink.
        A difference whose example does not show it again (a race that took another turn), or
        that the time left no longer allows, keeps its first divergence, unshrunk. One whose
        example showed it when replayed but not when Hypothesis ran the shrunk example once
        more (a race whose other turn ends the example at another difference: Hypothesis
        calls that flaky) keeps the smallest example that showed it.
        """
        clock = time.monotonic if budget is None else budget.clock
        total = SHRINK_SECONDS if budget is None else budget.shrink_seconds()
        deadline = clock() + total
        done = self.connection.shrunk
        to_shrink = [key for key in self.first if key not in done and key in self.examples]
        found: dict[str, Divergence] = {}
        for index, key in enumerate(to_shrink):
            left = deadline - clock()
            if left < 1:
                break
            done.add(key)
            seconds = max(1.0, left / (len(to_shrink) - index))
            one = self._shrink_one(machine, base, key, self.examples[key], seconds, seed)
            if one is not None:
                found[key] = one
        return [found.get(key) or Divergence(info) for key, info in self.first.items()]

    def _shrink_one(
        self,
        machine: type[RuleBasedStateMachine],
        base: settings,
        key: str,
        blob: bytes,
        seconds: float,
        seed: int | None,
    ) -> Divergence | None:
        watch = Watch(shrinking=seconds)
        replay = settings(base, database=_Replay(blob), phases=[Phase.reuse, Phase.shrink])
        self.focus = key
        self.connection.tally.hold()
        try:
            with _unseeded():
                run_watched(machine, self.connection, replay, watch, seed)
        except Divergence as divergence:
            return divergence
        except BudgetSpent:  # the shrinking time is spent before the example showed it
            pass
        except (FlakyFailure, TargetInconsistent):
            return watch.smallest
        finally:
            self.focus = None
            self.connection.tally.release()
        return None


@contextlib.contextmanager
def surveyed(connection: Connection) -> Iterator[Survey | None]:
    """A survey of one test: the divergences noted on ``connection`` go past; the first of
    them is raised at the end (the others stay recorded). None when the run stops at the first
    divergence (``-x``, ``--max-findings``)."""
    if not connection.survey:
        yield None
        return
    survey = Survey(connection)
    connection.surveyor = survey
    try:
        yield survey
    finally:
        connection.surveyor = None
    if survey.first:
        first = next(iter(survey.first.values()))
        raise Divergence(first)


def survey_machine(
    machine: type[RuleBasedStateMachine],
    hypothesis_settings: settings,
    budget: Budget | None,
    name: str,
    connection: Connection,
    seed: int | None = None,
) -> None:
    """Run an area machine as a survey (``run_machine`` when the run stops at the first
    divergence), then shrink each finding once; raises the first finding's shrunk divergence,
    the others are recorded on the connection. ``seed`` fixes the examples."""
    if not connection.survey:
        run_machine(machine, connection, hypothesis_settings, budget, name, seed)
        return
    survey = Survey(connection)
    connection.surveyor = survey
    try:
        run_machine(survey.machine(machine), connection, hypothesis_settings, budget, name, seed)
        found = survey.first
        shrunk = survey.shrink(machine, hypothesis_settings, budget, seed) if found else []
    finally:
        connection.surveyor = None
    if shrunk:
        connection.tally.divergences.extend(d.info for d in shrunk[1:])
        raise shrunk[0]
