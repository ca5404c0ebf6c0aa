"""How fast the suite finds each seeded fault, over several seeds (a benchmark, not a test).

For every fault of ``conformance.faults.FAULTS`` and every seed, runs
``xapi-conformance run --fault F --profile P --seed S -k AREA`` (the area the catalogue says
finds it: its machine and, where there is one, its sweep) and reports:

- whether the run found it (exit 1 with a divergence in that area);
- seconds and steps until the first divergence was reported (read from the run's progress
  file, so to within a second; it includes shrinking, which ends before a test reports);
- the length, in calls, of the shrunk reproducer of the first divergence.

Then the totals the issue sets targets for: faults found by every seed, and the median
reproducer length. Usage:
    python benchmarks/fault_detection.py [--profile ci] [--seeds 1 2 3] [--fault F ...] [-j 2]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.faults import FAULTS

_CALL = re.compile(r"^\s+(?:\w+ = )?(?:remember\()?(?:call|call_async)\('")


@dataclass(frozen=True)
class Attempt:
    """One run of one fault with one seed."""

    fault: str
    seed: int
    found: bool
    seconds: float
    steps: int
    reproducer_calls: int | None
    area: str | None


def reproducer_calls(script: str) -> int:
    """The calls a reproducer replays: its steps and the final, divergent call."""
    return sum(1 for line in script.splitlines() if _CALL.match(line))


def _calls(divergence: dict[str, Any]) -> int:
    """The shrunk reproducer's length: the calls summary.json lists, or those in its script."""
    calls = divergence.get("calls")
    return len(calls) if isinstance(calls, list) else reproducer_calls(divergence["reproducer"])


def _progress(report: Path) -> tuple[int, int] | None:
    """(steps, divergences) from the run's progress files, if any were written yet."""
    steps = divergences = 0
    files = list((report / ".progress").glob("*.txt"))
    for path in files:
        try:
            _examples, step, diverged = (int(x) for x in path.read_text().split())
        except (OSError, ValueError):
            continue
        steps, divergences = steps + step, divergences + diverged
    return (steps, divergences) if files else None


def _attempt(fault: str, seed: int, profile: str) -> Attempt:
    area = FAULTS[fault].area
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch)
        command = [sys.executable, "-m", "conformance.runner.cli", "run", "--fault", fault]
        command += ["--profile", profile, "--seed", str(seed), "-k", area]
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--report-dir", str(report)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        first: tuple[float, int] | None = None
        while process.poll() is None:
            seen = _progress(report)
            if first is None and seen is not None and seen[1] > 0:
                first = (time.perf_counter() - started, seen[0])
            time.sleep(0.25)
        elapsed = time.perf_counter() - started
        summary = json.loads((report / "summary.json").read_text())
    divergences = summary.get("divergences", [])
    head = divergences[0] if divergences else None
    seconds, steps = first or (elapsed, int(summary.get("steps", 0)))
    return Attempt(
        fault=fault,
        seed=seed,
        found=process.returncode == 1 and head is not None,
        seconds=seconds,
        steps=steps,
        reproducer_calls=_calls(head) if head else None,
        area=head["area"] if head else None,
    )


def _reported(attempt: Attempt) -> Attempt:
    """Print one attempt as soon as it ends (a long benchmark shows its progress)."""
    print(
        f"  {attempt.fault} seed {attempt.seed}: "
        f"{'found' if attempt.found else 'NOT found'} in {attempt.seconds:.1f} s, "
        f"{attempt.steps} steps, reproducer {attempt.reproducer_calls} calls ({attempt.area})",
        file=sys.stderr,
        flush=True,
    )
    return attempt


def _row(fault: str, attempts: list[Attempt]) -> str:
    found = [a for a in attempts if a.found]
    calls = [a.reproducer_calls for a in found if a.reproducer_calls is not None]
    seconds = statistics.median(a.seconds for a in found) if found else float("nan")
    steps = statistics.median(a.steps for a in found) if found else float("nan")
    median_calls = statistics.median(calls) if calls else float("nan")
    areas = ",".join(sorted({a.area for a in found if a.area}))
    return (
        f"{fault:32} {len(found)}/{len(attempts):<3} {seconds:8.1f} {steps:8.0f} "
        f"{median_calls:6.1f}  {areas or '-'} (expected {FAULTS[fault].area})"
    )


def main() -> None:
    """Print one row per fault, then the totals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--fault", action="append", default=[], help="only these (repeatable)")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="runs at once (default 1)")
    options = parser.parse_args()
    faults = options.fault or list(FAULTS)
    jobs = [(fault, seed) for fault in faults for seed in options.seeds]
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        attempts = list(pool.map(lambda job: _reported(_attempt(*job, options.profile)), jobs))
    print(f"{'fault':32} found  seconds    steps  calls  area")
    for fault in faults:
        print(_row(fault, [a for a in attempts if a.fault == fault]), flush=True)
    everywhere = [f for f in faults if all(a.found for a in attempts if a.fault == f)]
    calls = [a.reproducer_calls for a in attempts if a.found and a.reproducer_calls]
    print(
        f"found by every seed: {len(everywhere)} of {len(faults)}; "
        f"median reproducer: {statistics.median(calls) if calls else float('nan'):.1f} calls"
    )


if __name__ == "__main__":
    main()
