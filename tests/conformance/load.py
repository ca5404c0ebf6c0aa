"""A bounded load on a running embedded server, shared by the load test and its benchmark.

``clients`` threads: two long pollers (``event.from`` with a 1 s timeout, over and over) and
the rest doing VM lifecycles (create, start, set_name_label, hard_shutdown, destroy) and map
changes on one shared VM (a key of their own each round), half over XML-RPC, half JSON-RPC.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conformance.errors import ConformanceError
from conformance.targets import JsonRpcTarget, XmlRpcTarget
from models.outcome import Failure, Success, Value
from tests.models.helpers import vm_args

EXIT_WAIT_S = 120.0
"""The longest a test waits for a served process to exit once told to (a bound against a
hang, never a measure: the machine may be loaded)."""

__all__ = [
    "LoadResult",
    "cpu_seconds",
    "login_latency_under_polls",
    "rss_kib",
    "run_load",
    "serving",
]

POLLERS = 2


@dataclass
class LoadResult:
    """What a load run did and found."""

    calls: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    keys_expected: int = 0
    keys_found: int = 0
    events_seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def calls_per_second(self) -> float:
        """Calls answered per second over the run."""
        return self.calls / self.seconds if self.seconds else 0.0

    def count(self, calls: int = 1, events: int = 0, error: str = "") -> None:
        """Record calls, events seen and an error (thread-safe)."""
        with self.lock:
            self.calls += calls
            self.events_seen += events
            if error:
                self.errors.append(error)


def _target(url: str, index: int) -> XmlRpcTarget | JsonRpcTarget:
    return XmlRpcTarget(url) if index % 2 else JsonRpcTarget(url)


def _call(
    target: XmlRpcTarget | JsonRpcTarget, result: LoadResult, method: str, *params: Value
) -> Value:
    try:
        outcome = target.call(method, *params)
    except ConformanceError as error:
        result.count(error=f"{method}: {type(error).__name__}")
        return None  # type: ignore[return-value]
    result.count()
    if isinstance(outcome, Failure):
        result.count(calls=0, error=f"{method}: {outcome.code}")
        return None  # type: ignore[return-value]
    assert isinstance(outcome, Success)
    return outcome.value


def _worker(url: str, password: str, index: int, rounds: int, shared: str, out: LoadResult) -> None:
    target = _target(url, index)
    session = _call(target, out, "session.login_with_password", "root", password)
    for n in range(rounds):
        _call(target, out, "VM.add_to_other_config", session, shared, f"k{index}-{n}", "v")
        vm = _call(target, out, "VM.create", session, vm_args(name_label=f"load-{index}-{n}"))
        _call(target, out, "VM.start", session, vm, False, False)
        _call(target, out, "VM.set_name_label", session, vm, f"running-{index}-{n}")
        _call(target, out, "VM.hard_shutdown", session, vm)
        _call(target, out, "VM.destroy", session, vm)
    target.close()


def _poller(url: str, password: str, index: int, stop: threading.Event, out: LoadResult) -> None:
    target = _target(url, index)
    session = _call(target, out, "session.login_with_password", "root", password)
    batch = _call(target, out, "event.from", session, ["vm"], "", 0.0)
    token = batch["token"] if isinstance(batch, dict) else ""
    while not stop.is_set():
        batch = _call(target, out, "event.from", session, ["vm"], token, 1.0)
        if isinstance(batch, dict):
            token = batch["token"]
            out.count(calls=0, events=len(batch["events"]))  # type: ignore[arg-type]
    target.close()


def run_load(url: str, password: str, clients: int = 16, rounds: int = 10) -> LoadResult:
    """Run the load to its end (``rounds`` per lifecycle client); returns what it saw."""
    result = LoadResult(keys_expected=(clients - POLLERS) * rounds)
    root = XmlRpcTarget(url)
    session = _call(root, result, "session.login_with_password", "root", password)
    shared = _call(root, result, "VM.create", session, vm_args(name_label="load-shared"))
    stop = threading.Event()
    pollers = [
        threading.Thread(target=_poller, args=(url, password, i, stop, result))
        for i in range(POLLERS)
    ]
    workers = [
        threading.Thread(target=_worker, args=(url, password, i, rounds, shared, result))
        for i in range(POLLERS, clients)
    ]
    started = time.perf_counter()
    for thread in pollers + workers:
        thread.start()
    for thread in workers:
        thread.join()
    result.seconds = time.perf_counter() - started
    stop.set()
    for thread in pollers:
        thread.join()
    config = _call(root, result, "VM.get_other_config", session, shared)
    result.keys_found = sum(1 for k in config or {} if str(k).startswith("k"))  # type: ignore[union-attr]
    _call(root, result, "VM.destroy", session, shared)
    return result


def login_latency_under_polls(url: str, password: str, polls: int = 8) -> float:
    """Seconds a login takes while ``polls`` event.from calls wait (timeout NaN: 24 hours)."""
    root = XmlRpcTarget(url)
    session = str(root.call("session.login_with_password", "root", password).value)  # type: ignore[union-attr]
    token = root.call("event.from", session, ["vm"], "", 0.0).value["token"]  # type: ignore[union-attr,index,call-overload]
    waiting = [
        threading.Thread(
            target=lambda: XmlRpcTarget(url).call("event.from", session, ["vm"], token, math.nan)
        )
        for _ in range(polls)
    ]
    for thread in waiting:
        thread.start()
    time.sleep(0.5)  # let them park
    started = time.perf_counter()
    XmlRpcTarget(url).call("session.login_with_password", "root", password)
    latency = time.perf_counter() - started
    vm = root.call("VM.create", session, vm_args(name_label="wake-the-polls"))
    for thread in waiting:
        thread.join()
    root.call("VM.destroy", session, vm.value)  # type: ignore[union-attr]
    return latency


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used (Linux ``/proc``): a cost that does
    not depend on how busy the machine is, unlike calls per second.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid`` in KiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(f"no VmRSS for process {pid}")


@contextlib.contextmanager
def serving(password: str) -> Iterator[tuple[str, int]]:
    """``xapi-conformance serve`` in its own process (root's password from the environment):
    its URL and pid. Stops it on exit and checks it stopped cleanly.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance.runner.cli", "serve", "--password-env", "LOAD_ROOT_PW"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOAD_ROOT_PW": password},
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().removeprefix("listening on ").strip(), process.pid
        process.terminate()
        assert process.wait(timeout=EXIT_WAIT_S) == 0
    finally:
        process.kill()
        process.wait()
