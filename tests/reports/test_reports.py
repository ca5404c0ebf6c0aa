"""The reports package: the summary.json contract, atomic writes, HTML, redaction, the matrix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reports
from reports import (
    CallRecord,
    CoverageCell,
    DivergenceRecord,
    FindingRecord,
    FixedFinding,
    MessageCount,
    OutcomeRecord,
    RunSummary,
    TimeBudget,
    atomic_write_bytes,
    atomic_write_text,
    build_matrix,
    matrix_markdown,
    read_summary,
    redact,
    render_html,
    render_matrix,
    render_summary_json,
    summary_from_json,
    summary_to_json,
    write_html,
    write_matrix,
    write_summary,
)

TOP_LEVEL_KEYS = [
    "verdict",
    "target",
    "protocol",
    "profile",
    "seed",
    "examples",
    "steps",
    "target_identity",
    "release",
    "areas",
    "coverage",
    "findings",
    "baseline",
    "fixed",
    "not_run",
    "divergences",
    "started",
    "duration_s",
    "error",
    "tool_version",
    "strictness",
    "schema_version",
]

DIVERGENCE_KEYS = [
    "id",
    "method",
    "params",
    "expected",
    "actual",
    "area",
    "kind",
    "message",
    "reproducer",
    "waived",
    "waiver_reason",
    "expected_outcomes",
    "actual_outcome",
    "calls",
    "cause",
    "cell",
]

# --- strategies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
words = st.text(max_size=12)
outcomes = st.one_of(
    st.builds(OutcomeRecord.success, json_values),
    st.builds(
        lambda code, params: OutcomeRecord.failure(code, *params),
        st.text(min_size=1, max_size=12),
        st.lists(words, max_size=3),
    ),
)
cells = st.builds(
    CoverageCell,
    method=words,
    power_state=st.sampled_from(["Halted", "Running", "Paused", "Suspended"]),
    vm_kind=st.sampled_from(["plain", "template", "default_template", "snapshot"]),
    count=st.integers(min_value=0, max_value=10**6),
)
divergences = st.builds(
    DivergenceRecord,
    method=words,
    params=st.lists(json_values, max_size=3).map(tuple),
    expected=st.lists(outcomes, max_size=3).map(tuple),
    actual=outcomes,
    area=st.sampled_from(["lifecycle", "memory", "operations", "templates", "fields", "rpc"]),
    kind=words,
    message=words,
    reproducer=words,
    waived=st.booleans(),
    waiver_reason=words,
    calls=st.lists(st.builds(CallRecord, words, st.none() | outcomes), max_size=2).map(tuple),
)
findings = st.builds(
    FindingRecord,
    id=words,
    title=words,
    area=words,
    count=st.integers(min_value=1, max_value=99),
    methods=st.lists(words, max_size=2).map(tuple),
    divergences=st.lists(words, max_size=2).map(tuple),
    example=words,
    reproducer=words,
    status=st.sampled_from(["new", "known", ""]),
)
summaries = st.builds(
    RunSummary,
    verdict=st.sampled_from(["conforms", "diverges", "error"]),
    target=words,
    protocol=st.sampled_from(["xmlrpc", "jsonrpc"]),
    profile=words,
    seed=st.none() | st.integers(min_value=0, max_value=2**64),
    examples=st.integers(min_value=0, max_value=10**6),
    steps=st.integers(min_value=0, max_value=10**6),
    coverage=st.lists(cells, max_size=4).map(tuple),
    divergences=st.lists(divergences, max_size=3).map(tuple),
    started=words,
    duration_s=st.floats(min_value=0, max_value=1e6),
    error=words,
    tool_version=words,
    strictness=st.sampled_from(["exact", "lenient"]),
    findings=st.lists(findings, max_size=2).map(tuple),
    messages=st.lists(st.builds(MessageCount, words, st.integers(0, 99)), max_size=2).map(tuple),
    target_identity=st.dictionaries(words, words, max_size=2),
    release=words,
    areas=st.lists(words, max_size=2).map(tuple),
    baseline=words,
    fixed=st.lists(st.builds(FixedFinding, words, words), max_size=2).map(tuple),
    budget=st.none()
    | st.builds(
        TimeBudget,
        st.floats(min_value=0, max_value=1e6),
        st.floats(min_value=0, max_value=1e6),
        st.lists(words, max_size=2).map(tuple),
    ),
)

# --- fixtures ----------------------------------------------------------------------------------


def divergence(method: str = "VM.start", **changes: object) -> DivergenceRecord:
    fields: dict[str, object] = {
        "method": method,
        "params": ("OpaqueRef:vm", False, False),
        "expected": (
            OutcomeRecord.failure("VM_BAD_POWER_STATE", "OpaqueRef:vm", "halted", "running"),
        ),
        "actual": OutcomeRecord.success(""),
        "area": "lifecycle",
        "kind": "outcome",
        "message": "the target started a running VM",
        "reproducer": "import XenAPI\nprint('replay')\n",
    }
    fields.update(changes)
    return DivergenceRecord(**fields)  # type: ignore[arg-type]


def summary(**changes: object) -> RunSummary:
    fields: dict[str, object] = {
        "verdict": "diverges",
        "target": "https://xs1.example",
        "protocol": "xmlrpc",
        "profile": "default",
        "seed": 1234,
        "examples": 100,
        "steps": 1500,
        "coverage": (
            CoverageCell("VM.start", "Halted", "plain", 7, "diverges", ("F-1",)),
            CoverageCell("VM.start", "Running", "plain", 0, "unreachable", blocked_by="F-1"),
            CoverageCell("VM.clone", "Halted", "template", 3, "ok"),
        ),
        "divergences": (divergence(),),
        "started": "2024-05-01T12:00:00+00:00",
        "duration_s": 12.5,
        "tool_version": "0.1.0",
    }
    fields.update(changes)
    return RunSummary(**fields)  # type: ignore[arg-type]


# --- records and summary.json ------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(summaries)
def test_summary_json_round_trips_exactly(s: RunSummary) -> None:
    assert summary_from_json(summary_to_json(s)) == s


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(summaries)
def test_summary_json_round_trips_through_json_text(s: RunSummary) -> None:
    text = json.dumps(summary_to_json(s), ensure_ascii=False)
    assert summary_from_json(json.loads(text)) == s


def test_a_list_success_and_a_failure_stay_distinct_through_json() -> None:
    as_value = OutcomeRecord.success(["HANDLE_INVALID", "VM"])
    as_error = OutcomeRecord.failure("HANDLE_INVALID", "VM")
    assert as_value.as_json() == as_error.as_json() == ["HANDLE_INVALID", "VM"]
    s = summary(divergences=(divergence(expected=(as_value,), actual=as_error),))
    back = summary_from_json(json.loads(json.dumps(summary_to_json(s))))
    assert back.divergences[0].expected == (as_value,)
    assert back.divergences[0].actual == as_error


def test_summary_json_has_exactly_the_documented_layout() -> None:
    data = json.loads(render_summary_json(summary()))
    assert list(data) == TOP_LEVEL_KEYS
    assert data["schema_version"] == 3
    assert data["coverage"] == {
        "cells": [
            {"method": "VM.start", "power_state": "Halted", "vm_kind": "plain", "count": 7}
            | {"status": "diverges", "findings": ["F-1"]},
            {"method": "VM.start", "power_state": "Running", "vm_kind": "plain", "count": 0}
            | {"status": "unreachable", "blocked_by": "F-1"},
            {"method": "VM.clone", "power_state": "Halted", "vm_kind": "template", "count": 3}
            | {"status": "ok"},
        ],
        "messages": [],
        "exercised": 2,
        "messages_exercised": 0,
    }
    (d,) = data["divergences"]
    assert list(d) == DIVERGENCE_KEYS
    assert d["params"] == ["OpaqueRef:vm", False, False]
    assert d["expected"] == [["VM_BAD_POWER_STATE", "OpaqueRef:vm", "halted", "running"]]
    assert d["actual"] == ""
    assert d["actual_outcome"] == {"status": "success", "value": ""}
    assert d["expected_outcomes"] == [
        {"status": "failure", "error": ["VM_BAD_POWER_STATE", "OpaqueRef:vm", "halted", "running"]}
    ]


def test_a_budget_is_in_summary_json_only_for_a_budgeted_run() -> None:
    assert "budget" not in summary_to_json(summary())
    budgeted = summary(budget=TimeBudget(60.0, 58.2, ("memory: 12 examples not started",)))
    data = json.loads(render_summary_json(budgeted))
    assert list(data) == [*TOP_LEVEL_KEYS, "budget"]
    assert data["budget"] == {
        "seconds": 60.0,
        "used": 58.2,
        "left_out": ["memory: 12 examples not started"],
    }
    assert summary_from_json(data) == budgeted


def test_html_shows_the_time_budget_the_time_used_and_what_was_left_out() -> None:
    page = render_html(summary(budget=TimeBudget(60.0, 63.0, ("memory: 12 examples not started",))))
    budget = page.partition('<h2 id="budget">Time budget</h2>')[2].partition("<h2")[0]
    assert "1 min 00 s" in budget and "1 min 03 s — over the budget" in budget
    assert "<li>memory: 12 examples not started</li>" in budget
    assert '<h2 id="budget">' not in render_html(summary())
    within = render_html(summary(budget=TimeBudget(900.0, 880.0, ())))
    assert "Nothing: every selected cell and example ran." in within


def test_two_runs_never_share_a_matrix_heading() -> None:
    same = summary(target="https://xs1.example")
    m = build_matrix([same, same])
    assert len(set(m.columns)) == 2


def test_matrix_shows_statuses_of_schema_3_and_links_diverging_cells() -> None:
    messages = (
        MessageCount("VM.start", 3, "diverges", ("F-1",)),
        MessageCount("VM.pause", 0, "unreachable", blocked_by="F-1"),
        MessageCount("VM.suspend", 0, "not_exercised"),
        MessageCount("VM.clone", 2, "ok"),
    )
    s = summary(messages=messages)
    m = build_matrix([s])
    shown = dict(zip(m.methods, m.cells, strict=True))
    assert {
        method: shown[method] for method in ("VM.start", "VM.pause", "VM.suspend", "VM.clone")
    } == {
        "VM.start": ("diverges (1)",),
        "VM.pause": ("unreachable (F-1)",),
        "VM.suspend": ("not exercised",),
        "VM.clone": ("ok",),
    }
    page = render_matrix([s], reports=["run-a/report.html"])
    assert '<a href="run-a/report.html#F-1">diverges (1)</a>' in page


def test_summary_from_json_rejects_another_schema_version_and_missing_keys() -> None:
    data = summary_to_json(summary())
    with pytest.raises(ValueError, match="schema_version"):
        summary_from_json({**data, "schema_version": 4})
    without_target = {k: v for k, v in data.items() if k != "target"}
    with pytest.raises(ValueError, match="'target'"):
        summary_from_json(without_target)
    with pytest.raises(ValueError, match="verdict"):
        summary_from_json({**data, "verdict": "maybe"})


def test_outcome_records_are_consistent() -> None:
    with pytest.raises(ValueError):
        OutcomeRecord(ok=False)
    with pytest.raises(ValueError):
        OutcomeRecord(ok=True, error=("X",))
    assert OutcomeRecord.failure("X", "a").as_json() == ["X", "a"]
    assert OutcomeRecord.success((1, 2)).as_json() == [1, 2]


def test_write_summary_then_read_summary_gives_the_summary_back(tmp_path: Path) -> None:
    s = summary(target="xs-åäö", divergences=(divergence(message="ünïcode"),))
    path = write_summary(tmp_path / "out", s)
    assert path == tmp_path / "out" / "summary.json"
    text = path.read_text(encoding="utf-8")
    assert "ünïcode" in text  # ensure_ascii=False
    assert text.startswith('{\n  "verdict": "diverges",')  # indent 2, documented order
    assert read_summary(path) == s
    assert read_summary(tmp_path / "out") == s


def test_summary_json_is_strict_json_even_for_odd_values(tmp_path: Path) -> None:
    odd = divergence(actual=OutcomeRecord.success({"x": float("nan")}))
    text = write_summary(tmp_path, summary(divergences=(odd,))).read_text(encoding="utf-8")
    assert "NaN" not in text
    assert json.loads(text)["divergences"][0]["actual"] == {"x": "nan"}


# --- atomic writes -----------------------------------------------------------------------------


def test_atomic_write_leaves_only_the_target_file(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text(encoding="utf-8") == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]


class Unserialisable:
    """A value whose serialisation fails part way through rendering."""

    def __str__(self) -> str:
        raise RuntimeError("serialiser exploded")


def test_a_failing_serialiser_leaves_the_previous_summary_intact(tmp_path: Path) -> None:
    path = write_summary(tmp_path, summary())
    before = path.read_bytes()
    broken = summary(divergences=(divergence(actual=OutcomeRecord.success(Unserialisable())),))
    with pytest.raises(RuntimeError, match="serialiser exploded"):
        write_summary(tmp_path, broken)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_write_failing_before_the_rename_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.bin"
    atomic_write_bytes(target, b"old and complete")

    def failing_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "fresh.bin", b"new")
    assert target.read_bytes() == b"old and complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.bin"]


# --- HTML --------------------------------------------------------------------------------------


def test_html_escapes_a_script_in_a_param_and_elsewhere() -> None:
    hostile = divergence(
        params=("<script>alert(1)</script>",),
        message="<b>bold</b>",
        reproducer="print('</pre><script>x()</script>')",
    )
    page = render_html(summary(divergences=(hostile,)))
    body = page.partition("<body>")[2]
    assert "<script" not in body  # the page's one script is its own, in the head
    assert page.count("<script") == 1
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "&lt;/pre&gt;&lt;script&gt;x()" in page


def test_html_shows_run_facts_divergence_and_reproducer(tmp_path: Path) -> None:
    path = write_html(tmp_path, summary())
    assert path.name == "report.html"
    page = path.read_text(encoding="utf-8")
    assert 'class="banner v-diverges"' in page
    for fact in ("https://xs1.example", "xmlrpc", "1234", "1500", "12.5 s"):
        assert f"<td>{fact}</td>" in page
    assert "<code>VM_BAD_POWER_STATE</code>" in page
    assert "Expected (model)" in page
    assert "Actual (target)" in page
    assert "import XenAPI\nprint(&#x27;replay&#x27;)" in page
    assert "python3 repro_D1.py" in page
    assert "<link" not in page
    assert "src=" not in page


def test_html_shows_waived_divergences_separately() -> None:
    waived = divergence("VM.clone", waived=True, waiver_reason="CA-12345 known")
    page = render_html(summary(divergences=(divergence(), waived)))
    active_part, waived_part = page.split('<h2 id="waived">', 1)
    assert 'id="D1"' in active_part
    assert "VM.clone" not in active_part.split('<h2 id="coverage">')[0].split("Divergences")[1]
    assert 'class="divergence waived" id="D2"' in waived_part
    assert "WAIVED" in waived_part
    assert "CA-12345 known" in waived_part
    assert "Divergences (1)" in page
    assert "Waived divergences (1)" in page


def test_html_coverage_marks_cells_not_exercised() -> None:
    page = render_html(summary())
    coverage = page.split('<h2 id="coverage">', 1)[1]
    assert "2 of 3 cells exercised" in coverage
    assert '<th colspan="2" scope="colgroup">plain</th>' in coverage
    assert '<th colspan="1" scope="colgroup">template</th>' in coverage
    start_row = coverage.split("<code>VM.start</code></th>", 1)[1].split("</tr>", 1)[0]
    assert start_row == (
        '<td class="hit">7</td>'
        '<td class="miss" title="not exercised">0</td>'
        '<td class="absent" title="not in the coverage space">·</td>'
    )


def test_an_error_summary_renders_its_error_text() -> None:
    failed = summary(verdict="error", error="connection refused: <xs1:443>", divergences=())
    page = render_html(failed)
    assert 'class="banner v-error"' in page
    assert '<pre class="error">connection refused: &lt;xs1:443&gt;</pre>' in page
    assert "ERROR" in page


# --- redaction ---------------------------------------------------------------------------------


def test_redact_replaces_every_secret_longest_first() -> None:
    assert redact("pw=hunter2 hunter2x", ["hunter2", "", "hunter2x"]) == "pw=*** ***"
    assert redact("nothing here", []) == "nothing here"


def test_redact_removes_a_secret_from_html_and_json_output(tmp_path: Path) -> None:
    secret = "s3cr3t-P@ss"
    leaky = divergence(
        params=("OpaqueRef:vm", {"password": secret}),
        actual=OutcomeRecord.failure("SESSION_AUTHENTICATION_FAILED", "root", secret),
        message=f"login with {secret} failed",
        reproducer=f"PASSWORD = {secret!r}\n",
    )
    s = summary(divergences=(leaky,), error=secret)
    outputs = [
        write_summary(tmp_path, s, secrets=[secret]).read_text(encoding="utf-8"),
        write_html(tmp_path, s, secrets=[secret]).read_text(encoding="utf-8"),
        render_matrix([s], secrets=[secret]),
        matrix_markdown([summary(target=f"xs-{secret}")], secrets=[secret]),
    ]
    for text in outputs:
        assert secret not in text
    assert all("***" in text for text in outputs[:2])
    data = json.loads(outputs[0])
    assert data["divergences"][0]["params"][1] == {"password": "***"}
    assert data["divergences"][0]["actual"] == ["SESSION_AUTHENTICATION_FAILED", "root", "***"]
    assert data["error"] == "***"
    assert secret in write_html(tmp_path, s).read_text(encoding="utf-8")  # not redacted unasked


def test_url_passwords_are_masked_even_without_secrets() -> None:
    s = summary(target="https://root:hunter2@xs1.example")
    assert "hunter2" not in render_html(s)
    assert json.loads(render_summary_json(s))["target"] == "https://root:***@xs1.example"


# --- matrix ------------------------------------------------------------------------------------


def test_matrix_marks_a_method_diverging_on_one_target_only(tmp_path: Path) -> None:
    xs = summary(target="xs1", protocol="xmlrpc")
    other = summary(
        target="xs2",
        protocol="jsonrpc",
        verdict="conforms",
        divergences=(),
        coverage=(CoverageCell("VM.start", "Halted", "plain", 4),),
    )
    m = build_matrix([xs, other])
    assert m.columns == ("xs1 (xmlrpc)", "xs2 (jsonrpc)")
    assert m.verdicts == ("diverges", "conforms")
    assert dict(zip(m.methods, m.cells, strict=True)) == {
        "VM.clone": ("ok", "not exercised"),
        "VM.start": ("diverges (1)", "ok"),
    }
    markdown = matrix_markdown([xs, other])
    assert "| **verdict** | **diverges** | **conforms** |" in markdown
    assert "| VM.start | diverges (1) | ok |" in markdown
    page = render_matrix([xs, other])
    assert '<td class="s-diverges">diverges (1)</td><td class="s-ok">ok</td>' in page
    path = write_matrix(tmp_path, [xs, other])
    assert path == tmp_path / "matrix.html"
    assert (tmp_path / "matrix.md").read_text(encoding="utf-8") == markdown
    assert path.read_text(encoding="utf-8") == page


def test_matrix_counts_findings_of_unwaived_divergences_and_shows_waived_ones() -> None:
    waived_only = summary(divergences=(divergence(waived=True),))
    mixed = summary(divergences=(divergence(), divergence(), divergence(waived=True)))
    m = build_matrix([waived_only, mixed, summary(verdict="error", coverage=(), divergences=())])
    row = m.cells[m.methods.index("VM.start")]
    assert row == ("waived", "diverges (1)", "not exercised")  # two divergences, one finding
    assert m.verdicts[2] == "error"


def test_matrix_names_columns_by_target_identity_and_warns_when_runs_differ() -> None:
    xcp = summary(
        target_identity={
            "product_brand": "XCP-ng",
            "product_version": "8.3.0",
            "api_version": "2.21",
        }
    )
    other = summary(seed=99, profile="thorough")
    m = build_matrix([xcp, other])
    assert m.columns == (
        "https://xs1.example · XCP-ng 8.3.0 API 2.21 (xmlrpc)",
        "https://xs1.example (xmlrpc)",
    )
    assert [w.split(" (")[0] for w in m.warnings] == [
        "the runs differ in profile",
        "the runs differ in seed",
    ]
    assert "Warning:" in render_matrix([xcp, other]) and "Warning:" in matrix_markdown([xcp, other])
    assert build_matrix([xcp, xcp]).warnings == ()


def test_matrix_markdown_escapes_table_syntax() -> None:
    markdown = matrix_markdown([summary(target="a|b", protocol="<x>")])
    assert "a\\|b (\\<x\\>)" in markdown


def test_package_exports_its_public_names() -> None:
    for name in reports.__all__:
        assert hasattr(reports, name), name
    assert reports.__doc__ == "Report renderers: records in, files out."


def test_a_long_answer_is_marked_line_by_line_and_a_short_one_by_character() -> None:
    """A pool's records differing in one VM: that line alone is marked (a character diff of
    such answers took minutes per divergence); a short answer marks the differing characters."""
    from reports import html

    records = "\n".join(f'  "VM-{i}": {{"name_label": "vm {i}"}},' for i in range(3000))
    marked = html._marked(records, records.replace('"vm 1500"', '"vm X"'))
    assert marked.count("<mark>") == 1
    assert (
        "<mark>  &quot;VM-1500&quot;: {&quot;name_label&quot;: &quot;vm 1500&quot;},\n</mark>"
        in marked
    )
    assert html._marked('{"a": 1}', '{"a": 2}') == "{&quot;a&quot;: <mark>1</mark>}"
