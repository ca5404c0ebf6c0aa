"""Merging the processes' parts into one summary: the error that ended the run comes first."""

from __future__ import annotations

import datetime
from pathlib import Path

from conformance.runner.results import Part, RunFacts, merge_parts, read_parts, write_part

FACTS = RunFacts(
    target="http://pool.example/",
    protocol="xmlrpc",
    profile="ci",
    seed=1,
    strictness="exact",
    started=datetime.datetime.now(datetime.UTC),
    tool_version="0.1.0",
)
TIMEOUT = "test_area[lifecycle]: TargetTimeout: did not answer host.get_all_records within 1s"
STALLED = "test_area[memory]: TargetStalled: stalled: 3 calls in a row"


def test_the_error_that_ended_the_run_is_named_first_across_workers(tmp_path: Path) -> None:
    # gw0 saw one missed deadline (its machine ended); later gw1 saw the third and the run stopped.
    write_part(tmp_path, "gw0", Part(examples=3, errors=[TIMEOUT]))
    write_part(tmp_path, "gw1", Part(examples=2, ending=[STALLED]))

    summary = merge_parts(read_parts(tmp_path), FACTS)

    assert summary.verdict == "error"
    assert summary.error.split("; ") == [STALLED, TIMEOUT]
    assert summary.examples == 5


def test_a_run_without_an_ending_error_keeps_its_errors_in_order() -> None:
    summary = merge_parts([Part(errors=["a: ValueError: one"]), Part(errors=["b: E: two"])], FACTS)

    assert summary.error == "a: ValueError: one; b: E: two"
