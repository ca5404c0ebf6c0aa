"""The concurrency area's speed (a benchmark, not a test).

1. Throughput: the concurrency machine run in-process against the embedded server (fast, and
   slow with an ``xapi`` latency profile scaled down), reporting examples and race histories
   checked per second, the largest history and how long its linearizability search took, and
   the states the searches explored.
2. The search alone on the largest histories the area makes (three lanes of three operations on
   one VM, all overlapping), timed.
3. Detection: for each race fault, ``xapi-conformance run --fault F -k "test_area and
   concurrency" --profile ci --time-budget 60`` per seed: found or not, wall seconds, and the
   length (calls) of the shrunk history.

Usage:
    python benchmarks/concurrency.py [--examples 30] [--seeds 1 2 3] [--skip-faults]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' in-process helpers

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from conformance.areas.machines import AREAS
from conformance.faults import FAULTS, races
from conformance.races import concurrency
from conformance.races.linearize import Explained, Observed, linearize
from conformance.server.app import XenAPIApp
from conformance.server.latency import SlowCalls
from conformance.server.profiles import load_profile
from models.outcome import Success
from models.transition import Call
from tests.conformance.test_harness import _server, connect
from tests.models.helpers import driver


def throughput(examples: int, scale: float | None) -> dict[str, float]:
    """Run the concurrency machine ``examples`` times in-process; the figures it reached."""
    state = _server()
    slow = SlowCalls(load_profile("xapi").scaled(scale)) if scale else None
    app = XenAPIApp(state, latency=slow)
    from conformance.targets.inprocess import InProcessTarget

    connection = connect(state, wrap=lambda _inner: InProcessTarget(app, "xmlrpc"))
    machine = type("Bench", (AREAS["concurrency"],), {"connection": connection})
    concurrency.STATS = stats = concurrency.RaceStats()
    run_settings = settings(
        max_examples=examples,
        stateful_step_count=25,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    started = time.perf_counter()
    run_state_machine_as_test(machine, settings=run_settings)
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 1),
        "examples_per_s": round(examples / seconds, 2),
        "histories": stats.races,
        "histories_per_s": round(stats.races / seconds, 1),
        "calls": stats.calls,
        "search_ms_mean": round(1000 * stats.search_seconds / max(stats.races, 1), 2),
        "largest_history": stats.largest,
        "largest_search_ms": round(1000 * stats.largest_seconds, 2),
        "states_mean": round(stats.states / max(stats.races, 1), 1),
        "undecided": stats.undecided,
    }


def worst_search() -> dict[str, float]:
    """Nine overlapping operations on one VM (three lanes of three), searched from Halted."""
    d = driver()
    vm = d.in_state("Halted")
    ops = ["VM.start", "VM.hard_shutdown", "VM.clean_shutdown"] * 3
    history = [
        Observed(
            i,
            i % 3,
            Call(m, (d.session, vm, False, False) if m == "VM.start" else (d.session, vm)),
            0.0,
            1.0,
            Success(""),
        )
        for i, m in enumerate(ops)
    ]
    started = time.perf_counter()
    found = linearize(d.world, history, lambda _w, _c: None)
    seconds = time.perf_counter() - started
    return {
        "calls": len(history),
        "explained": isinstance(found, Explained),
        "states": found.states,
        "ms": round(1000 * seconds, 1),
    }


def detection(seeds: list[int]) -> list[dict[str, object]]:
    """Each race fault with each seed through the CLI, as CI runs it."""
    rows: list[dict[str, object]] = []
    for name, seeded in FAULTS.items():
        if not races([seeded]):
            continue
        for seed in seeds:
            rows.append(_detect(name, seed))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _detect(fault: str, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as report:
        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable, "-m", "conformance.runner.cli", "run", "--fault", fault,
                "-k", "test_area and concurrency", "--profile", "ci", "--seed", str(seed),
                "--time-budget", "60", "--report-dir", report,
            ],
            check=False,
            capture_output=True,
            text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        summary = json.loads((Path(report) / "summary.json").read_text())
    divergences = summary.get("divergences", [])
    found = result.returncode == 1 and bool(divergences)
    calls = len(divergences[0].get("calls", [])) if found else None
    return {
        "fault": fault,
        "seed": seed,
        "found": found,
        "seconds": round(seconds, 1),
        "calls": calls,
    }


def main() -> None:
    """Print every figure as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--skip-faults", action="store_true")
    args = parser.parse_args()
    figures: dict[str, object] = {
        "fast": throughput(args.examples, None),
        "slow_xapi_x0.002": throughput(max(args.examples // 3, 3), 0.002),
        "worst_search": worst_search(),
    }
    if not args.skip_faults:
        rows = detection(args.seeds)
        found = [r for r in rows if r["found"]]
        figures["detection"] = rows
        figures["found"] = f"{len(found)} of {len(rows)}"
        if found:
            figures["median_seconds_found"] = statistics.median(float(r["seconds"]) for r in found)  # type: ignore[arg-type]
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
