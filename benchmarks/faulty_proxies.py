"""How ``run`` fares behind a faulty proxy in front of the embedded server (a benchmark and an
audit, not a test).

Each case puts a proxy between ``run --profile dev`` and an honest embedded server; the proxy
spoils one answer (or request) in every EVERY, from the sixth on: cuts the body short, answers
502, corrupts a byte, resets the connection before forwarding, forwards the request twice,
turns a Success envelope into a Failure without its members, or delays every answer by up to
50 ms. Printed per case: the exit status, the wall time, the verdict, the first line of the
summary's error (or the first finding), the VMs left on the server (before -> after) and
whether the password appears in any output or report file.
Usage: python benchmarks/faulty_proxies.py [--every N] [CASE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.server.config import ServerConfig
from conformance.server.process import start_in_thread
from tests.conformance import hostile

PASSWORD = "faulty-proxy-benchmark-pw"
CASES = ("truncate", "bad-gateway", "corrupt", "reset", "duplicate", "swap-status", "delay")


@dataclass
class Faulty(hostile.Proxy):
    """A proxy that spoils one exchange in every ``every`` as ``case`` says."""

    case: str = "truncate"
    every: int = 40

    def behave(self, request: hostile.Request, sock: socket.socket, stop: threading.Event) -> bool:
        """Forward ``request`` upstream and answer, spoiling the exchange when its turn comes."""
        del stop
        with self.lock:
            self.forwarded += 1
            hit = self.forwarded > 5 and self.forwarded % self.every == 0
        if self.case == "delay":
            time.sleep(random.random() * 0.05)
        if hit and self.case == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if hit and self.case == "duplicate":
            self._forward(request)
        status, body, kind = self._forward(request)
        if hit and self.case == "truncate":
            head = (
                f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nContent-Type: {kind}\r\n\r\n"
            )
            sock.sendall(head.encode() + body[: len(body) // 2])
            return False
        if hit and self.case == "bad-gateway":
            body, status, kind = b"<html>bad gateway</html>", "502 Bad Gateway", "text/html"
        elif hit and self.case == "corrupt":
            body = body[: len(body) // 2] + b"\x00<<" + body[len(body) // 2 + 3 :]
        elif hit and self.case == "swap-status":
            body = body.replace(b"Success", b"Failure", 1)
        hostile.answer(sock, status, body, f"Content-Type: {kind}")
        return True


def _outputs(result: subprocess.CompletedProcess[str], report_dir: Path) -> str:
    files = (p.read_text(errors="replace") for p in report_dir.rglob("*") if p.is_file())
    return result.stdout + result.stderr + "".join(files)


def _first_line(summary: dict[str, object]) -> str:
    if summary["error"]:
        return str(summary["error"])
    divergences = summary["divergences"]
    assert isinstance(divergences, list)
    return str(divergences[0]["message"]).splitlines()[0] if divergences else ""


def run_case(case: str, every: int) -> str:
    """One row: ``run`` behind a proxy that spoils exchanges as ``case`` says."""
    upstream = start_in_thread(ServerConfig(password=PASSWORD))
    relay = Faulty(upstream.url, case=case, every=every)
    try:
        with hostile.hostile_server(relay.behave) as server, tempfile.TemporaryDirectory() as tmp:
            before = len(upstream.state.world.vms)
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "conformance.runner.cli", "run", "--target", server.url,
                 "--profile", "dev", "--seed", "7", "--timeout", "5", "--report-dir", tmp],
                check=False,
                capture_output=True,
                text=True,
                env={**os.environ, "XAPI_PASSWORD": PASSWORD},
            )  # fmt: skip
            took = time.perf_counter() - started
            summary = json.loads((Path(tmp) / "summary.json").read_text())
            leaked = PASSWORD in _outputs(result, Path(tmp))
            traceback = "Traceback" in result.stdout + result.stderr
    finally:
        upstream.stop()
    after = len(upstream.state.world.vms)
    flags = " ".join(f for f, on in (("PASSWORD-LEAK", leaked), ("TRACEBACK", traceback)) if on)
    return (
        f"{case:12} exit {result.returncode}  {took:6.1f}s  {summary['verdict']:9} "
        f"vms {before}->{after} {flags}\n    {_first_line(summary)[:160]}"
    )


def main() -> None:
    """Print one row per case."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--every", type=int, default=40, help="spoil one exchange in N")
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"of: {', '.join(CASES)}")
    args = parser.parse_args()
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; cases are: {', '.join(CASES)}")
    for case in args.cases or CASES:
        print(run_case(case, args.every), flush=True)


if __name__ == "__main__":
    main()
