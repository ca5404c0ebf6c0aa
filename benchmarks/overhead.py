"""The suite's own overhead: a run next to a bare replay of the very same calls (a benchmark).

1. Starts the embedded server in its own process, recording every request body it receives.
2. Runs ``xapi-conformance run --target URL`` (one process, a fixed seed) against it.
3. Starts a fresh, identical server and replays the recorded bodies in order over one
   keep-alive ``http.client`` connection: the time the calls cost with no suite around them.

The ratio of the suite's time to the replay's time is the suite's overhead (Hypothesis, the
model, the comparison, the recording). Two suite times are given: the whole ``run`` command
(start-up, pytest, reports) and the span from its first call to its last one.

On a shared machine wall-clock times follow the other processes' load, so the CPU time each
side used is given too (read from the processes' resource usage): the suite's run command and
its server, next to the replay's client and its server. Their ratio hardly moves with the load.

With ``--latency PROFILE`` it also estimates how long the same calls would take against a
server with that latency (``serve --latency``): the sum of each recorded call's delay, plus
the suite's own time.

Usage: python benchmarks/overhead.py [--profile ci] [--seed 3] [-k EXPR] [--latency xapi]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models.outcome import Success
from models.world import World

PASSWORD = "overhead-pw"

Recorded = list[tuple[float, str, bytes, bool]]
"""(seconds since the epoch, path, request body, whether the answer was a success): every
XenAPI call, over XML-RPC or JSON-RPC (``/jsonrpc``)."""


def _serve_recording(out: Path) -> int:
    """The ``--record`` mode: an embedded server that writes what it received to ``out``."""
    from conformance.server import process
    from conformance.server.app import XenAPIApp
    from conformance.server.config import ServerConfig

    recorded: Recorded = []
    outcomes = threading.local()

    class Recording(XenAPIApp):
        def answer(self, path: str, body: bytes) -> Any:
            outcomes.succeeded = False
            reply = super().answer(path, body)
            recorded.append((time.time(), path, body, outcomes.succeeded))
            return reply

        def _dispatch(self, method: str, params: tuple[object, ...]) -> Any:
            outcome = super()._dispatch(method, params)
            outcomes.succeeded = _succeeded(self.state.world, method, outcome)
            return outcome

    process.XenAPIApp = Recording  # type: ignore[misc]
    status = process.serve_forever(ServerConfig(password=PASSWORD))
    out.write_bytes(pickle.dumps(recorded))
    return status


def _succeeded(world: World, method: str, outcome: object) -> bool:
    """A success, and for an ``Async.`` call a task that succeeded."""
    if not isinstance(outcome, Success):
        return False
    task = world.tasks.get(str(outcome.value)) if method.startswith("Async.") else None
    return task is None or task.status == "success"


def _start_server(record: Path | None) -> tuple[subprocess.Popen[str], str]:
    if record is not None:
        command = [sys.executable, __file__, "--record", str(record)]
    else:
        command = [sys.executable, "-m", "conformance.runner.cli", "serve", "--password", PASSWORD]
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
    return _reap(server)


def _reap(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> float:
    """Wait for ``process`` to end; the CPU seconds (user and system) it used."""
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _run_suite(url: str, options: argparse.Namespace) -> tuple[float, float]:
    """The run command's wall-clock seconds and CPU seconds."""
    command = [sys.executable, "-m", "conformance.runner.cli", "run", "--target", url]
    command += ["--profile", options.profile, "--seed", str(options.seed)]
    if options.k:
        command += ["-k", options.k]
    with tempfile.TemporaryDirectory() as report:
        started = time.perf_counter()
        run = subprocess.Popen(
            [*command, "--report-dir", report],
            env={**os.environ, "XAPI_PASSWORD": PASSWORD},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cpu = _reap(run)
        elapsed = time.perf_counter() - started
        summary = json.loads((Path(report) / "summary.json").read_text())
    print(
        f"suite: verdict {summary['verdict']}, {summary['examples']} examples, "
        f"{summary['steps']} steps"
    )
    return elapsed, cpu


def _replay(url: str, recorded: Recorded) -> tuple[float, float]:
    """The replay's wall-clock seconds and its client's CPU seconds."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    xml, json_rpc = {"Content-Type": "text/xml"}, {"Content-Type": "application/json"}
    started, cpu = time.perf_counter(), time.process_time()
    for _at, path, body, _ok in recorded:
        connection.request("POST", path, body, json_rpc if path == "/jsonrpc" else xml)
        connection.getresponse().read()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.close()
    return elapsed, cpu


def _methods(recorded: Recorded) -> Iterable[tuple[str, bool]]:
    from conformance.wire import jsonrpc, xmlrpc

    for _at, path, body, ok in recorded:
        if path == "/jsonrpc":
            yield jsonrpc.decode_request(body).method, ok
        else:
            yield xmlrpc.decode_request(body)[0], ok


def _estimate(recorded: Recorded, profile: str, suite_seconds: float) -> None:
    from conformance.server.profiles import load_profile, message_class

    latency = load_profile(profile)
    seconds: Counter[str] = Counter()
    for method, ok in _methods(recorded):
        seconds[message_class(method)] += latency.delay(method, succeeded=ok)
    total = sum(seconds.values())
    print(
        f"estimated run against --latency {profile} (unscaled): {total / 60:.1f} min of calls "
        f"+ {suite_seconds / 60:.1f} min of the suite's own time"
    )
    for name, spent in seconds.most_common():
        print(f"  {name:22} {spent / 60:8.1f} min")


def _report(
    recorded: Recorded, suite_seconds: float, replay_seconds: float, cpu: dict[str, float]
) -> None:
    span = recorded[-1][0] - recorded[0][0]
    json_calls = sum(1 for _at, path, _body, _ok in recorded if path == "/jsonrpc")
    print(f"calls: {len(recorded):,} ({json_calls:,} over JSON-RPC)")
    print(f"suite, whole run command: {suite_seconds:8.1f} s")
    print(f"suite, first to last call: {span:7.1f} s")
    print(f"bare replay of the same calls: {replay_seconds:.1f} s")
    print(
        f"overhead ratio: {span / replay_seconds:.2f}x (calls span), "
        f"{suite_seconds / replay_seconds:.2f}x (whole command)"
    )
    suite_cpu, replay_cpu = cpu["suite"] + cpu["suite server"], cpu["replay"] + cpu["replay server"]
    print(
        f"CPU seconds: suite {cpu['suite']:.1f} + its server {cpu['suite server']:.1f}; "
        f"replay client {cpu['replay']:.1f} + its server {cpu['replay server']:.1f}"
    )
    print(f"overhead ratio in CPU time: {suite_cpu / replay_cpu:.2f}x (whole command)")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main(argv: list[str] | None = None) -> int:
    """Measure and print; ``--record FILE`` is the recording server's own mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("-k", default=None, help="select areas, as run -k")
    parser.add_argument("--latency", default=None, help="also estimate a run at this latency")
    parser.add_argument("--record", type=Path, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.record is not None:
        return _serve_recording(options.record)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        record = Path(scratch) / "calls.pickle"
        server, url = _start_server(record)
        try:
            suite_seconds, cpu["suite"] = _run_suite(url, options)
        finally:
            cpu["suite server"] = _stop(server)
        recorded: Recorded = pickle.loads(record.read_bytes())
    server, url = _start_server(None)
    try:
        replay_seconds, cpu["replay"] = _replay(url, recorded)
    finally:
        cpu["replay server"] = _stop(server)
    _report(recorded, suite_seconds, replay_seconds, cpu)
    if options.latency:
        _estimate(recorded, options.latency, suite_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
