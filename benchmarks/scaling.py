"""Parallel workers against a slow target: the same run with 1, 2, 4, 8 workers (a benchmark).

For each worker count it starts a fresh embedded server with the ``xapi`` latency profile
scaled down (what ``serve --latency xapi --latency-scale 0.1`` serves, with a role-limited
account per role and enough model threads for every worker's calls at once), runs
``xapi-conformance run --target URL --profile ci --seed S -n N`` against it, and prints the
wall-clock and CPU seconds (the run's and its server's, and each per call the server
answered), the verdict, examples, steps, cells judged, the findings and a
digest of each reproducer (the target's address masked), so that runs can be compared side by
side: the same pieces run whatever the number of workers.

With ``--scales 0 0.1`` it runs each worker count at both scales and estimates the unscaled
run (a real pool's latency): wall time is fitted as ``a + b * scale`` through the two
measured points and read at scale 1 (``a``: the suite's own time at that worker count, ``b``:
the calls' time).

``--save FILE`` keeps each run's figures, cells and findings; ``--against FILE`` compares each
run with the first run saved there (measured earlier, e.g. the long one-worker leg before a
quiet window): the speedup, and whether the verdict, the cells judged (cell by cell) and the
findings with their reproducers are the same.

``--timeline`` also says when each worker started, collected, began its first piece and ended
its last (``benchmarks/timeline.py``, loaded into the run's processes), how long the command
went on after the last piece, and how busy the two sides kept the cores, ten seconds at a time
(the run's processes and its server, sampled from ``/proc`` every second).

Usage:
    python benchmarks/scaling.py [--workers 1 2 4 8] [--scales 0.1] [--profile ci] [--seed 1]
                                 [--fault NAME] [--time-budget 90] [-k EXPR]
                                 [--save FILE] [--against FILE] [--timeline]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from timeline import now, read, summary_lines  # this folder: the script's own

PASSWORD = "scaling-pw"
ROLES = ("pool-operator", "vm-power-admin", "vm-admin", "vm-operator", "read-only")
THREADS = 64
"""Model threads of the benchmark's server: a pool serves every worker's calls at once."""


def _role_env(role: str) -> str:
    return "SCALING_" + role.upper().replace("-", "_")


def _serve(scale: float, faults: list[str], calls_file: Path) -> int:
    """The ``--serve`` mode: the embedded server as ``serve --latency xapi`` runs it; at its
    end it writes the number of requests it answered to ``calls_file``."""
    from conformance.server import process
    from conformance.server.app import Pending, Reply, XenAPIApp
    from conformance.server.config import ServerConfig
    from conformance.server.profiles import load_profile
    from models.world import Account

    answered = itertools.count()

    class Counting(XenAPIApp):
        def answer(self, path: str, body: bytes) -> Reply | Pending:
            next(answered)
            return super().answer(path, body)

    process.XenAPIApp = Counting  # type: ignore[misc]
    accounts = tuple(Account(f"bench-{role}", f"{role}-pw", role) for role in ROLES)
    latency = load_profile("xapi").scaled(scale) if scale > 0 else None
    config = ServerConfig(
        password=PASSWORD, accounts=accounts, faults=tuple(faults), latency=latency, threads=THREADS
    )
    status = process.serve_forever(config)
    calls_file.write_text(str(next(answered)))
    return status


def _start_server(
    scale: float, faults: list[str], calls_file: Path
) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, __file__, "--serve", "--scale", str(scale)]
    command += [arg for fault in faults for arg in ("--fault", fault)]
    command += ["--calls-file", str(calls_file)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("listening on "):
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return server, line.removeprefix("listening on ").strip()


def _stop(server: subprocess.Popen[str]) -> float:
    """Stop the server; the CPU seconds (user and system) it used."""
    server.send_signal(signal.SIGTERM)
    _pid, status, usage = os.wait4(server.pid, 0)
    server.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


class _CpuSampler(threading.Thread):
    """The CPU seconds a process tree (and the server) used, sampled every second (Linux)."""

    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self._roots = roots
        self.samples: list[tuple[float, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(1.0):
            self.samples.append((time.perf_counter(), _tree_cpu(self._roots)))

    def stop(self) -> list[str]:
        """Stop sampling; how busy the cores were, ten seconds at a time."""
        self._done.set()
        self.join()
        windows, first = [], self.samples[:1]
        for (at0, cpu0), (at1, cpu1) in itertools.pairwise(self.samples[::10]):
            windows.append(f"{(cpu1 - cpu0) / (at1 - at0) / (os.cpu_count() or 1):.0%}")
        return (
            [
                f"   cores busy, 10 s at a time from {first[0][0] - _LAUNCHED[0]:.0f} s: "
                + " ".join(windows)
            ]
            if first
            else []
        )


_LAUNCHED = [0.0]


def _tree_cpu(roots: list[int]) -> float:
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for pid, used in cpu.items():
        current = pid
        while current > 1 and current not in roots:
            current = parents.get(current, 0)
        if current in roots:
            total += used
    return total


def _timeline_env(folder: Path) -> dict[str, str]:
    here = str(Path(__file__).resolve().parent)
    return {
        "SCALING_TIMELINE": str(folder),
        "PYTEST_ADDOPTS": f"{os.environ.get('PYTEST_ADDOPTS', '')} -p timeline".strip(),
        "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH", "")])),
    }


def _run(
    url: str, workers: int, options: argparse.Namespace, server_pid: int = 0
) -> dict[str, Any]:
    """One run: its wall and CPU seconds and what its summary says."""
    command = [sys.executable, "-m", "conformance.runner.cli", "run", "--target", url]
    command += ["--profile", options.profile, "--seed", str(options.seed), "-n", str(workers)]
    command += [
        arg
        for role in ROLES
        for arg in ("--role-account", f"{role}=bench-{role}:{_role_env(role)}")
    ]
    if options.time_budget:
        command += ["--time-budget", options.time_budget]
    if options.k:
        command += ["-k", options.k]
    env = {**os.environ, "XAPI_PASSWORD": PASSWORD}
    env.update({_role_env(role): f"{role}-pw" for role in ROLES})
    with tempfile.TemporaryDirectory() as report:
        timeline = Path(report) / ".timeline"
        if options.timeline:
            timeline.mkdir()
            env.update(_timeline_env(timeline))
        load = os.getloadavg()[0]
        launched = now()
        started = _LAUNCHED[0] = time.perf_counter()
        run = subprocess.Popen(
            [*command, "--report-dir", report],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sampler = _CpuSampler([run.pid, server_pid])
        if options.timeline:
            sampler.start()
        _pid, _status, usage = os.wait4(run.pid, 0)
        wall = time.perf_counter() - started
        recorded: dict[str, Any] = {}
        if options.timeline:
            recorded = read(timeline)
            for line in [*summary_lines(timeline, launched, now()), *sampler.stop()]:
                print(line, flush=True)
        summary = json.loads((Path(report) / "summary.json").read_text())
        reproducers = _reproducers(Path(report), summary, url)
    return {
        "workers": workers,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "load": load,
        "summary": summary,
        "reproducers": reproducers,
        **({"timeline": recorded, "launched": launched} if options.timeline else {}),
    }


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _reproducers(report: Path, summary: dict[str, Any], url: str) -> list[str]:
    """Each finding's id and a digest of its reproducer, with what differs from run to run
    masked: the target's address, the run's tag on its VMs (the run's id and worker) and the
    uuids the target drew (a reproducer finds a VM by the uuid it was given)."""
    from conformance.judge.refs import run_masked

    digests = []
    for finding in summary.get("findings", []):
        path = report / str(finding.get("reproducer", ""))
        text = path.read_text() if path.is_file() else ""
        text = _UUID.sub("UUID", run_masked(text))
        digest = hashlib.sha256(text.replace(url.rstrip("/"), "URL").encode()).hexdigest()[:10]
        digests.append(f"{finding['id']}:{digest}")
    return digests


def _cells(summary: dict[str, Any]) -> int:
    return len(_judged(summary))


def _judged(summary: dict[str, Any]) -> list[str]:
    """The cells judged at least once, each as ``message/power state/kind``."""
    cells = summary["coverage"]["cells"]
    return sorted(
        "/".join(str(cell[k]) for k in ("method", "power_state", "vm_kind"))
        for cell in cells
        if cell["count"]
    )


def _compared(result: dict[str, Any], earlier: dict[str, Any]) -> str:
    """How ``result`` compares with ``earlier`` (a saved run): the speedup of the run with more
    workers over the one with fewer, and sameness."""
    ours, theirs = result["summary"], earlier["summary"]
    same = {
        "verdict": ours["verdict"] == theirs["verdict"],
        "cells": _judged(ours) == _judged(theirs),
        "findings": sorted(result["reproducers"]) == sorted(earlier["reproducers"]),
    }
    more, fewer = sorted((result, earlier), key=lambda run: -int(run["workers"]))
    return (
        f"   against the saved -n {earlier['workers']} ({earlier['wall']:.1f} s wall): "
        f"-n {more['workers']} {fewer['wall'] / more['wall']:.2f}x as fast as -n "
        f"{fewer['workers']}; "
        + ", ".join(f"{name} {'same' if ok else 'DIFFERENT'}" for name, ok in same.items())
    )


def _line(result: dict[str, Any], first: dict[str, Any] | None) -> str:
    s = result["summary"]
    speedup = f"{first['wall'] / result['wall']:.2f}x" if first else "1.00x"
    budget = s.get("budget") or {}
    left = f", left out {len(budget.get('left_out', []))}" if budget else ""
    calls = result.get("calls", 0)
    per_call = (
        f" ({result['cpu'] / calls * 1e3:.2f} + {result['server_cpu'] / calls * 1e3:.2f} ms a call "
        f"of {calls:,})"
        if calls
        else ""
    )
    return (
        f"-n {result['workers']}: {result['wall']:7.1f} s wall ({speedup}), "
        f"{result['cpu']:6.1f} s CPU (its server {result.get('server_cpu', 0):.1f} s){per_call}, "
        f"load {result['load']:.1f}; {s['verdict']}, "
        f"{s['examples']} examples, {s['steps']} steps, {_cells(s)} cells, "
        f"areas {len(s.get('areas', []))}{left}; findings {result['reproducers']}"
    )


def _estimate(by_scale: dict[float, dict[str, Any]]) -> str:
    (low, at_low), (high, at_high) = sorted(by_scale.items())[:1] + sorted(by_scale.items())[-1:]
    slope = (at_high["wall"] - at_low["wall"]) / (high - low)
    unscaled = at_low["wall"] + slope * (1 - low)
    return (
        f"estimated unscaled: {unscaled / 60:.1f} min (fitted through scales {low:g} and {high:g})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run each worker count (at each scale) and print one line each, then the estimates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1])
    parser.add_argument("--scale", type=float, default=0.1, help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fault", action="append", default=[])
    parser.add_argument("--time-budget", default=None)
    parser.add_argument("-k", default=None)
    parser.add_argument("--save", type=Path, default=None, help="keep each run's results here")
    parser.add_argument("--against", type=Path, default=None, help="compare with a saved run")
    parser.add_argument("--timeline", action="store_true", help="say when each worker worked")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--calls-file", type=Path, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        return _serve(options.scale, options.fault, options.calls_file)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    results: dict[int, dict[float, dict[str, Any]]] = {}
    saved: list[dict[str, Any]] = []
    earlier = json.loads(options.against.read_text())[0] if options.against else None
    for scale in options.scales:
        first = None
        print(f"== latency xapi x{scale:g}", flush=True)
        for workers in options.workers:
            with tempfile.TemporaryDirectory() as scratch:
                calls_file = Path(scratch) / "calls"
                server, url = _start_server(scale, options.fault, calls_file)
                try:
                    result = _run(url, workers, options, server.pid)
                finally:
                    server_cpu = _stop(server)
                result["calls"] = int(calls_file.read_text() or 0)
            result["server_cpu"] = server_cpu
            print(_line(result, first), flush=True)
            if earlier is not None:
                print(_compared(result, earlier), flush=True)
            if options.save is not None:
                saved.append({**result, "scale": scale})
                options.save.write_text(json.dumps(saved))
            first = first or result
            results.setdefault(workers, {})[scale] = result
    if len(options.scales) > 1:
        for workers, by_scale in results.items():
            print(f"-n {workers}: {_estimate(by_scale)}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
