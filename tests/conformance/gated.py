"""In-process servers whose races overlap on any load: a server-side ``Overlap`` barrier holds
each operation in flight until every lane's first call has been checked (no timing window)."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.engine.harness import Connection, Harness
from conformance.races.concurrency import Explained, Race, run_race
from conformance.server.app import XenAPIApp
from conformance.server.latency import SlowCalls
from conformance.server.overlap import Overlap
from conformance.server.profiles import NO_LATENCY
from conformance.server.state import ServerState
from conformance.targets.inprocess import InProcessTarget
from tests.conformance.test_harness import connect

__all__ = ["gated", "run_overlapping"]


def gated(state: ServerState) -> Connection:
    """A connection to ``state`` served in-process with its operations in flight (as ``serve
    --fault`` runs them) and an ``Overlap`` barrier, unarmed until ``run_overlapping``."""
    app = XenAPIApp(state, latency=SlowCalls(NO_LATENCY, overlap=Overlap()))
    return connect(state, wrap=lambda _inner: InProcessTarget(app, "xmlrpc"))


def run_overlapping(
    harness: Harness, race: Race, sessions: Sequence[str], calls: int | None = None
) -> Explained:
    """``run_race``, the server's barrier (when it has one) armed: operations in flight hold
    until ``calls`` calls of the race (by default one a lane) have been checked."""
    target = harness.connection.target
    latency = target.app.latency if isinstance(target, InProcessTarget) else None
    if latency is not None and latency.overlap is not None:
        latency.overlap.expect(len(race.lanes) if calls is None else calls)
    try:
        return run_race(harness, race, sessions)
    finally:
        if latency is not None and latency.overlap is not None:
            latency.overlap.expect(0)
