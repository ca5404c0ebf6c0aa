"""Every cell and message gets a status; an unreachable one names the finding that blocked it.

In-process: the lifecycle sweep and the gap cases (what the last test of each process aims at)
on the embedded server with VM.start always failing (the honest server's are in test_gaps); and
the rule itself, both ways, on a summary where an example reached a power state the suite's own
way to it cannot.
"""

from __future__ import annotations

import contextlib
import datetime
from collections import Counter
from dataclasses import replace

from conformance.areas.gaps import gap_cases
from conformance.areas.sweeps import lifecycle_sweep, run_all
from conformance.engine.harness import Connection
from conformance.judge.divergence import Divergence
from conformance.runner.results import Part, RunFacts, divergence_record, merge_parts
from conformance.runner.statuses import with_statuses
from conformance.runner.survey import surveyed
from reports import (
    CoverageCell,
    DivergenceRecord,
    OutcomeRecord,
    RunSummary,
    with_findings,
)
from tests.conformance.test_survey import _surveying
from tests.reports.test_findings import run_summary

FACTS = RunFacts(
    "embedded", "xmlrpc", "ci", 1, "exact", datetime.datetime.now(datetime.UTC), "test"
)


def _mapped(connection: Connection) -> RunSummary:
    """The lifecycle sweep, then the gap cases, surveyed; the summary of what they judged."""
    for cases in (lifecycle_sweep, lambda: gap_cases(connection)):
        with contextlib.suppress(Divergence), surveyed(connection):
            run_all(cases(), connection, "fields")
    tally = connection.tally
    part = Part(examples=tally.examples, steps=tally.steps)
    part.coverage.update(tally.coverage)
    part.messages.update(tally.messages)
    part.divergences = [divergence_record(d) for d in tally.divergences]
    return merge_parts([part], FACTS)


def _share(entries: tuple[CoverageCell, ...] | tuple[object, ...], status: str) -> float:
    counted = Counter(e.status for e in entries)
    return counted[status] / len(entries)


def test_a_server_whose_start_fails_is_mapped_and_every_unreachable_cell_names_it() -> None:
    mapped = _mapped(_surveying("start-fails"))
    (finding,) = mapped.findings
    assert finding.cause in ("VM.start", "VM.start_on")
    unreachable = [c for c in (*mapped.coverage, *mapped.messages) if c.status == "unreachable"]
    assert unreachable and {c.blocked_by for c in unreachable} == {finding.id}
    assert {c.power_state for c in unreachable if isinstance(c, CoverageCell)} >= {"Running"}
    assert _share(mapped.coverage, "not_exercised") <= 0.05
    assert _share(mapped.messages, "not_exercised") <= 0.05


def _refused_start() -> DivergenceRecord:
    return DivergenceRecord(
        method="VM.start",
        params=("vm1", False, False),
        expected=(OutcomeRecord.success(""),),
        actual=OutcomeRecord.failure("MESSAGE_METHOD_UNKNOWN", "VM.start"),
        area="lifecycle",
        kind="outcome",
        message="[lifecycle] VM.start(vm1) refused",
        reproducer="# start\n",
        cause="VM.start",
        cell=("VM.start", "Halted", "plain"),
    )


def test_a_state_reached_another_way_is_still_unreachable_along_the_suites_way() -> None:
    """nova's fake pauses a Halted VM (read back as Paused) but has no VM.start: the Paused
    cells no example called are blocked by VM.start's finding, not left unexplained."""
    cells = (
        CoverageCell("VM.start", "Halted", "plain", 1),
        CoverageCell("VM.get_record", "Paused", "plain", 1),
        CoverageCell("VM.unpause", "Paused", "plain", 0),
        CoverageCell("VM.get_record", "Halted", "template", 0),
    )
    base = replace(run_summary(()), coverage=cells)
    honest = {c.method + c.power_state: c.status for c in with_statuses(base).coverage}
    assert honest["VM.unpausePaused"] == "not_exercised"
    faulty = with_statuses(with_findings(replace(base, divergences=(_refused_start(),))))
    shown = {c.method + c.power_state + c.vm_kind: c for c in faulty.coverage}
    assert shown["VM.unpausePausedplain"].status == "unreachable"
    assert shown["VM.unpausePausedplain"].blocked_by == faulty.findings[0].id
    assert shown["VM.get_recordHaltedtemplate"].status == "not_exercised"
