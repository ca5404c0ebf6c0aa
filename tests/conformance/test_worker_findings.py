"""Workers find what one process finds: a seeded fault gives the same finding and the same
reproducer with one worker and with two, since the pieces and their seeds depend only on the
profile and the run's seed."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from conformance.judge.refs import run_masked
from tests.conformance.test_run_command import run

FAULT = "stale-record"
"""A fault of the fields area's examples (not of a sweep's cells): what finds it depends on
the examples each chunk's seed draws."""
RUN_ARGS = ("--profile", "dev", "--seed", "5", "-k", "test_area and fields", "--fault", FAULT)
_ADDRESS = re.compile(r"'http://127\.0\.0\.1:\d+/'")
"""The embedded server's address, which a reproducer names."""


def _masked(script: str) -> str:
    """What a reproducer names of its own run masked: the marks on its VMs (the run's id and
    worker) and the embedded server's address."""
    return _ADDRESS.sub("'(the run's)'", run_masked(script))


def _findings(report: Path, workers: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A run's summary, and each finding's reproducer by the finding's id."""
    result = run("run", *RUN_ARGS, "-n", workers, "--report-dir", str(report))
    assert result.returncode == 1, result.stdout + result.stderr
    summary: dict[str, Any] = json.loads((report / "summary.json").read_text())
    scripts = {
        str(finding["id"]): _masked((report / str(finding["reproducer"])).read_text())
        for finding in summary["findings"]
    }
    return summary, scripts


@pytest.mark.slow
def test_one_worker_and_two_find_a_seeded_fault_with_the_same_reproducer(tmp_path: Path) -> None:
    alone, alone_scripts = _findings(tmp_path / "n1", "1")
    shared, shared_scripts = _findings(tmp_path / "n2", "2")
    assert alone["verdict"] == shared["verdict"] == "diverges"
    assert alone_scripts and alone_scripts == shared_scripts
    assert (alone["examples"], alone["steps"]) == (shared["examples"], shared["steps"])
