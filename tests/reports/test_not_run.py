"""What a run did not test is skipped with its reason in every artefact, never passed."""

from __future__ import annotations

import datetime
import json

from conformance.runner.results import INTERRUPTED, Part, RunFacts, merge_parts
from reports import NotRun, render_junit, summary_from_json, summary_to_json
from reports.allure import render_allure
from tests.reports.test_reports import summary


def _skipped(junit: str) -> list[str]:
    return [line for line in junit.splitlines() if "<skipped" in line]


def test_an_area_not_run_is_a_skipped_case_with_its_reason_in_junit_and_allure() -> None:
    s = summary(areas=("fields",), not_run=(NotRun("memory", "time budget: not run"),))
    junit = render_junit(s)
    assert _skipped(junit) == ['      <skipped message="time budget: not run" />']
    assert 'name="memory: not run"' in junit
    results = [json.loads(v) for k, v in render_allure(s).items() if k.endswith("-result.json")]
    memory = next(r for r in results if r["name"] == "memory: not run")
    assert memory["status"] == "skipped"
    assert memory["statusDetails"] == {"message": "time budget: not run"}


def test_a_run_that_ran_every_area_has_no_skipped_case() -> None:
    assert _skipped(render_junit(summary(areas=("fields",)))) == []


def test_not_run_round_trips_through_summary_json() -> None:
    s = summary(not_run=(NotRun("rpc", "not selected (-k)"),))
    assert summary_from_json(json.loads(json.dumps(summary_to_json(s)))) == s


def test_the_verdict_says_interrupted_or_how_many_areas_the_budget_left_out() -> None:
    budget = summary(not_run=(NotRun("rpc", "time budget: not run"), NotRun("roles", "x")))
    assert budget.not_run_note == "time budget: 1 area(s) not run"
    assert summary(not_run=(NotRun("rpc", INTERRUPTED),)).not_run_note == "interrupted"
    assert summary().not_run_note == ""


def test_an_interrupted_run_lists_every_area_it_never_reached() -> None:
    started = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    facts = RunFacts("embedded", "xmlrpc", "ci", 1, "exact", started, "0")
    ran = Part(examples=1)
    ran.areas.add("lifecycle")
    merged = merge_parts([ran], facts, interrupted=True)
    assert "lifecycle" not in {n.area for n in merged.not_run}
    assert {n.reason for n in merged.not_run} == {INTERRUPTED}
    assert merged.not_run_note == "interrupted"
    whole = merge_parts([ran], facts)
    assert whole.not_run == ()
