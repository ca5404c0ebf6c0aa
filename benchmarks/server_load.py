"""The embedded server under a bounded load, and a login under eight long polls (a benchmark).

Starts ``xapi-conformance serve`` in its own process and runs ``tests/conformance/load.py``:
16 clients (2 long pollers, 14 doing VM lifecycles and map changes on one shared VM, half over
XML-RPC, half JSON-RPC). Prints calls per second, errors, lost updates, the server's CPU time
per call (independent of how busy the machine is), its memory before and after, and how long a
login takes while eight event.from calls wait.
Usage: python benchmarks/server_load.py [--rounds 40] [--clients 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' load helper

from tests.conformance.load import (
    cpu_seconds,
    login_latency_under_polls,
    rss_kib,
    run_load,
    serving,
)

PASSWORD = "bench-pw"


def main() -> int:
    """Run the load and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="lifecycles per client")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    args = parser.parse_args()
    with serving(PASSWORD) as (url, pid):
        start, cpu = rss_kib(pid), cpu_seconds(pid)
        result = run_load(url, PASSWORD, args.clients, args.rounds)
        cpu = cpu_seconds(pid) - cpu
        print(
            f"load: {args.clients} clients, {result.calls} calls in {result.seconds:.1f} s: "
            f"{result.calls_per_second:,.0f} calls/s, {len(result.errors)} errors, "
            f"{result.keys_expected - result.keys_found} lost updates, "
            f"{result.events_seen} events seen by the pollers"
        )
        print(f"server CPU per call: {cpu / result.calls * 1e6:,.0f} µs")
        print(f"server memory: {start / 1024:.0f} MiB before, {rss_kib(pid) / 1024:.0f} MiB after")
        latency = login_latency_under_polls(url, PASSWORD)
        print(f"login while 8 long polls wait: {latency * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
