"""Time budgets: ``run --time-budget DURATION`` ends the whole run near the budget.

The budget is split in three: generation (the sweeps' cells, then the area machines'
examples), shrinking (bounded: Hypothesis stops shrinking when its share is spent and reports
the smallest divergence found so far) and a reserve for teardown and reports. Work is ordered
to spend it well: the deterministic sweeps first (each cell is already a minimal reproducer),
then the areas, each test getting a share of what is left. A test whose share is spent starts
no new cell or example, and stops an example at its next step; what was left out is recorded
and reported with the time used.
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
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis.errors import FlakyFailure, FlakyStrategyDefinition
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from conformance.errors import TargetError, TargetInconsistent, UsageError
from conformance.judge.divergence import Divergence
from reports import TimeBudget

BUDGET_DIR = ".budget"
"""Under the report directory: each process's budget record, merged into the summary."""

__all__ = [
    "BUDGET_DIR",
    "Budget",
    "BudgetSpent",
    "budgeted_machine",
    "merged_record",
    "parse_duration",
    "plan_tests",
    "run_cells",
    "run_machine",
    "session_budget",
    "shrinking_bounded",
    "write_record",
]

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")

T = TypeVar("T")

SWEEP_WEIGHT = 4.0
"""A sweep's share of generation time relative to an area machine's."""


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
    """

    seconds: float
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    left_out: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    """The tests still to run, in order, with their weight (their relative share)."""

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
        """When test ``name``, starting now, must stop: its share of the time left."""
        weight = self.weights.get(name, 1.0)
        left = sum(self.weights.values()) if name in self.weights else weight
        self.weights.pop(name, None)
        return self.share(weight, left)

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
    depend on the clock, which it refuses as flaky). ``run_machine`` catches it at once.
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


class _Watch:
    """A test's share: the first divergence raised (Hypothesis is then shrinking it) and how
    many examples started."""

    def __init__(self, until: float, clock: Callable[[], float]) -> None:
        self.until = until
        self.clock = clock
        self.first: Divergence | None = None
        self.examples = 0

    @property
    def diverged(self) -> bool:
        """Whether a divergence was raised."""
        return self.first is not None

    def check(self) -> None:
        """BudgetSpent once the share is spent, unless a divergence is being shrunk."""
        if self.clock() >= self.until and not self.diverged:
            raise BudgetSpent


UNBUDGETED = frozenset({"teardown"})
"""Harness methods that run whatever the budget: clean-up must happen."""


class _Watched:
    """A harness that checks the budget before each call and notes divergences raised."""

    def __init__(self, inner: object, watch: _Watch) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_watch", watch)

    def __getattr__(self, name: str) -> Any:
        value = getattr(object.__getattribute__(self, "_inner"), name)
        if not callable(value):
            return value
        watch: _Watch = object.__getattribute__(self, "_watch")

        def watched(*args: Any, **kwargs: Any) -> Any:
            if name not in UNBUDGETED:
                watch.check()
            try:
                return value(*args, **kwargs)
            except Divergence as divergence:
                watch.first = watch.first or divergence
                raise
            except TargetError as error:
                raise TargetGaveOut(error) from error

        return watched

    def __setattr__(self, name: str, value: object) -> None:
        setattr(object.__getattribute__(self, "_inner"), name, value)


def budgeted_machine(
    machine: type[RuleBasedStateMachine], until: float, clock: Callable[[], float]
) -> tuple[type[RuleBasedStateMachine], Callable[[], int]]:
    """``machine`` that raises BudgetSpent when an example would start after ``until``, or at
    the next harness call of one that runs past it, unless a divergence is being shrunk.
    Returns the class and a function counting the examples that started."""
    watch = _Watch(until, clock)

    def __init__(self: Any) -> None:
        watch.check()
        machine.__init__(self)
        self.harness = _Watched(self.harness, watch)
        watch.examples += 1

    bound = type(f"{machine.__name__}Budgeted", (machine,), {"__init__": __init__, WATCH: watch})
    return bound, lambda: watch.examples


@contextlib.contextmanager
def shrinking_bounded(seconds: float) -> Iterator[None]:
    """Hypothesis stops shrinking after ``seconds`` (its own bound is five minutes) and
    reports the smallest failing example found so far."""
    from hypothesis.internal.conjecture import engine

    before = engine.MAX_SHRINKING_SECONDS
    engine.MAX_SHRINKING_SECONDS = max(1, math.ceil(seconds))
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = before


def run_machine(
    machine: type[RuleBasedStateMachine],
    hypothesis_settings: settings,
    budget: Budget | None,
    name: str,
) -> None:
    """Run ``machine`` as a Hypothesis test, within the budget's share for ``name`` if any."""
    if budget is None:
        bound, _started = budgeted_machine(machine, math.inf, time.monotonic)
        _run_watched(bound, hypothesis_settings)
        return
    until = budget.deadline_for(name)
    if until <= budget.clock():
        budget.left_out.append(f"{name}: not run")
        return
    bound, started = budgeted_machine(machine, until, budget.clock)
    try:
        with shrinking_bounded(budget.shrinking):
            _run_watched(bound, hypothesis_settings)
    except BudgetSpent:
        planned = hypothesis_settings.max_examples
        budget.left_out.append(f"{name}: stopped after {started()} of {planned} examples")


WATCH = "xapi_watch"
"""The class attribute of a watched machine that holds its ``_Watch``."""

INCONSISTENT = (
    "the target answered the same calls differently when they were replayed, so Hypothesis "
    "could not go on ({cause}); is another client changing the pool, or a proxy repeating or "
    "dropping requests? Run against a pool nothing else uses"
)


def _run_watched(machine: type[RuleBasedStateMachine], hypothesis_settings: settings) -> None:
    """The Hypothesis run of a watched machine; a target problem ends it as itself.

    A target whose answers to the same calls change between runs makes Hypothesis' replays
    take other paths (FlakyStrategyDefinition): the divergence seen first is reported as it
    was found, unshrunk; without one, the inconsistent target is the error.
    """
    try:
        run_state_machine_as_test(machine, settings=hypothesis_settings)
    except TargetGaveOut as gave_out:
        raise gave_out.error from None
    except FlakyFailure as flaky:
        raise _first_divergence(flaky) from None
    except FlakyStrategyDefinition as flaky:
        watch: _Watch = getattr(machine, WATCH)
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


def session_budget(duration: str | None, started: datetime.datetime) -> Budget | None:
    """The budget (``--xapi-time-budget DURATION``) of a test session that started at
    ``started`` (wall clock), if it has one."""
    if duration is None:
        return None
    elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    return Budget(parse_duration(str(duration)), started=time.monotonic() - max(0.0, elapsed))


def plan_tests(budget: Budget, names: Iterable[str]) -> list[str]:
    """``names`` in the order that spends a budget well (sweeps first), and the budget's plan."""
    ordered = sorted(names, key=lambda name: "sweep" not in name)
    budget.weights = {name: SWEEP_WEIGHT if "sweep" in name else 1.0 for name in ordered}
    return ordered


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
