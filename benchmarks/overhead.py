"""The suite's own overhead: a run next to a bare replay of the very same calls (a benchmark).

1. Starts the embedded server in its own process, recording every request body it receives.
2. Runs ``xapi-conformance run --target URL`` (one process, a fixed seed) against it.
3. Starts a fresh, identical server and replays the recorded bodies in order over one
   keep-alive ``http.client`` connection: the time the calls cost with no suite around them.

A call is recorded when its answer is ready, so an event.from long poll comes after the call
that woke it (another thread's, in the suite's run): replayed there, it finds its events at
once and answers what it answered in the run, where replayed in the order the calls arrived
it would wait out its timeout for a call the one connection has not sent yet. A poll that
waited out its timeout in the run (nothing new came) waits it out in the replay too: the suite
waited there as well. The replay server records its calls the same way, and the report says
how many replayed calls succeeded or failed as in the run, and how long the long polls waited
on each side.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from conformance.server.app import Pending, Reply, XenAPIApp
from models.outcome import Outcome, Success
from models.world import World

PASSWORD = "overhead-pw"


class Recorded(NamedTuple):
    """One XenAPI call a server answered, over XML-RPC or JSON-RPC (``/jsonrpc``)."""

    at: float
    """When its answer was ready (seconds since the epoch)."""
    path: str
    body: bytes
    ok: bool
    """Whether it succeeded (an ``Async.`` call: its task too)."""
    parked: float
    """How long it waited as a long poll before its answer was ready (0: it did not wait)."""


@dataclass
class _Answering:
    """What one call's answer is found to be while it is answered."""

    ok: bool = False


def recording_app(recorded: list[Recorded]) -> type[XenAPIApp]:
    """The embedded server's app, recording each call in ``recorded`` once its answer is ready
    (a long poll when it stops waiting, not when it arrives)."""
    current = threading.local()

    class Recording(XenAPIApp):
        def answer(self, path: str, body: bytes) -> Reply | Pending:
            arrived, answering = time.monotonic(), _Answering()
            current.answering = answering
            reply = super().answer(path, body)
            if not isinstance(reply, Pending):
                recorded.append(Recorded(time.time(), path, body, answering.ok, 0.0))
                return reply
            finish = reply.finish

            def finished() -> Reply:
                ready = finish()
                parked = time.monotonic() - arrived
                recorded.append(Recorded(time.time(), path, body, answering.ok, parked))
                return ready

            return Pending(reply.poll, finished)

        def _respond(
            self,
            method: str,
            params: tuple[object, ...],
            encode: Callable[[Outcome], bytes],
            content_type: str,
        ) -> Reply | Pending:
            answering: _Answering = current.answering

            def encoding(outcome: Outcome) -> bytes:
                answering.ok = _succeeded(self.state.world, method, outcome)
                return encode(outcome)

            return super()._respond(method, params, encoding, content_type)

    return Recording


def _serve_recording(out: Path) -> int:
    """The ``--record`` mode: an embedded server that writes what it answered to ``out``."""
    from conformance.server import process
    from conformance.server.config import ServerConfig

    recorded: list[Recorded] = []
    process.XenAPIApp = recording_app(recorded)  # type: ignore[misc]
    status = process.serve_forever(ServerConfig(password=PASSWORD))
    out.write_bytes(pickle.dumps([tuple(call) for call in recorded]))
    return status


def _load(record: Path) -> list[Recorded]:
    return [Recorded(*call) for call in pickle.loads(record.read_bytes())]


def _succeeded(world: World, method: str, outcome: object) -> bool:
    """A success, and for an ``Async.`` call a task that succeeded."""
    if not isinstance(outcome, Success):
        return False
    task = world.tasks.get(str(outcome.value)) if method.startswith("Async.") else None
    return task is None or task.status == "success"


def _start_server(record: Path) -> tuple[subprocess.Popen[str], str]:
    """A recording server in its own process, and its URL."""
    command = [sys.executable, __file__, "--record", str(record)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("listening on "):
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return server, line.removeprefix("listening on ").strip()


def _against(
    record: Path, work: Callable[[str], tuple[float, float]]
) -> tuple[float, float, float]:
    """``work(url)`` against a fresh recording server: its wall-clock and CPU seconds, then
    the server's CPU seconds."""
    server, url = _start_server(record)
    try:
        seconds, cpu = work(url)
    finally:
        server_cpu = _stop(server)
    return seconds, cpu, server_cpu


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


def replay(url: str, recorded: Iterable[Recorded]) -> tuple[float, float]:
    """Send the recorded calls in order over one connection; the wall-clock seconds and the
    client's CPU seconds."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    xml, json_rpc = {"Content-Type": "text/xml"}, {"Content-Type": "application/json"}
    started, cpu = time.perf_counter(), time.process_time()
    for call in recorded:
        headers = json_rpc if call.path == "/jsonrpc" else xml
        connection.request("POST", call.path, call.body, headers)
        connection.getresponse().read()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    connection.close()
    return elapsed, cpu


def _faithfulness(run: list[Recorded], replayed: list[Recorded]) -> str:
    """How the replay's answers compare with the run's: outcomes and long polls' waits."""
    same = sum(1 for a, b in zip(run, replayed, strict=False) if a.ok == b.ok)
    waits = []
    for side in (run, replayed):
        polls = [call.parked for call in side if call.parked > 0]
        waits.append(f"{len(polls):,} long polls waited {sum(polls):.1f} s")
    return (
        f"replayed calls answered as in the run (success or failure): {same:,} of {len(run):,}"
        f"\nthe run: {waits[0]}; the replay: {waits[1]}"
    )


def _methods(recorded: list[Recorded]) -> Iterable[tuple[str, bool]]:
    from conformance.wire import jsonrpc, xmlrpc

    for call in recorded:
        if call.path == "/jsonrpc":
            yield jsonrpc.decode_request(call.body).method, call.ok
        else:
            yield xmlrpc.decode_request(call.body)[0], call.ok


def _estimate(recorded: list[Recorded], profile: str, suite_seconds: float) -> None:
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
    recorded: list[Recorded], suite_seconds: float, replay_seconds: float, cpu: dict[str, float]
) -> None:
    span = recorded[-1].at - recorded[0].at
    json_calls = sum(1 for call in recorded if call.path == "/jsonrpc")
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
        record, again = Path(scratch) / "calls.pickle", Path(scratch) / "replayed.pickle"
        suite_seconds, cpu["suite"], cpu["suite server"] = _against(
            record, lambda url: _run_suite(url, options)
        )
        recorded = _load(record)
        replay_seconds, cpu["replay"], cpu["replay server"] = _against(
            again, lambda url: replay(url, recorded)
        )
        replayed = _load(again)
    _report(recorded, suite_seconds, replay_seconds, cpu)
    print(_faithfulness(recorded, replayed))
    if options.latency:
        _estimate(recorded, options.latency, suite_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
