"""Time budgets: durations, deadlines, cells left out, machines that stop in time but still shrink."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from conformance.areas.machines import AREAS
from conformance.errors import TargetInconsistent, TargetStalled, UsageError
from conformance.judge.divergence import Desynced, Divergence, DivergenceInfo
from conformance.runner.budget import (
    Budget,
    BudgetSpent,
    Watch,
    machine_factory,
    parse_duration,
    run_machine,
    session_budget,
    watching,
)
from conformance.runner.plugin import run_started
from conformance.runner.split import SWEEPS, area_pieces, budget_order, sweep_pieces
from models.outcome import Success


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2.5m", 150), ("1h", 3600)],
)
def test_durations_in_seconds_minutes_and_hours(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "15x", "0", "0s", "-5", "m"])
def test_a_bad_duration_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--time-budget"):
        parse_duration(text)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_generation_leaves_room_for_shrinking_and_the_reserve() -> None:
    clock = _Clock()
    budget = Budget(60.0, started=clock.now, clock=clock)
    assert (budget.reserve, budget.shrinking) == (3.0, 12.0)
    assert budget.generation_end == 100.0 + 45.0
    assert budget.shrinking_end == 100.0 + 57.0
    assert budget.share(2.0, 10.0) == pytest.approx(100.0 + 9.0)
    clock.now += 50
    assert budget.share(1.0, 1.0) == clock.now  # generation is over: no time for any test


def test_cells_after_the_deadline_are_left_out_and_counted() -> None:
    clock = _Clock()
    budget = Budget(60.0, started=clock.now, clock=clock)
    ran = []
    for cell in budget.cells(range(10), until=clock.now + 3, name="lifecycle_sweep"):
        ran.append(cell)
        clock.now += 1
    assert ran == [0, 1, 2]
    assert budget.left_out == ["lifecycle_sweep: 7 cells not run"]
    assert budget.as_record()["left_out"] == ["lifecycle_sweep: 7 cells not run"]


def _info(calls: int = 0) -> DivergenceInfo:
    shown = tuple((f"call {n}", None) for n in range(calls))
    return DivergenceInfo(
        "VM.x", (), (Success(""),), Success("y"), "test", "outcome", "m", calls=shown
    )


class _Connection:
    """What a machine runs on: here only the watch a run installs."""

    watch: Any = None


class _Harness:
    """The harness's contract with a run's watch (``Harness.exchange``): asked before each
    call, told of each divergence or target error leaving one."""

    def __init__(self, connection: _Connection, fail_at: int | None, target_fails_at: int | None):
        self.connection = connection
        self.fail_at = fail_at
        self.target_fails_at = target_fails_at
        self.calls = 0

    def call(self, value: int) -> int:
        watch = self.connection.watch
        watch.before_call()
        self.calls += 1
        error: Exception | None = None
        if self.target_fails_at is not None and self.calls >= self.target_fails_at:
            error = TargetStalled("the target stalled")
        elif self.fail_at is not None and value >= self.fail_at:
            error = Divergence(_info(self.calls))
        if error is not None:
            watch.left(error)
            raise error
        return value


class _Toy(RuleBasedStateMachine):
    fail_at: int | None = None
    target_fails_at: int | None = None
    clock: _Clock
    started: list[int]

    def __init__(self, connection: _Connection) -> None:
        super().__init__()
        self.started.append(1)
        self.harness = _Harness(connection, self.fail_at, self.target_fails_at)

    @rule(value=st.integers(0, 10))
    def step(self, value: int) -> None:
        self.clock.now += 1
        self.harness.call(value)


_SETTINGS = settings(
    max_examples=50, stateful_step_count=5, database=None, deadline=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip


def _toy(clock: _Clock, **attributes: Any) -> type[_Toy]:
    return type("Toy", (_Toy,), {"clock": clock, "started": [], **attributes})


def test_a_machine_starts_no_example_after_its_deadline_and_stops_one_at_its_next_step() -> None:
    clock, connection = _Clock(), _Connection()
    watch = Watch(until=clock.now + 12, clock=clock)
    with pytest.raises(BudgetSpent), watching(connection, watch):
        run_state_machine_as_test(
            machine_factory(_toy(clock), connection, watch), settings=_SETTINGS
        )  # type: ignore[arg-type]
    assert 1 <= watch.examples <= 13
    assert clock.now <= 100 + 12 + 1
    assert connection.watch is None


def test_a_run_out_of_time_is_reported_with_what_it_left_out() -> None:
    clock = _Clock()
    budget = Budget(60.0, started=clock.now, clock=clock)
    run_machine(_toy(clock), _Connection(), _SETTINGS, budget, "test_area[x-0]")
    assert budget.left_out and budget.left_out[0].startswith("test_area[x-0]: stopped after ")


def test_a_divergence_found_before_the_deadline_is_still_shrunk_after_it() -> None:
    clock = _Clock()
    budget = Budget(60.0, started=clock.now, clock=clock)
    budget.weights = {"test_area[x-0]": 1.0, "other": 20.0}  # a share of about two seconds
    with pytest.raises(Divergence) as raised:
        run_machine(_toy(clock, fail_at=0), _Connection(), _SETTINGS, budget, "test_area[x-0]")
    assert len(raised.value.info.calls) == 1  # shrunk to one call


class _FifthCall(_Toy):
    """Diverges at its fifth call, whatever the values: every shrink attempt costs seconds."""

    @rule()
    def count(self) -> None:
        self.clock.now += 1
        self.harness.call(10 if self.harness.calls == 4 else 0)


def test_shrinking_stops_when_its_time_is_spent_with_the_smallest_example_seen() -> None:
    clock = _Clock()
    budget = Budget(20.0, started=clock.now, clock=clock)  # 4 s of shrinking
    toy = type("Toy", (_FifthCall,), {"clock": clock, "started": [], "fail_at": 10})
    fixed = settings(_SETTINGS, stateful_step_count=8, derandomize=True)  # the same run each time
    with pytest.raises(Divergence) as raised:
        run_machine(toy, _Connection(), fixed, budget, "t")
    assert len(raised.value.info.calls) == 5
    assert clock.now <= 100 + 5 + budget.shrinking + 1
    unbounded = type("Toy", (_FifthCall,), {"clock": _Clock(), "started": [], "fail_at": 10})
    with pytest.raises(Divergence):
        run_machine(unbounded, _Connection(), fixed, None, "t")
    assert len(unbounded.started) > len(toy.started)  # Hypothesis's own shrinking tries more


def test_without_a_budget_shrinking_goes_to_the_smallest_example() -> None:
    clock = _Clock()
    with pytest.raises(Divergence) as raised:
        run_machine(_toy(clock, fail_at=10), _Connection(), _SETTINGS, None, "test_area[x-0]")
    assert len(raised.value.info.calls) == 1


@pytest.mark.parametrize("budget", [None, 60.0])
def test_a_target_error_ends_the_machine_at_once_as_itself_not_shrunk(
    budget: float | None,
) -> None:
    clock = _Clock()
    toy = _toy(clock, target_fails_at=3)
    watched = None if budget is None else Budget(budget, clock.now, clock)
    with pytest.raises(TargetStalled, match="stalled"):
        run_machine(toy, _Connection(), _SETTINGS, watched, "test_area[x]")
    assert len(toy.started) == 1  # a shrinking Hypothesis would have replayed it


def test_without_a_target_error_the_machine_runs_all_its_examples() -> None:
    toy = _toy(_Clock())
    run_machine(toy, _Connection(), _SETTINGS, None, "test_area[x]")
    assert len(toy.started) >= _SETTINGS.max_examples


class _Surveyed(_Toy):
    """Every example ends early at its first step (a survey noted a divergence and went on)."""

    @rule(value=st.integers(0, 10))
    def step(self, value: int) -> None:
        self.harness.call(value)
        raise Desynced()


@pytest.mark.parametrize("budget", [None, 1000.0])
def test_a_machine_whose_examples_all_end_early_has_judged_what_it_could(
    budget: float | None,
) -> None:
    clock = _Clock()
    quiet = type("Quiet", (_Surveyed,), {"clock": clock, "started": []})
    watched = None if budget is None else Budget(budget, clock.now, clock)
    run_machine(quiet, _Connection(), _SETTINGS, watched, "test_area[x-0]")  # not Unsatisfiable
    assert quiet.started
    diverging = type("Diverging", (_Surveyed,), {"clock": clock, "started": [], "fail_at": 0})
    with pytest.raises(Divergence):
        run_machine(diverging, _Connection(), _SETTINGS, watched, "test_area[x-0]")


def test_a_seed_fixes_the_examples_of_a_run() -> None:
    def values(seed: int) -> list[int]:
        drawn: list[int] = []

        class Recording(_Toy):
            @rule(value=st.integers(0, 1000))
            def record(self, value: int) -> None:
                drawn.append(value)

        toy = type("Toy", (Recording,), {"clock": _Clock(), "started": []})
        run_machine(toy, _Connection(), _SETTINGS, None, "test_area[x]", seed=seed)
        return drawn

    assert values(7) == values(7)
    assert values(7) != values(8)


class _Fickle(_Toy):
    """A machine following a target that answers the same calls differently on each run: the
    range of its next draw changes from one example to the next, as a model following such a
    target changes the calls it can make."""

    @rule(data=st.data())
    def follow(self, data: st.DataObject) -> None:
        self.harness.call(data.draw(st.integers(0, 5 + len(self.started) % 4)))


# Hypothesis sees the changed draws only when it replays a prefix of an earlier example, which a
# random run may not do within a budget's few examples: derandomized, the same replay always comes.
_REPLAYING = settings(_SETTINGS, derandomize=True)


@pytest.mark.parametrize("budget", [None, 600.0])
def test_an_inconsistent_target_is_named_not_hypothesis_flaky_generation(
    budget: float | None,
) -> None:
    clock = _Clock()
    fickle = type("Fickle", (_Fickle,), {"clock": clock, "started": []})
    watched = None if budget is None else Budget(budget, clock.now, clock)
    with pytest.raises(TargetInconsistent, match="answered the same calls differently"):
        run_machine(fickle, _Connection(), _REPLAYING, watched, "test_area[x]")


# ---- a budget shared by workers ----------------------------------------------------------------


def test_workers_share_the_time_left_by_what_no_worker_has_started(tmp_path: Path) -> None:
    clock = _Clock()
    names = [f"test_area[a-{n}]" for n in range(8)]
    first, second = (
        Budget(100.0, started=clock.now, clock=clock, workers=4, board=tmp_path) for _ in range(2)
    )
    for budget in (first, second):
        budget.weights = dict.fromkeys(names, 1.0)
    time_left = first.generation_end - clock.now
    assert first.deadline_for(names[0]) == pytest.approx(clock.now + time_left * 4 / 8)
    for name in names[1:6]:
        second.deadline_for(name)  # the other worker starts five more
    assert first.deadline_for(names[6]) == clock.now + time_left  # two left: all the time left


def _xdist_load(order: list[str], workers: int) -> list[list[str]]:
    """The pieces each worker is handed at first by pytest-xdist's load scheduling: a few
    consecutive ones each, in the collection's order."""
    each = max(2, len(order) // workers // 4)
    return [order[k * each : (k + 1) * each] for k in range(workers)]


SCALE = 0.1
"""The target's latency: ``serve --latency xapi --latency-scale 0.1`` (a piece's estimated
cost is at a pool's latency)."""


@pytest.mark.parametrize("workers", [2, 8])
def test_a_short_budget_with_workers_starts_every_area_and_sweep(
    tmp_path: Path, workers: int
) -> None:
    """``--time-budget 90 -n N`` of a ``ci`` run: a third of the budget goes to the workers'
    start-up; each worker runs what xdist hands it, in the budget's order (a few pieces at
    first, more as it frees up), each piece until its share of the budget is spent or it is
    done (at its estimated cost); still every area and every sweep starts before its
    deadline (``run_machine`` runs none after it)."""
    clock = _Clock()
    found = area_pieces(AREAS, "ci", None) + [p for name in SWEEPS for p in sweep_pieces(name)]
    pieces = {f"{'test_area' if p.is_area else p.family}[{p.id}]": p for p in found}
    budgets = [
        Budget(90.0, started=clock.now, clock=clock, workers=workers, board=tmp_path)
        for _ in range(workers)
    ]
    for budget in budgets:
        budget.weights = {name: piece.cost for name, piece in pieces.items()}
    order = budget_order(pieces)
    queues = _xdist_load(order, workers)
    pending = order[sum(len(queue) for queue in queues) :]
    free_at = [clock.now + 30.0] * workers
    started: set[str] = set()
    while any(queues):
        worker = min((k for k in range(workers) if queues[k]), key=lambda k: free_at[k])
        clock.now = free_at[worker]
        name = queues[worker].pop(0)
        until = budgets[worker].deadline_for(name)
        if until > clock.now:
            started.add(pieces[name].family)
            free_at[worker] = min(until, clock.now + pieces[name].cost * SCALE)
        if pending and len(queues[worker]) < 2:  # xdist tops the worker up
            queues[worker].append(pending.pop(0))
    assert started == {piece.family for piece in pieces.values()}


def test_a_lone_process_shares_the_time_among_the_tests_it_has_not_started() -> None:
    clock = _Clock()
    budget = Budget(100.0, started=clock.now, clock=clock)
    budget.weights = {"a": 1.0, "b": 3.0}
    time_left = budget.generation_end - clock.now
    assert budget.deadline_for("a") == pytest.approx(clock.now + time_left / 4)
    assert budget.deadline_for("b") == pytest.approx(clock.now + time_left)


# ---- end to end: run --time-budget against the embedded server ------------------------------


def _run(tmp_path: Path, *options: str) -> tuple[int, dict[str, Any]]:
    command = [sys.executable, "-m", "conformance.runner.cli", "run", "--seed", "1", *options]
    result = subprocess.run(
        [*command, "--report-dir", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary: dict[str, Any] = json.loads((tmp_path / "summary.json").read_text())
    assert "time budget: " in result.stdout, result.stdout + result.stderr
    return result.returncode, summary


@pytest.mark.slow
def test_a_budgeted_run_conforms_and_reports_what_it_left_out(tmp_path: Path) -> None:
    status, summary = _run(tmp_path, "--time-budget", "12")
    assert (status, summary["verdict"]) == (0, "conforms")
    budget = summary["budget"]
    assert budget["seconds"] == 12 and budget["used"] > 0
    assert any("examples" in item or "cells" in item for item in budget["left_out"])
    page = (tmp_path / "report.html").read_text()
    assert '<h2 id="budget">Time budget</h2>' in page and budget["left_out"][0] in page
    assert not (tmp_path / ".budget").exists()


@pytest.mark.slow
def test_a_budgeted_run_still_finds_a_fault_first_in_the_sweeps(tmp_path: Path) -> None:
    fault = ("--fault", "power-state-capitalised")  # the lifecycle sweep's third cell shows it
    status, summary = _run(tmp_path, "--time-budget", "30", "--max-findings", "1", *fault)
    assert (status, summary["verdict"]) == (1, "diverges")
    assert "VM_BAD_POWER_STATE" in summary["divergences"][0]["message"]


def test_run_refuses_a_bad_budget(capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.runner.cli import main

    assert main(["run", "--time-budget", "soon"]) == 2
    assert "--time-budget expects seconds" in capsys.readouterr().err


def test_a_worker_counts_the_budget_from_the_run_start_not_from_its_own() -> None:
    run_start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=40)
    worker = run_started({"workerid": "gw3", "xapi_started": run_start.isoformat()})
    budget = session_budget("90s", worker, workers=8)
    assert worker == run_start
    assert budget is not None and budget.used() >= 40  # the 40 s the workers took to start up
    assert run_started({"workerid": "gw3"}) > run_start  # none given: its own start
