"""Time budgets: ``run --time-budget DURATION`` ends the whole run near the budget.

The budget is split in three: generation (the sweeps' cells and the area machines'
examples), shrinking (bounded: a divergence's shrinking stops when its share is spent and the
smallest example of it seen so far is reported) and a reserve for teardown and reports. Work is
ordered to spend it well (``conformance.runner.split.budget_order``: the first piece of every
sweep and every area first, so that every area starts), and each test gets a share of what is
left when it starts, in proportion to its estimated cost among the tests no worker has started
yet, times the number of workers. A test whose share is spent starts no new cell or example,
and stops an example at its next call; what was left out is recorded and reported with the
time used.

Only Hypothesis's public interfaces are used: a machine factory with ``hypothesis.seed``, and
a ``KeyboardInterrupt`` subclass raised between calls to end a run (generating or shrinking).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import hypothesis
from hypothesis import settings
from hypothesis.errors import FlakyFailure, FlakyStrategyDefinition, Unsatisfiable
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from conformance.engine.harness import CallWatch
from conformance.errors import TargetError, TargetInconsistent, UsageError
from conformance.judge.divergence import Divergence
from reports import TimeBudget

BUDGET_DIR = ".budget"
"""Under the report directory: each process's budget record, merged into the summary."""

__all__ = [
    "BUDGET_DIR",
    "Budget",
    "BudgetSpent",
    "Watch",
    "machine_factory",
    "merged_record",
    "parse_duration",
    "run_cells",
    "run_machine",
    "run_watched",
    "session_budget",
    "watching",
    "write_record",
]

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")

T = TypeVar("T")


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2.5m"`` → seconds (more than 0)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise UsageError(
            f"--time-budget expects seconds or a duration like 90s, 15m or 1h30m, got {text!r}"
        )
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not math.isfinite(total) or total <= 0:
        raise UsageError(f"--time-budget must be more than 0 seconds, got {text!r}")
    return total


@dataclass
class Budget:
    """A run's time budget, its deadlines, and what it left out.

    ``reserve`` is kept for teardown, clean-up and reports; ``shrinking`` for shrinking a
    divergence. Generation ends at ``seconds - reserve - shrinking`` after ``started``.
    With ``workers`` processes sharing the run, ``board`` (a folder they all see) holds the
    names of the tests any of them has started.
    """

    seconds: float
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    left_out: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    """Every test of the run with its weight (its estimated cost, its relative share)."""
    workers: int = 1
    board: Path | None = None
    _begun: set[str] = field(default_factory=set)

    @property
    def reserve(self) -> float:
        """Seconds kept for teardown, the final clean-up and the reports."""
        return min(max(3.0, 0.05 * self.seconds), 60.0)

    @property
    def shrinking(self) -> float:
        """Seconds kept for shrinking a divergence."""
        return min(0.2 * self.seconds, 300.0)

    @property
    def generation_end(self) -> float:
        """When the last cell or example may start (clock time)."""
        return self.started + self.seconds - self.reserve - self.shrinking

    @property
    def shrinking_end(self) -> float:
        """When shrinking must stop (clock time)."""
        return self.started + self.seconds - self.reserve

    def used(self) -> float:
        """Seconds since the budget started."""
        return self.clock() - self.started

    def share(self, weight: float, weights_left: float) -> float:
        """The clock time at which a test of ``weight`` must stop, among ``weights_left``."""
        now = self.clock()
        left = max(0.0, self.generation_end - now)
        return now + left * weight / max(weights_left, weight)

    def shrink_seconds(self) -> float:
        """How long shrinking may take from now (at least one second)."""
        return max(1.0, self.shrinking_end - self.clock())

    def deadline_for(self, name: str) -> float:
        """When test ``name``, starting now, must stop: its share of the time left among the
        tests no worker has started, the workers' time counted together."""
        weight = self.weights.get(name, 1.0)
        begun = self._begin(name)
        left = weight + sum(w for n, w in self.weights.items() if _board_name(n) not in begun)
        return self.share(weight * self.workers, left)

    def _begin(self, name: str) -> set[str]:
        """Mark ``name`` as started; every test started so far by any worker."""
        self._begun.add(_board_name(name))
        if self.board is None:
            return self._begun
        self.board.mkdir(parents=True, exist_ok=True)
        (self.board / _board_name(name)).touch()
        return self._begun | {path.name for path in self.board.iterdir()}

    def cells(self, cells: Iterable[T], until: float, name: str) -> Iterator[T]:
        """``cells`` until ``until``; the ones left are counted as left out."""
        iterator = iter(cells)
        for cell in iterator:
            if self.clock() >= until:
                left = 1 + sum(1 for _ in iterator)
                self.left_out.append(f"{name}: {left} cells not run")
                return
            yield cell

    def as_record(self) -> dict[str, object]:
        """The budget as summary.json states it."""
        return {
            "seconds": round(self.seconds, 1),
            "used": round(self.used(), 1),
            "left_out": list(self.left_out),
        }


