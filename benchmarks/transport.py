"""The client's cost of one call: the suite's transport next to requests.

The suite's transport is measured twice: as it runs (plain answers read by its lean path) and
with every answer read by h11, as it does for any other answer.

The embedded server runs in its own process (``xapi-conformance serve``); this process posts the
same XML-RPC body over one keep-alive connection with each client in turn, in alternating rounds,
and reports the client's CPU time (``time.process_time``) and wall time per call, the medians of
the rounds. The body is encoded once and answers are not decoded: only HTTP is measured.
Usage: python benchmarks/transport.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import requests

from conformance.targets.base import TargetSettings
from conformance.targets.transport import HttpTransport
from conformance.wire import xmlrpc

CONTENT_TYPE = "text/xml"

Post = Callable[[bytes], bytes]


def _serve() -> tuple[subprocess.Popen[str], str]:
    """The embedded server in a child process, and its URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "conformance.runner.cli", "serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    return server, line.split("listening on ", 1)[1].strip()


def _suite_client(url: str) -> Post:
    transport = HttpTransport(url, TargetSettings())
    return lambda body: transport.post("/", body, CONTENT_TYPE).body


def _h11_client(url: str) -> Post:
    transport = HttpTransport(url, TargetSettings())

    def post(body: bytes) -> bytes:
        connection = transport._connection  # a look inside: the benchmark compares paths
        if connection is not None:
            connection.lean = False  # h11 reads every answer from the second on
        return transport.post("/", body, CONTENT_TYPE).body

    return post


def _requests_client(url: str) -> Post:
    session = requests.Session()
    headers = {"Content-Type": CONTENT_TYPE}
    return lambda body: session.post(url, data=body, headers=headers, timeout=30).content


def _round(post: Post, body: bytes, calls: int) -> tuple[float, float]:
    """Client CPU and wall seconds per call over ``calls`` posts."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        post(body)
    return (time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls


def main() -> None:
    """Measure the clients and print one line each, then their CPU ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server, url = _serve()
    try:
        login = xmlrpc.encode_request("session.login_with_password", ["root", "", "2.21", "bench"])
        session = xmlrpc.decode_response(_suite_client(url)(login)).value  # type: ignore[attr-defined]
        body = xmlrpc.encode_request("VM.get_all", [session])
        clients = {
            "the suite's transport": _suite_client(url),
            "the same, h11 alone": _h11_client(url),
            "requests": _requests_client(url),
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for name, post in clients.items():
                samples[name].append(_round(post, body, args.calls))
    finally:
        server.terminate()
        server.wait()
    cpu = {name: statistics.median(s[0] for s in runs) for name, runs in samples.items()}
    for name, runs in samples.items():
        wall = statistics.median(s[1] for s in runs)
        print(
            f"{name:24} client CPU {cpu[name] * 1e6:6.0f} µs/call   wall {wall * 1e6:6.0f} µs/call"
        )
    suite, h11_alone, other = cpu.values()
    print(
        f"h11 alone costs {h11_alone / suite:.1f}x, requests {other / suite:.1f}x the client CPU "
        "of the suite's transport per call"
    )


if __name__ == "__main__":
    main()
