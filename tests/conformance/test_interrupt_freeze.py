"""An interrupted run records no divergence after the interrupt arrived.

The interrupt is delivered from inside a call, by a server-side hook: the race lane's VM.start
is done on the server, then the run's signal handler runs in that lane, as a signal landing
there would. The race is cut short; the example's end then reads a VM the model never saw
started. Before the freeze that read was a divergence of the honest server.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.engine.harness import Connection, Harness
from conformance.judge.divergence import Desynced, Divergence
from conformance.races.concurrency import Race, RaceCall, run_race
from conformance.runner import interrupts
from conformance.runner.survey import surveyed
from conformance.server.state import ServerState
from models.outcome import Outcome
from tests.conformance.test_harness import _server, connect, new_vm


class InterruptingServer(ServerState):
    """The honest server, whose first VM.start delivers the run's interrupt once it is done."""

    def __init__(self) -> None:
        honest = _server()
        super().__init__(honest.world, ())
        self.delivered = False

    def call(self, method: str, params: tuple[object, ...]) -> Outcome:
        outcome = super().call(method, params)
        if method == "VM.start" and not self.delivered:
            self.delivered = True
            handler = signal.getsignal(signal.SIGINT)
            assert callable(handler)
            handler(signal.SIGINT, None)  # raises KeyboardInterrupt here, in the lane's thread
        return outcome


@pytest.fixture
def handled(tmp_path: Path) -> Iterator[Path]:
    """The run's signal handling installed in this process (restored after); its marker."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    kept = list(interrupts._installed)
    marker = tmp_path / interrupts.MARKER
    interrupts.install(quiet=True, marker=marker)
    try:
        yield marker
    finally:
        interrupts._installed[:] = kept
        for number, handler in saved.items():
            signal.signal(number, handler)


def _interrupted_race(connection: Connection) -> None:
    """Two starts of one VM raced, the first start interrupting the run; the example ends."""
    with contextlib.suppress(Divergence), surveyed(connection):
        h = Harness(connection, "concurrency")
        vm = new_vm(h)
        race = Race(((RaceCall("VM.start", (vm, False, False), False),),) * 2)
        try:
            with pytest.raises(KeyboardInterrupt), contextlib.suppress(Desynced):
                run_race(h, race, [h.session, h.session])
        finally:
            with contextlib.suppress(KeyboardInterrupt):
                h.finish()


def test_no_divergence_is_recorded_after_the_interrupt(handled: Path) -> None:
    server = InterruptingServer()
    connection = connect(server)
    connection.survey = True
    connection.stopping = interrupts.interrupted
    _interrupted_race(connection)
    assert server.delivered and interrupts.received() == 1 and handled.exists()
    assert connection.tally.divergences == []


def test_without_the_freeze_the_cut_race_shows_a_divergence_of_the_honest_server(
    handled: Path,
) -> None:
    """The other side: the same cut race, judged as if no interrupt had come."""
    server = InterruptingServer()
    connection = connect(server)
    connection.survey = True
    _interrupted_race(connection)
    assert server.delivered
    kinds = [d.kind for d in connection.tally.divergences]  # the started VM's record
    assert kinds and set(kinds) <= {"allowed_operations", "state"}


def test_a_worker_sees_the_run_stopping_by_its_marker(tmp_path: Path, handled: Path) -> None:
    """A signal sent to the run's controller alone: its marker stops the workers' judging."""
    assert not interrupts.interrupted()
    handled.touch()
    assert interrupts.interrupted() and interrupts.received() == 0