class BudgetSpent(KeyboardInterrupt):
    """A test's share of the budget is spent: its Hypothesis run ends here.

    An interruption is the one way to end a Hypothesis run early that it neither takes for a
    failure to shrink nor checks for consistency (a rejection would make its data generation
    depend on the clock, which it refuses as flaky). ``run_machine`` catches it at once; raised
    while a divergence is being shrunk, it ends the shrinking, and ``run_machine`` reports the
    smallest example of the divergence seen so far.
    """


class TargetGaveOut(KeyboardInterrupt):
    """A target problem (``TargetError``) inside a machine: its Hypothesis run ends here.

    Hypothesis would take a TargetError for a failure and shrink it, replaying examples against
    a target that has stopped answering properly; on a loaded machine one of those replays can
    end in a divergence that then hides the real cause. ``run_machine`` re-raises ``error``.
    """

    def __init__(self, error: TargetError) -> None:
        super().__init__(str(error))
        self.error = error


class Watch:
    """One machine run's watch (``conformance.engine.harness.CallWatch``): its share of the
    budget, the divergences raised (Hypothesis is then shrinking the first), the examples
    started.

    Before each call: once the share is spent, no call is made unless a divergence is being
    shrunk; that shrinking stops ``shrinking`` seconds after the first divergence (and never
    past ``shrinking_end``). A target error ends the run as itself.
    """

    def __init__(
        self,
        until: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
        shrinking: float = math.inf,
        shrinking_end: float = math.inf,
    ) -> None:
        self.until = until
        self.clock = clock
        self.shrinking = shrinking
        self.shrinking_end = shrinking_end
        self.shrink_until = math.inf
        self.first: Divergence | None = None
        self.smallest: Divergence | None = None
        self.examples = 0

    @property
    def diverged(self) -> bool:
        """Whether a divergence was raised."""
        return self.first is not None

    def before_call(self) -> None:
        """BudgetSpent once the share is spent (or, while shrinking, the shrinking time)."""
        now = self.clock()
        if now >= (self.shrink_until if self.diverged else self.until):
            raise BudgetSpent

    def started(self) -> None:
        """An example is starting (BudgetSpent if the share is already spent)."""
        self.before_call()
        self.examples += 1

    def left(self, error: Divergence | TargetError) -> None:
        """Note a divergence (the first starts the shrinking time); a target error ends the run."""
        if isinstance(error, TargetError):
            raise TargetGaveOut(error) from error
        if self.first is None:
            self.first = self.smallest = error
            self.shrink_until = min(self.clock() + self.shrinking, self.shrinking_end)
        elif self.smallest is not None and _smaller(error, self.smallest):
            self.smallest = error


def _smaller(divergence: Divergence, than: Divergence) -> bool:
    """The same divergence as ``than`` (area, method, kind, code) shown in fewer calls."""
    same = divergence.info.key() == than.info.key()
    return same and len(divergence.info.calls) < len(than.info.calls)


class Watched(Protocol):
    """What machines run on: a connection whose exchanges a watch may see
    (``conformance.engine.harness.Connection``)."""

    watch: CallWatch | None


Machine = Callable[[Any], RuleBasedStateMachine]
"""A machine class (or factory) taking the run's connection."""


def machine_factory(
    machine: Machine, connection: Watched, watch: Watch, seed: int | None = None
) -> Callable[[], RuleBasedStateMachine]:
    """What Hypothesis runs: each example a ``machine`` on ``connection``, started unless the
    watch's share is spent; with ``seed``, the run's examples are those of that seed."""

    def start() -> RuleBasedStateMachine:
        watch.started()
        return machine(connection)

    return start if seed is None else hypothesis.seed(seed)(start)


@contextlib.contextmanager
def watching(connection: Watched, watch: Watch) -> Iterator[None]:
    """``watch`` sees every exchange on ``connection`` for the duration."""
    before = connection.watch
    connection.watch = watch
    try:
        yield
    finally:
        connection.watch = before


