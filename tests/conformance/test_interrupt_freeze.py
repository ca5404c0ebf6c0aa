"""An interrupted run records no divergence after the interrupt arrived.

The interrupt is delivered from inside a call, by a server-side hook: the race lane's VM.start
is done on the server, then the run's signal handler runs in that lane, as a signal landing
there would. The race is cut short; the example's end then reads a VM the model never saw
started. Before the freeze that read was a divergence of the honest server.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from conformance.engine.harness import Connection, Harness
from conformance.errors import ExitCode
from conformance.faults.catalogue import lookup
from conformance.judge.divergence import Desynced, Divergence
from conformance.races.concurrency import Race, RaceCall, run_race
from conformance.runner import command, interrupts
from conformance.runner.cli import build_parser
from conformance.runner.results import Part, divergence_record, write_part
from conformance.runner.survey import surveyed
from conformance.server.state import ServerState
from models.outcome import Outcome
from reports import ALLURE_DIR, JUNIT_FILE, REPRODUCERS_DIR
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


# ---- a second signal: the frozen summary at once -----------------------------------------------


class _Exited(Exception):
    """The process would have exited here (os._exit) with ``args[0]``."""


def _exit(code: int) -> NoReturn:
    raise _Exited(code)


def _saved_so_far(report_dir: Path) -> None:
    """What a run's processes saved (every second) before a second signal: seven examples and
    the finding of a VM.start the server always refuses."""
    connection = connect(ServerState(_server().world, lookup(["start-fails"])))
    connection.survey = True
    with contextlib.suppress(Divergence), surveyed(connection):
        h = Harness(connection, "lifecycle")
        h.call("VM.start", new_vm(h), False, False)
        h.finish()
    records = [divergence_record(d) for d in connection.tally.divergences]
    part = Part(examples=7, steps=40, divergences=records, tests=1, areas={"lifecycle"})
    write_part(report_dir / ".parts" / "run", "gw0", part)


def test_a_second_signal_writes_the_frozen_summary_and_report_then_exits_at_once(
    tmp_path: Path, handled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second signal comes while the first's reports are being written (no summary.json
    yet): it writes summary.json and report.html, marked, from the counts saved, and exits.
    junit.xml, Allure's results and the reproducers, which took minutes for a run of many
    findings, are left to the run that is not interrupted twice."""
    report_dir = tmp_path / "report"
    _saved_so_far(report_dir)
    args = build_parser().parse_args(["run", "--report-dir", str(report_dir)])
    started = datetime.datetime.now(datetime.UTC)
    interrupts.on_second(lambda: command._summary_so_far(args, report_dir, started))
    monkeypatch.setattr(interrupts.os, "_exit", _exit)
    handler = signal.getsignal(signal.SIGTERM)
    assert callable(handler)
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGTERM, None)
    with pytest.raises(_Exited) as exited:
        handler(signal.SIGTERM, None)
    assert exited.value.args == (ExitCode.TARGET,)
    data = json.loads((report_dir / "summary.json").read_text(encoding="utf-8"))
    assert data["verdict"] == "error" and "interrupted twice" in str(data["error"])
    assert data["examples"] == 7 and len(data["findings"]) == 1
    assert (report_dir / "report.html").exists()
    left = {JUNIT_FILE, ALLURE_DIR, REPRODUCERS_DIR}
    assert not any((report_dir / name).exists() for name in left)


def test_an_error_summary_of_a_run_not_interrupted_twice_writes_every_report(
    tmp_path: Path,
) -> None:
    """The other side: the same counts, written as a run's end writes them."""
    report_dir = tmp_path / "report"
    _saved_so_far(report_dir)
    args = build_parser().parse_args(["run", "--report-dir", str(report_dir)])
    started = datetime.datetime.now(datetime.UTC)
    parts = command._parts_so_far(report_dir)
    command._error_summary(args, report_dir, "", started, parts)
    for name in ("summary.json", "report.html", JUNIT_FILE, ALLURE_DIR, REPRODUCERS_DIR):
        assert (report_dir / name).exists(), name
