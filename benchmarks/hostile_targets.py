"""How long ``run`` takes to classify hostile targets (a benchmark, not a test).

Starts loopback servers that never answer, drip one byte a second, or stall mid-run (a proxy to
the embedded server that stops answering after 400 requests), runs ``xapi-conformance run
--target URL`` against each with the given deadline (default: the tool's default), and reports
the exit status, the wall time and the first line of the error.
Usage: python benchmarks/hostile_targets.py [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.runner.options import DEFAULT_TIMEOUT_S
from conformance.server.config import ServerConfig
from conformance.server.process import start_in_thread
from tests.conformance import hostile

PASSWORD = "benchmark-pw"


@contextmanager
def _stalling() -> Iterator[str]:
    upstream = start_in_thread(ServerConfig(password=PASSWORD))
    try:
        with hostile.proxy(upstream.url, stall_after=400) as (server, _):
            yield server.url
    finally:
        upstream.stop()


@contextmanager
def _serving(behave: hostile.Behaviour) -> Iterator[str]:
    with hostile.hostile_server(behave) as server:
        yield server.url


CASES: dict[str, Callable[[], AbstractContextManager[str]]] = {
    "hung (never answers)": lambda: _serving(hostile.silent),
    "dripping (1 byte/s)": lambda: _serving(hostile.drip),
    "stalls mid-run": _stalling,
}


def _classify(url: str, timeout: float) -> tuple[int, float, str]:
    with tempfile.TemporaryDirectory() as report:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "conformance.runner.cli", "run", "--target", url, "--profile", "dev",
             "--timeout", str(timeout), "--report-dir", report],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "XAPI_PASSWORD": PASSWORD},
        )  # fmt: skip
        took = time.perf_counter() - started
        error = json.loads((Path(report) / "summary.json").read_text())["error"]
    return result.returncode, took, str(error)[:110]


def main() -> None:
    """Print one row per hostile case."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    timeout = parser.parse_args().timeout
    print(f"deadline {timeout:g}s")
    for name, case in CASES.items():
        with case() as url:
            status, took, error = _classify(url, timeout)
        print(f"{name:22} exit {status}  {took:6.1f}s  {error}")


if __name__ == "__main__":
    main()