def run_machine(
    machine: Machine,
    connection: Watched,
    hypothesis_settings: settings,
    budget: Budget | None,
    name: str,
    seed: int | None = None,
) -> None:
    """Run ``machine`` on ``connection`` as a Hypothesis test (its examples those of ``seed``),
    within the budget's share for ``name`` if any."""
    if budget is None:
        watch = Watch()
    else:
        until = budget.deadline_for(name)
        if until <= budget.clock():
            budget.left_out.append(f"{name}: not run")
            return
        watch = Watch(until, budget.clock, budget.shrinking, budget.shrinking_end)
    try:
        run_watched(machine, connection, hypothesis_settings, watch, seed)
    except BudgetSpent:
        if budget is not None:
            planned = hypothesis_settings.max_examples
            budget.left_out.append(f"{name}: stopped after {watch.examples} of {planned} examples")


def run_watched(
    machine: Machine,
    connection: Watched,
    hypothesis_settings: settings,
    watch: Watch,
    seed: int | None = None,
) -> None:
    """Run ``machine`` on ``connection`` as a Hypothesis test under ``watch``; a divergence
    whose shrinking ran out of time is raised as the smallest example of it seen, and
    ``BudgetSpent`` without one ends the run."""
    try:
        with watching(connection, watch):
            _run_hypothesis(
                machine_factory(machine, connection, watch, seed), watch, hypothesis_settings
            )
    except BudgetSpent:
        if watch.smallest is not None:
            raise watch.smallest from None
        raise


INCONSISTENT = (
    "the target answered the same calls differently when they were replayed, so Hypothesis "
    "could not go on ({cause}); is another client changing the pool, or a proxy repeating or "
    "dropping requests? Run against a pool nothing else uses"
)


def _run_hypothesis(
    factory: Callable[[], RuleBasedStateMachine], watch: Watch, hypothesis_settings: settings
) -> None:
    """The Hypothesis run of a watched machine; a target problem ends it as itself.

    A target whose answers to the same calls change between runs makes Hypothesis' replays
    take other paths (FlakyStrategyDefinition): the divergence seen first is reported as it
    was found, unshrunk; without one, the inconsistent target is the error. A run each of whose
    examples ended early (``Desynced``: in a survey, at a divergence already recorded, or where
    the model could not follow the target) has judged what it could; Hypothesis calls that
    Unsatisfiable, which is no error of the target's nor the tool's.
    """
    try:
        # Hypothesis documents any callable returning a machine; its annotation says a class
        run_state_machine_as_test(factory, settings=hypothesis_settings)  # type: ignore[arg-type]
    except Unsatisfiable:
        return
    except TargetGaveOut as gave_out:
        raise gave_out.error from None
    except FlakyFailure as flaky:
        raise _first_divergence(flaky) from None
    except FlakyStrategyDefinition as flaky:
        if watch.first is not None:
            raise watch.first from None
        cause = str(flaky).strip().splitlines()[0] if str(flaky).strip() else "no detail"
        raise TargetInconsistent(INCONSISTENT.format(cause=cause)) from None


def _first_divergence(flaky: FlakyFailure) -> BaseException:
    """A race that showed once and not when replayed is still a divergence (the concurrency
    area's are timing-dependent): the first one the flaky run saw, else the flaky run."""
    for error in flaky.exceptions:
        if isinstance(error, Divergence):
            return error
    return flaky


def run_cells(cells: Iterable[T], budget: Budget | None, name: str) -> Iterable[T]:
    """``cells`` as a sweep runs them: all of them, or those its share of the budget allows."""
    if budget is None:
        return cells
    return budget.cells(cells, budget.deadline_for(name), name)


def _board_name(name: str) -> str:
    """A test's name as a file name on the board."""
    return name.replace("/", "_").replace("\\", "_")


def session_budget(
    duration: str | None, started: datetime.datetime, workers: int = 1, board: Path | None = None
) -> Budget | None:
    """The budget (``--xapi-time-budget DURATION``) of a test session that started at
    ``started`` (wall clock), if it has one, shared by ``workers`` through ``board``."""
    if duration is None:
        return None
    elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    return Budget(
        parse_duration(str(duration)),
        started=time.monotonic() - max(0.0, elapsed),
        workers=max(1, workers),
        board=board,
    )


def write_record(budget: Budget, report_dir: Path, worker: str) -> None:
    """Save this process's budget record for the controller to merge."""
    folder = report_dir / BUDGET_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{worker}.json").write_text(json.dumps(budget.as_record()), encoding="utf-8")


def merged_record(report_dir: Path) -> TimeBudget | None:
    """Every process's budget record as one (the longest time used), or None without one."""
    records = []
    for path in sorted((report_dir / BUDGET_DIR).glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            records.append(json.loads(path.read_text(encoding="utf-8")))
    if not records:
        return None
    return TimeBudget(
        seconds=float(records[0]["seconds"]),
        used=max(float(r["used"]) for r in records),
        left_out=tuple(str(item) for r in records for item in r["left_out"]),
    )
