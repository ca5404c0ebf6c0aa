"""Time budgets: durations, deadlines, cells left out, machines that stop in time but still shrink."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from conformance.errors import TargetInconsistent, TargetStalled, UsageError
from conformance.judge.divergence import Divergence, DivergenceInfo
from conformance.runner.budget import (
    Budget,
    BudgetSpent,
    budgeted_machine,
    parse_duration,
    run_machine,
    shrinking_bounded,
)
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
    assert budget.shrink_seconds() == pytest.approx(7.0)
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


def _info() -> DivergenceInfo:
    return DivergenceInfo("VM.x", (), (Success(""),), Success("y"), "test", "outcome", "m")


class _Harness:
    def __init__(self, fail_at: int | None, target_fails_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.target_fails_at = target_fails_at
        self.calls = 0

    def call(self, value: int) -> int:
        self.calls += 1
        if self.target_fails_at is not None and self.calls >= self.target_fails_at:
            raise TargetStalled("the target stalled")
        if self.fail_at is not None and value >= self.fail_at:
            raise Divergence(_info())
        return value


class _Toy(RuleBasedStateMachine):
    fail_at: int | None = None
    target_fails_at: int | None = None
    clock: _Clock
    started: list[int]

    def __init__(self) -> None:
        super().__init__()
        self.started.append(1)
        self.harness = _Harness(self.fail_at, self.target_fails_at)

    @rule(value=st.integers(0, 10))
    def step(self, value: int) -> None:
        self.clock.now += 1
        self.harness.call(value)


_SETTINGS = settings(
    max_examples=50, stateful_step_count=5, database=None, deadline=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip


def test_a_machine_starts_no_example_after_its_deadline_and_stops_one_at_its_next_step() -> None:
    clock = _Clock()
    toy = type("Toy", (_Toy,), {"clock": clock, "started": []})
    bound, examples = budgeted_machine(toy, until=clock.now + 12, clock=clock)
    with pytest.raises(BudgetSpent):
        run_state_machine_as_test(bound, settings=_SETTINGS)
    assert 1 <= examples() <= 13
    assert clock.now <= 100 + 12 + 1


def test_a_divergence_found_before_the_deadline_is_still_shrunk_after_it() -> None:
    clock = _Clock()
    toy = type("Toy", (_Toy,), {"clock": clock, "fail_at": 0, "started": []})
    bound, _examples = budgeted_machine(toy, until=clock.now + 2, clock=clock)
    with pytest.raises(Divergence), shrinking_bounded(30):
        run_state_machine_as_test(bound, settings=_SETTINGS)


@pytest.mark.parametrize("budget", [None, 60.0])
def test_a_target_error_ends_the_machine_at_once_as_itself_not_shrunk(
    budget: float | None,
) -> None:
    clock = _Clock()
    started: list[int] = []
    toy = type("Toy", (_Toy,), {"clock": clock, "target_fails_at": 3, "started": started})
    watched = None if budget is None else Budget(budget, clock.now, clock)
    with pytest.raises(TargetStalled, match="stalled"):
        run_machine(toy, _SETTINGS, watched, "test_area[x]")
    assert len(started) == 1  # a shrinking Hypothesis would have replayed it


def test_without_a_target_error_the_machine_runs_all_its_examples() -> None:
    started: list[int] = []
    toy = type("Toy", (_Toy,), {"clock": _Clock(), "started": started})
    run_machine(toy, _SETTINGS, None, "test_area[x]")
    assert len(started) >= _SETTINGS.max_examples


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
        run_machine(fickle, _REPLAYING, watched, "test_area[x]")


def test_shrinking_bounded_restores_hypothesis_bound() -> None:
    from hypothesis.internal.conjecture import engine

    before = engine.MAX_SHRINKING_SECONDS
    with shrinking_bounded(7.2):
        assert engine.MAX_SHRINKING_SECONDS == 8
    assert before == engine.MAX_SHRINKING_SECONDS


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
    status, summary = _run(tmp_path, "--time-budget", "30", *fault)
    assert (status, summary["verdict"]) == (1, "diverges")
    assert "VM_BAD_POWER_STATE" in summary["divergences"][0]["message"]


def test_run_refuses_a_bad_budget(capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.runner.cli import main

    assert main(["run", "--time-budget", "soon"]) == 2
    assert "--time-budget expects seconds" in capsys.readouterr().err
