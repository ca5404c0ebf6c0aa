"""The embedded server's XML-RPC answer writer on a pool's records (a benchmark).

Builds a pool of ``--vms`` VMs cloned from a default template on an in-process server state,
reads ``VM.get_all_records`` from it, and times, best of ``--rounds`` in one process: the
general encoder (value by value, as for an answer with quirks) against the writer by exact
type that answers without quirks use, and reading every record one by one (``read_record``)
against reading them at once (``read_records``). Both pairs give the same result.

Usage:
    python benchmarks/answer_writer.py [--vms 30] [--rounds 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

from conformance.server.config import ServerConfig
from conformance.server.state import ServerState
from conformance.wire.xmlrpc import _XAPI, _encode, _encode_xapi
from models.outcome import Success, Value
from models.records import read_record, read_records


def _pool(vms: int) -> ServerState:
    state = ServerState.from_config(ServerConfig(password="pw"))
    session = state.call("session.login_with_password", ("root", "pw", "2.21", "bench"))
    assert isinstance(session, Success)
    template = next(ref for ref, vm in state.world.vms.items() if vm["is_a_template"])
    for index in range(vms):
        state.call("VM.clone", (session.value, template, f"vm-{index}"))
    return state


def _best(work: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    """Time both writers and both readers; print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=100)
    options = parser.parse_args(argv)
    state = _pool(options.vms)
    world = state.world
    records: Value = read_records(world)
    answer: dict[str, Value] = {"Status": "Success", "Value": records}

    def general() -> str:
        out: list[str] = []
        _encode(answer, _XAPI, out)
        return "".join(out)

    def by_type() -> str:
        out: list[str] = []
        _encode_xapi(answer, out)
        return "".join(out)

    def one_by_one() -> object:
        return {ref: read_record(world, ref) for ref in world.vms}

    assert general() == by_type() and one_by_one() == read_records(world)
    print(
        f"load average {os.getloadavg()[0]:.1f}; {len(world.vms)} records, {len(general()):,} characters"
    )
    for name, work in (
        ("general encoder", general),
        ("writer by type", by_type),
        ("read_record each", one_by_one),
        ("read_records", lambda: read_records(world)),
    ):
        print(f"{name}: {_best(work, options.rounds) * 1e3:.2f} ms (best of {options.rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
