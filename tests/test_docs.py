"""The user documentation says what the code does: generated tables are current, every key of
summary.json is described, and the README's test command is the one CI runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from reports.records import (
    SCHEMA_VERSION,
    CallRecord,
    CoverageCell,
    DivergenceRecord,
    FindingRecord,
    FixedFinding,
    MessageCount,
    NotRun,
    OutcomeRecord,
    RunSummary,
    TimeBudget,
    summary_to_json,
)
from tools import gen_docs

ROOT = Path(__file__).resolve().parent.parent
REPORTS_PAGE = ROOT / "docs" / "reports.md"


@pytest.mark.parametrize("page", sorted(gen_docs.GENERATORS))
def test_the_generated_tables_match_the_code(page: str) -> None:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    assert gen_docs.rendered(page, text) == text, (
        f"docs/{page} is stale: run python tools/gen_docs.py"
    )


def test_a_stale_table_is_noticed() -> None:
    text = (ROOT / "docs" / "faults.md").read_text(encoding="utf-8")
    stale = text.replace("| `stale-record` |", "| `stale-records` |")
    assert stale != text and gen_docs.rendered("faults.md", stale) == text


def _full_summary() -> RunSummary:
    """A summary with every optional part filled in, so that every key is written."""
    divergence = DivergenceRecord(
        method="VM.start",
        params=("vm1", False, False),
        expected=(OutcomeRecord.failure("VM_BAD_POWER_STATE", "vm1", "halted", "running"),),
        actual=OutcomeRecord.success(""),
        area="lifecycle",
        kind="outcome",
        message="the target started a running VM",
        reproducer="print('replay')\n",
        calls=(CallRecord("VM.start(vm1)", OutcomeRecord.success("")),),
    )
    finding = FindingRecord(
        "F-0", "a title", "lifecycle", 1, ("VM.start",), ("D1",), "D1", "reproducers/F-0.py"
    )
    return RunSummary(
        verdict="diverges",
        target="embedded",
        protocol="xmlrpc",
        profile="ci",
        seed=1,
        examples=1,
        steps=1,
        coverage=(
            CoverageCell("VM.start", "Running", "plain", 1, "diverges", ("F-0",)),
            CoverageCell("VM.start", "Paused", "plain", 0, "unreachable", blocked_by="F-0"),
        ),
        divergences=(divergence,),
        started="2026-01-01T00:00:00+00:00",
        duration_s=1.0,
        findings=(finding,),
        messages=(
            MessageCount("VM.start", 1, "diverges", ("F-0",)),
            MessageCount("VM.unpause", 0, "unreachable", blocked_by="F-0"),
        ),
        fixed=(FixedFinding("F-1", "gone"),),
        budget=TimeBudget(60.0, 59.0, ("memory: 3 examples not started",)),
        not_run=(NotRun("roles", "time budget spent"),),
    )


def _keys(value: object) -> Iterator[str]:
    """Every object key anywhere in ``value``, except those of free-form maps."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            if key not in {"target_identity", "value", "params"}:
                yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_every_key_of_summary_json_is_described() -> None:
    schema = REPORTS_PAGE.read_text(encoding="utf-8").partition("## summary.json")[2]
    described = set(re.findall(r"`([a-z_]+)`", schema))
    written = set(_keys(summary_to_json(_full_summary())))
    assert written - described == set(), "docs/reports.md lacks these summary.json keys"


def test_the_schema_version_described_is_the_one_written() -> None:
    schema = REPORTS_PAGE.read_text(encoding="utf-8").partition("## summary.json")[2]
    assert f"this page describes version {SCHEMA_VERSION}" in schema
    assert f"| `schema_version` | integer | {SCHEMA_VERSION} |" in schema


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = re.search(r"^python -m pytest .*$", ci, re.MULTILINE)
    assert command is not None
    assert f"\n{command[0]}\n" in (ROOT / "README.md").read_text(encoding="utf-8")


def _areas_in_help() -> list[str]:
    """The areas ``run -k`` selects, as ``run --help`` lists them."""
    from tools.gen_docs import _subcommands

    _, run = _subcommands()["run"]
    (select,) = (a for a in run._actions if "-k" in a.option_strings)
    return str(select.help).partition(":")[2].replace(" ", "").split(",")


@pytest.mark.parametrize("page", ["README.md", "docs/glossary.md"])
def test_the_area_lists_name_every_area(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    areas = _areas_in_help()
    assert len(areas) > 5
    assert [a for a in areas if f"`{a}`" not in text] == []
