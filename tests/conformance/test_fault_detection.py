"""Both sides of the suite: it exits 1 on each seeded fault, with the expected divergence and a
reproducer that reproduces it, and the same reproducer passes against the reference server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer, start_in_thread
from models.world import Account

pytestmark = pytest.mark.slow

PASSWORD = "fault-pw"
ACCOUNTS = (Account("ro", "ro-pw", "read-only"),)

# fault → (areas to run, expected code in the divergence's expected outcome or kind, method)
CASES = {
    "wrong-error-param": ("lifecycle_sweep", "VM_BAD_POWER_STATE"),
    "wrong-state-allowed": ("lifecycle_sweep", "VM_BAD_POWER_STATE"),
    "blocked-ignored": ("blocked_sweep", "OPERATION_BLOCKED"),
    "memory-order-unchecked": ("memory_sweep", "MEMORY_CONSTRAINT_VIOLATION_ORDER"),
    "stale-record": ("fields", "state"),
    "lost-async-error": ("async", "async"),
    "rbac-ignored": ("roles", "RBAC_PERMISSION_DENIED"),
}


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Iterator[tuple[RunningServer, RunningServer]]:
    """A faulty embedded server and an honest one."""
    faulty = start_in_thread(
        ServerConfig(password=PASSWORD, accounts=ACCOUNTS, faults=(request.param,))
    )
    honest = start_in_thread(ServerConfig(password=PASSWORD, accounts=ACCOUNTS))
    try:
        yield faulty, honest
    finally:
        faulty.stop()
        honest.stop()


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XAPI_PASSWORD": PASSWORD, "RO_PASSWORD": "ro-pw"}
    return subprocess.run(
        [sys.executable, "-m", "conformance.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _reproduce(script: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XAPI_PASSWORD": PASSWORD, "XAPI_PASSWORD_READ_ONLY": "ro-pw"}
    return subprocess.run(
        [sys.executable, str(script), url],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("servers", "fault"), [(f, f) for f in CASES], indirect=["servers"], ids=list(CASES)
)
def test_seeded_fault_is_found_and_reproduced(
    servers: tuple[RunningServer, RunningServer], fault: str, tmp_path: Path
) -> None:
    faulty, honest = servers
    area, expected_mark = CASES[fault]
    result = _cli(
        "run",
        "--target",
        faulty.url,
        "--profile",
        "dev",
        "--seed",
        "1",
        "-k",
        area,
        "--role-account",
        "read-only=ro:RO_PASSWORD",
        "--report-dir",
        str(tmp_path),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdict"] == "diverges"
    divergence = summary["divergences"][0]
    shown = json.dumps(divergence["expected"]) + divergence["kind"] + divergence["area"]
    assert expected_mark in shown, divergence["message"]
    script = tmp_path / "reproducer.py"
    script.write_text(divergence["reproducer"])
    again = _reproduce(script, faulty.url)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "DIVERGES" in again.stdout
    clean = _reproduce(script, honest.url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "conforms now" in clean.stdout
