"""How fast the suite finds each seeded fault (a benchmark, not a test).

For every fault of ``conformance.server.faults``, runs ``xapi-conformance run --fault F`` twice:
once with only the Hypothesis area machines (``-k test_area``: random exploration plus
shrinking) and once with only the deterministic sweeps (``-k sweep``), and reports whether the
fault was found, the wall time, and the examples and steps the run took.
Usage: python benchmarks/fault_detection.py [--seed N] [--profile dev]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conformance.server.faults import FAULTS


def _run(fault: str, selection: str, seed: int, profile: str) -> tuple[bool, float, int, int]:
    with tempfile.TemporaryDirectory() as report:
        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "conformance.cli",
                "run",
                "--fault",
                fault,
                "--profile",
                profile,
                "--seed",
                str(seed),
                "-k",
                selection,
                "--report-dir",
                report,
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        summary = json.loads((Path(report) / "summary.json").read_text())
    return result.returncode == 1, elapsed, summary["examples"], summary["steps"]


def main() -> None:
    """Print one row per fault and selection."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default="dev")
    parser.add_argument(
        "--fault", action="append", default=[], help="only these faults (repeatable)"
    )
    options = parser.parse_args()
    print(f"{'fault':24} {'selection':10} {'found':>5} {'seconds':>8} {'examples':>8} {'steps':>7}")
    for fault in options.fault or FAULTS:
        for selection in ("test_area", "sweep"):
            found, seconds, examples, steps = _run(fault, selection, options.seed, options.profile)
            print(
                f"{fault:24} {selection:10} {'yes' if found else 'no':>5} {seconds:8.1f} {examples:8} {steps:7}"
            )


if __name__ == "__main__":
    main()
