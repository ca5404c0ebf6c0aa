"""Findings: grouping divergences by the difference they show, baselines, JUnit and Allure."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

from reports import (
    CallRecord,
    DivergenceRecord,
    MessageCount,
    OutcomeRecord,
    RunSummary,
    compare_with_baseline,
    group_findings,
    read_summary,
    render_junit,
    with_findings,
    write_reports,
)
from reports.findings import LINEARIZABLE


def bad_state(
    method: str, vm: str, allowed: str, state: str, area: str = "lifecycle"
) -> DivergenceRecord:
    """A VM_BAD_POWER_STATE whose second parameter the target spells with ';'."""
    return DivergenceRecord(
        method=method,
        params=(vm,),
        expected=(OutcomeRecord.failure("VM_BAD_POWER_STATE", vm, allowed, state),),
        actual=OutcomeRecord.failure("VM_BAD_POWER_STATE", vm, allowed.replace(", ", ";"), state),
        area=area,
        kind="outcome",
        message=f"[{area}] {method}({vm}) diverges",
        reproducer=f"# replay {method}\n" * (3 if vm == "vm1" else 6),
        calls=(CallRecord(f"{method}({vm})", None),),
    )


def stale(field: str, value: str) -> DivergenceRecord:
    return DivergenceRecord(
        method=f"VM.get_{field}",
        params=("vm1",),
        expected=(OutcomeRecord.success(value),),
        actual=OutcomeRecord.success(value + " old"),
        area="fields",
        kind="state",
        message=f"[fields] VM.get_{field}(vm1) stale",
        reproducer="# stale\n",
    )


def accepted(method: str) -> DivergenceRecord:
    return DivergenceRecord(
        method=method,
        params=("vm1",),
        expected=(OutcomeRecord.failure("OPERATION_BLOCKED", "vm1", "blocked"),),
        actual=OutcomeRecord.success(""),
        area="operations",
        kind="outcome",
        message=f"[operations] {method}(vm1) accepted",
        reproducer="# accepted\n",
    )


DIVERGENCES = (
    bad_state("VM.hard_shutdown", "vm1", "paused, suspended, running", "halted"),
    bad_state("VM.destroy", "vm2", "halted, suspended", "running", area="templates"),
    bad_state("VM.hard_reboot", "vm3", "paused, running", "suspended"),
    stale("name_label", ""),
    stale("name_label", "web"),
    accepted("VM.start"),
    accepted("VM.suspend"),
)


def run_summary(divergences: tuple[DivergenceRecord, ...] = DIVERGENCES) -> RunSummary:
    return RunSummary(
        verdict="diverges" if divergences else "conforms",
        target="http://127.0.0.1:1/",
        protocol="xmlrpc",
        profile="dev",
        seed=5,
        examples=10,
        steps=100,
        coverage=(),
        divergences=divergences,
        started="2026-12-01T00:00:00+00:00",
        duration_s=3.0,
        areas=("fields", "lifecycle", "memory", "operations"),
    )


def test_divergences_showing_the_same_difference_are_one_finding() -> None:
    findings = group_findings(DIVERGENCES)
    assert [f.count for f in findings] == [3, 2, 2]
    params = findings[0]
    assert params.title == "VM_BAD_POWER_STATE: parameter 2 has ';' where xapi has ', '"
    assert params.methods == ("VM.destroy", "VM.hard_reboot", "VM.hard_shutdown")
    assert params.divergences == ("D1", "D2", "D3") and params.area == "lifecycle"
    assert params.example == "D1" and params.reproducer == f"reproducers/{params.id}.py"
    titles = {f.title for f in findings}
    assert "the VM's name_label differs from xapi's after a call (stale or wrong)" in titles
    assert "the target accepts calls xapi refuses with OPERATION_BLOCKED" in titles


def test_different_differences_stay_apart() -> None:
    other_code = replace(DIVERGENCES[0], actual=OutcomeRecord.failure("OTHER_ERROR"))
    other_field = stale("memory_static_max", "1")
    findings = group_findings((DIVERGENCES[0], other_code, DIVERGENCES[3], other_field))
    assert len(findings) == 4


def test_finding_ids_depend_only_on_the_difference() -> None:
    first = group_findings(DIVERGENCES)
    again = group_findings(tuple(reversed(DIVERGENCES)))
    assert {f.id for f in first} == {f.id for f in again}


def test_waived_divergences_make_no_finding() -> None:
    waived = tuple(replace(d, waived=True) for d in DIVERGENCES)
    assert group_findings(waived) == ()


def test_a_baseline_marks_known_and_new_findings_and_lists_fixed_ones() -> None:
    baseline = group_findings(DIVERGENCES[:5])
    marked, fixed = compare_with_baseline(group_findings(DIVERGENCES[3:]), baseline)
    statuses = {f.title: f.status for f in marked}
    assert statuses["the target accepts calls xapi refuses with OPERATION_BLOCKED"] == "new"
    assert (
        statuses["the VM's name_label differs from xapi's after a call (stale or wrong)"] == "known"
    )
    assert [f.title for f in fixed] == [
        "VM_BAD_POWER_STATE: parameter 2 has ';' where xapi has ', '"
    ]


def test_a_baseline_finding_is_fixed_only_where_the_run_judged_it() -> None:
    """A run narrowed by ``-k`` (or a time budget) to areas or messages that never showed a
    baseline finding does not call it fixed; a run that judged its messages does."""
    baseline = with_findings(run_summary())
    bad_params = "VM_BAD_POWER_STATE: parameter 2 has ';' where xapi has ', '"
    stale_name = "the VM's name_label differs from xapi's after a call (stale or wrong)"
    calls = ("VM.destroy", "VM.hard_reboot", "VM.hard_shutdown", "VM.set_name_label")
    counted = tuple(MessageCount(m, 1) for m in calls)
    clean = replace(run_summary(()), messages=(*counted, MessageCount("VM.start", 0)))
    judged = with_findings(clean, baseline=baseline)
    assert {bad_params, stale_name} <= {f.title for f in judged.fixed}
    elsewhere = replace(clean, areas=("memory",))
    assert with_findings(elsewhere, baseline=baseline).fixed == ()
    uncalled = replace(clean, messages=tuple(replace(m, count=0) for m in clean.messages))
    assert bad_params not in {f.title for f in with_findings(uncalled, baseline=baseline).fixed}


def test_every_report_counts_the_same_findings(tmp_path: Path) -> None:
    s = with_findings(run_summary())
    write_reports(tmp_path, s)
    back = read_summary(tmp_path)
    assert back.findings == s.findings and len(back.findings) == 3
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    failures = junit.findall(".//testcase/failure")
    assert len(failures) == 3
    passing = [c.get("name") for c in junit.iter("testcase") if c.find("failure") is None]
    assert passing == ["memory: no finding"]
    results = [
        json.loads(p.read_text()) for p in (tmp_path / "allure-results").glob("*-result.json")
    ]
    assert sorted(r["status"] for r in results) == ["failed"] * 3 + ["passed"]
    html = (tmp_path / "report.html").read_text()
    assert html.count('class="finding"') == 3
    for finding in s.findings:
        script = tmp_path / finding.reproducer
        assert script.read_text() == s.divergence(finding.example).reproducer
        assert f'href="{finding.reproducer}"' in html


def test_allure_steps_labels_environment_and_categories(tmp_path: Path) -> None:
    s = with_findings(run_summary())
    write_reports(tmp_path, replace(s, target_identity={"product_brand": "XCP-ng"}))
    folder = tmp_path / "allure-results"
    results = [json.loads(p.read_text()) for p in folder.glob("*-result.json")]
    failed = next(r for r in results if "VM_BAD_POWER_STATE" in r["name"])
    assert {"name": "epic", "value": "lifecycle"} in failed["labels"]
    assert {"name": "feature", "value": "VM.hard_shutdown"} in failed["labels"]
    step, *others = failed["steps"]  # the example's one call, then the finding's other two
    assert [a["name"] for a in step["attachments"]] == ["request", "response", "expected (xapi)"]
    assert [o["name"].partition(" ")[0] for o in others] == ["D2", "D3"]
    for other in others:
        assert other["status"] == "failed" and "(same finding)" in other["name"]
        (call,) = other["steps"]
        assert [a["name"] for a in call["attachments"]][-1] == "expected (xapi)"
    assert "reproducer" not in failed["statusDetails"]["trace"].lower()
    assert failed["attachments"][0]["name"].startswith("reproducer ")
    environment = (folder / "environment.properties").read_text()
    assert "target.product_brand=XCP-ng" in environment and "seed=5" in environment
    categories = json.loads((folder / "categories.json").read_text())
    assert any(c["name"] == "error code VM_BAD_POWER_STATE" for c in categories)


def test_junit_reports_known_findings_as_skipped() -> None:
    s = with_findings(run_summary(), baseline=with_findings(run_summary()), baseline_path="b.json")
    root = ET.fromstring(render_junit(s))
    assert root.findall(".//failure") == [] and len(root.findall(".//skipped")) == 3


def test_a_version_1_summary_is_read_and_grouped_as_a_baseline(tmp_path: Path) -> None:
    write_reports(tmp_path, with_findings(run_summary()))
    data = json.loads((tmp_path / "summary.json").read_text())
    old = {
        k: v
        for k, v in data.items()
        if k
        in (
            "verdict",
            "target",
            "protocol",
            "profile",
            "seed",
            "examples",
            "steps",
            "coverage",
            "divergences",
            "started",
            "duration_s",
            "error",
            "tool_version",
            "strictness",
        )
    }
    old["schema_version"] = 1
    (tmp_path / "old.json").write_text(json.dumps(old))
    baseline = read_summary(tmp_path / "old.json")
    s = with_findings(run_summary(), baseline=baseline)
    assert all(f.status == "known" for f in s.findings) and s.fixed == ()


def test_a_race_is_titled_as_one() -> None:
    from reports.findings import difference

    race = replace(
        accepted("VM.start"),
        kind="race",
        area="concurrency",
        expected=(OutcomeRecord.success("a linearizable history"),),
    )
    shown = difference(race)
    assert (
        shown.title
        == "a race: no order of the concurrent calls explains VM.start answering success"
    )
    assert difference(replace(race, method="VM.destroy")).key != shown.key


# ---- one fault, one finding, blamed on its cause ---------------------------------------------


def test_a_stale_getter_and_the_stale_record_are_one_finding_blamed_on_the_setter() -> None:
    getter = replace(stale("name_label", "web"), kind="outcome", cause="VM.set_name_label")
    record = replace(stale("name_label", "web"), cause="VM.set_name_label")
    (finding,) = group_findings((getter, record))
    assert finding.cause == "VM.set_name_label"
    assert finding.methods == ("VM.get_name_label",)


def test_a_getter_answering_a_value_of_its_own_is_its_own_fault() -> None:
    (finding,) = group_findings((replace(stale("name_label", "web"), kind="outcome"),))
    assert finding.cause == "VM.get_name_label"
    assert "returns a different value" in finding.title


def unknown(method: str, code: str = "VM_BAD_POWER_STATE") -> DivergenceRecord:
    return replace(
        accepted(method),
        expected=(OutcomeRecord.failure(code, "vm1"),),
        actual=OutcomeRecord.failure("MESSAGE_METHOD_UNKNOWN", method),
    )


def test_each_message_a_target_does_not_implement_is_one_finding_however_xapi_answers() -> None:
    found = group_findings(
        (
            unknown("VM.checkpoint"),
            unknown("VM.checkpoint", "LICENSE_RESTRICTION"),
            unknown("VM.copy"),
        )
    )
    assert sorted((f.cause, f.count) for f in found) == [("VM.checkpoint", 2), ("VM.copy", 1)]


def race(
    method: str, calls: tuple[str, ...], expected: OutcomeRecord | None = None
) -> DivergenceRecord:
    """A race whose culprit ``method`` answered success; ``expected``: the model's answer to it
    at the deepest order tried (None: no single answer stands for the race)."""
    return replace(
        accepted(method),
        kind="race",
        area="concurrency",
        expected=(expected or OutcomeRecord.success(LINEARIZABLE),),
        calls=tuple(CallRecord(c, None) for c in calls),
    )


def test_a_race_a_sequential_finding_explains_folds_into_it() -> None:
    sequential = accepted("VM.start")
    raced = race("VM.get_record", ("session A: VM.start(vm1) -> success",))
    (finding,) = group_findings((sequential, raced))
    assert finding.seen_under_concurrency and finding.count == 2
    assert finding.id == group_findings((sequential,))[0].id


def test_a_race_no_sequential_finding_explains_stands_alone() -> None:
    found = group_findings((accepted("VM.start"), race("VM.destroy", ("VM.destroy(vm1)",))))
    assert len(found) == 2
    assert [f.seen_under_concurrency for f in found if f.cause == "VM.destroy"] == [True]


def test_a_race_showing_a_sequential_difference_is_its_finding_whatever_its_calls() -> None:
    """The culprit's answer differs from the model's as a sequential divergence does: one
    finding, one id, though the race never called the sequential finding's cause."""
    refused = OutcomeRecord.failure("OPERATION_BLOCKED", "vm1", "blocked")
    raced = race("VM.destroy", ("VM.destroy(vm1)",), expected=refused)
    (finding,) = group_findings((accepted("VM.start"), raced))
    assert finding.seen_under_concurrency and finding.count == 2
    (alone,) = group_findings((raced,))
    assert alone.id == finding.id and alone.seen_under_concurrency


def test_a_race_whose_final_records_differ_on_a_field_is_that_fields_finding() -> None:
    raced = replace(
        race("VM.get_record", ("VM.set_name_label(vm1, 'x')",)),
        message="[concurrency] no order... Deepest attempt: after end #1: every call explained,"
        " but the final records differ: vm1: field name_label: 'x' where xapi has 'y'",
    )
    (finding,) = group_findings((stale("name_label", "web"), raced))
    assert finding.id == group_findings((stale("name_label", "web"),))[0].id
    assert finding.seen_under_concurrency


def test_a_race_whose_record_read_differs_on_a_field_is_that_fields_finding() -> None:
    """A record read no order explains is keyed by the field it shows, not by "record"."""
    raced = replace(
        race(
            "VM.get_record",
            ("VM.set_name_label(vm1, 'x')",),
            expected=OutcomeRecord.success({"name_label": "y"}),
        ),
        message="[concurrency] no order... Deepest attempt: #3 VM.get_record: field name_label:"
        " 'x' where xapi has 'y'",
    )
    (finding,) = group_findings((stale("name_label", "web"), raced))
    assert finding.id == group_findings((stale("name_label", "web"),))[0].id
    assert finding.seen_under_concurrency
