"""Calls per second of the embedded server over loopback keep-alive HTTP (a benchmark, not a test).

Measures, in one run and on the same machine:
- the floor: a trivial stdlib XML-RPC echo server (ThreadingMixIn + SimpleXMLRPCServer);
- the embedded server: a cheap getter (VM.get_power_state) and VM.start/VM.hard_shutdown pairs;
with 1 and 8 concurrent clients. Servers and clients each run in their own processes so they
do not share a GIL. Usage: python benchmarks/server_throughput.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socketserver
import subprocess
import sys
import time
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import requests

from conformance.areas.strategies import vm_record
from conformance.wire import xmlrpc

MIB = 2**20


class _ThreadedServer(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


class _KeepAliveHandler(SimpleXMLRPCRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        del args


def _echo_server(ready: mp.Queue) -> None:  # type: ignore[type-arg]
    server = _ThreadedServer(("127.0.0.1", 0), requestHandler=_KeepAliveHandler, logRequests=False)
    server.register_function(lambda *a: {"Status": "Success", "Value": a[-1] if a else ""}, "echo")
    ready.put(f"http://127.0.0.1:{server.server_address[1]}/")
    server.serve_forever()


def _call(http: requests.Session, url: str, method: str, *params: object) -> object:
    body = xmlrpc.encode_request(method, params)  # type: ignore[arg-type]
    outcome = xmlrpc.decode_response(http.post(url, data=body, timeout=30).content)
    return getattr(outcome, "value", None)


def _client(url: str, workload: str, seconds: float, results: mp.Queue) -> None:  # type: ignore[type-arg]
    http = requests.Session()
    calls = 0
    if workload == "echo":
        step = lambda: _call(http, url, "echo", "x")  # noqa: E731
        per_step = 1
    else:
        session = _call(http, url, "session.login_with_password", "root", "")
        vm = _call(http, url, "VM.create", session, vm_record("benchmark"))
        if workload == "getter":
            step = lambda: _call(http, url, "VM.get_power_state", session, vm)  # noqa: E731
            per_step = 1
        else:

            def step() -> None:
                _call(http, url, "VM.start", session, vm, False, False)
                _call(http, url, "VM.hard_shutdown", session, vm)

            per_step = 2
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        step()
        calls += per_step
    results.put(calls)


def _measure(url: str, workload: str, clients: int, seconds: float) -> float:
    results: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    procs = [
        mp.Process(target=_client, args=(url, workload, seconds, results)) for _ in range(clients)
    ]
    for p in procs:
        p.start()
    total = sum(results.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def _embedded() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance.runner.cli", "serve", "--hosts", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().removeprefix("listening on ").strip()


def main() -> None:
    """Run every measurement and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    seconds = parser.parse_args().seconds
    ready: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    echo = mp.Process(target=_echo_server, args=(ready,), daemon=True)
    echo.start()
    echo_url = ready.get(timeout=10)
    server, url = _embedded()
    rows = []
    try:
        for clients in (1, 8):
            rows.append(
                ("stdlib echo (floor)", clients, _measure(echo_url, "echo", clients, seconds))
            )
            rows.append(("VM.get_power_state", clients, _measure(url, "getter", clients, seconds)))
            rows.append(
                ("VM.start + hard_shutdown", clients, _measure(url, "pairs", clients, seconds))
            )
    finally:
        server.terminate()
        server.wait(10)
        echo.terminate()
    print(f"{'workload':28} {'clients':>7} {'calls/s':>9}")
    for name, clients, rate in rows:
        print(f"{name:28} {clients:>7} {rate:>9.0f}")


if __name__ == "__main__":
    main()
