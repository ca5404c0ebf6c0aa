"""Both sides of the suite: the ``ci`` profile finds every seeded fault, with a divergence in the
area the catalogue names, and a reproducer that reproduces it and passes on the reference server.

Each fault's run is narrowed to the test that finds it cheapest (a sweep where one covers it,
else the area's machine). The sequential faults run in-process against the in-process target
(the area's machine derandomized at the ci profile's sizes, a sweep up to its first divergence);
the command line runs a sweep's fault as a smoke test (an area machine's: the failing run of
tests/reports/test_failing_run.py). Each race fault is found by the race its catalogue entry
describes, run in-process against a server whose barrier makes the lanes overlap whatever the
load (``tests.conformance.gated``). A finding's reproducer is found in-process over the wire
against a served faulty server, then run (in this process, as ``python script URL`` runs it)
against it and against the honest one; tests/reports/test_failing_run.py runs reproducers as
scripts of their own.
``benchmarks/fault_detection.py`` measures whole areas over several seeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conformance.engine.harness import Connection, Harness
from conformance.faults import FAULTS, Raced, lookup
from conformance.judge.divergence import Divergence, DivergenceInfo
from conformance.races.concurrency import (
    EVENT_READ,
    EVENT_WAIT,
    Race,
    RaceCall,
    task_of,
)
from conformance.runner.connect import RoleAccount, RunConfig, open_connection
from conformance.runner.results import divergence_record
from conformance.server.config import ServerConfig
from conformance.server.overlap import counted
from conformance.server.process import RunningServer, start_in_thread
from models.world import Account
from reports.html import render_html
from reports.records import CallRecord, divergence_from_json, divergence_to_json
from tests.conformance.detect import CASES, CONCURRENCY, find, found, replayed, shown
from tests.conformance.gated import gated, run_overlapping
from tests.conformance.test_event_faults import FOUND_BY_EVENTS
from tests.conformance.test_event_faults import REPLAYED as EVENTS_REPLAYED
from tests.conformance.test_harness import _server, new_vm
from tests.reports.test_reports import summary

pytestmark = pytest.mark.slow

PASSWORD = "fault-pw"
ACCOUNTS = (Account("ro", "ro-pw", "read-only"),)

SEED = "1"


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XAPI_PASSWORD": PASSWORD, "RO_PASSWORD": "ro-pw"}
    return subprocess.run(
        [sys.executable, "-m", "conformance.runner.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_every_fault_has_a_detection_case() -> None:
    assert set(CASES) == set(FAULTS)


RACES = tuple(fault for fault, (selection, _mark) in CASES.items() if selection == CONCURRENCY)
SEQUENTIAL = tuple(fault for fault in CASES if fault not in RACES)
SEARCHED_ELSEWHERE = {*FOUND_BY_EVENTS, *EVENTS_REPLAYED}
"""Faults of events and tasks: test_event_faults.py searches for them as here, then replays
their findings' reproducers."""
COMMAND_LINE = ("wrong-state-allowed",)
"""A sweep's fault found end to end through the command line with the ``ci`` profile, as a smoke
test of the command (stopping at the first finding). An area machine's fault through the command
line is tests/reports/test_failing_run.py's: its run finds stale-record in the fields area."""


@pytest.mark.parametrize("fault", [f for f in SEQUENTIAL if f not in SEARCHED_ELSEWHERE])
def test_the_ci_profile_finds_the_fault_in_its_area(fault: str) -> None:
    found(fault)


@pytest.mark.parametrize("fault", COMMAND_LINE)
def test_the_command_line_finds_the_fault_in_its_area(fault: str, tmp_path: Path) -> None:
    selection, mark = CASES[fault]
    result = _cli(
        "run",
        "--fault",
        fault,
        "--profile",
        "ci",
        "--seed",
        SEED,
        "-k",
        selection,
        "--max-findings",
        "1",
        "--report-dir",
        str(tmp_path),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    first = summary["divergences"][0]
    assert first["area"] == FAULTS[fault].area, first["message"]
    assert mark in shown(first), first["message"]


IN_FLIGHT = (RaceCall(EVENT_WAIT, ("vm",)), RaceCall("VM.get_current_operations", ("vm",)))
"""A watcher's first calls: once the VM's event shows the other lane's operation begun, the proof
of it (the operation holds at the barrier until the watcher's calls are checked)."""
START = RaceCall("VM.start", ("vm", False, False))
Lanes = tuple[tuple[RaceCall, ...], ...]
RACE_CASES: dict[str, Lanes] = {
    "concurrent-starts-both-succeed": ((START,), (replace(START, is_async=True),)),
    "destroy-succeeds-twice": ((RaceCall("VM.destroy", ("vm",)),),) * 2,
    "map-update-lost": tuple(
        (RaceCall("VM.add_to_other_config", ("vm", key, "x")),) for key in ("a", "b")
    ),
    "conflict-not-waited": ((START,),) * 2,
    "in-flight-not-asserted": (
        (START,),
        (*IN_FLIGHT, RaceCall("VM.assert_operation_valid", ("vm", "start"))),
    ),
    "allowed-ops-stale-in-flight": (
        (START,),
        (*IN_FLIGHT, RaceCall("VM.get_allowed_operations", ("vm",))),
    ),
    "cancelled-op-done": (
        (replace(START, is_async=True),),
        (RaceCall("task.cancel", (task_of(0),)), RaceCall("VM.get_power_state", ("vm",))),
    ),
    "event-in-flight-hidden": (
        (START,),
        (
            RaceCall(EVENT_WAIT, ("vm",)),
            RaceCall("VM.get_current_operations", ("vm",)),
            RaceCall(EVENT_READ, ("vm",)),
            RaceCall("VM.get_allowed_operations", ("vm",)),
        ),
    ),
    "hard-shutdown-cancels-all": (
        (RaceCall("VM.pause", ("vm",)),),
        (
            RaceCall(EVENT_WAIT, ("vm",)),
            RaceCall("VM.hard_shutdown", ("vm",)),
            RaceCall("VM.get_power_state", ("vm",)),
        ),
    ),
}
"""Each race fault's race, as its catalogue entry tells it ("vm": the VM raced on)."""
RUNNING_FIRST = frozenset({"hard-shutdown-cancels-all"})
"""Race faults whose race is on a running VM (the others' VM is Halted)."""
HELD_CALLS = {"hard-shutdown-cancels-all": 2}
"""Races whose barrier waits for fewer calls than the race counts: the hard shutdown is in
flight too and holds, and its lane's next call comes only after it (waiting for that call held
both operations until the barrier's limit, then ran the race alone)."""


def test_every_race_fault_has_its_race() -> None:
    assert set(RACE_CASES) == set(RACES)


@pytest.mark.parametrize("fault", RACES)
def test_the_race_check_finds_the_race_fault(fault: str) -> None:
    """The operation in flight holds at the server's barrier until every other call of the race
    has been checked, so the race shows on every run; the honest server explains it."""
    _selection, mark = CASES[fault]
    running = fault in RUNNING_FIRST
    faulty = gated(_server(faults=lookup([fault])))  # type: ignore[arg-type]
    info = _raced(faulty, RACE_CASES[fault], running, HELD_CALLS.get(fault))
    assert info is not None, f"the race did not show {fault}"
    assert info.area == FAULTS[fault].area, info.message
    assert mark in info.message, info.message
    honest = gated(_server(faults=(Raced("none", frozenset()),)))  # type: ignore[arg-type]
    assert _raced(honest, RACE_CASES[fault], running, HELD_CALLS.get(fault)) is None


def _raced(
    connection: Connection, lanes: Lanes, running: bool = False, held: int | None = None
) -> DivergenceInfo | None:
    """The divergence of ``lanes`` on a fresh VM (started first when ``running``), each
    operation in flight held until ``held`` calls (by default all the race's calls the barrier
    counts: not pauses, waits or event reads) have been checked; None when an order explains
    it."""
    harness = Harness(connection, "concurrency")
    try:
        vm = new_vm(harness)
        if running:
            harness.call("VM.start", vm, False, False)
        race = Race(tuple(tuple(_on(call, vm) for call in lane) for lane in lanes))
        calls = held or sum(counted(call.wire_method) for _lane, call in race.calls())
        try:
            run_overlapping(harness, race, [harness.session] * len(lanes), calls)
        except Divergence as caught:
            return caught.info
        harness.check_state(full=True)
        return None
    finally:
        harness.teardown()


def _on(call: RaceCall, vm: str) -> RaceCall:
    return replace(call, args=tuple(vm if a == "vm" else a for a in call.args))


# ---- the reproducer of a finding, against the faulty server and the reference one -------------


@pytest.fixture
def servers(request: pytest.FixtureRequest) -> Iterator[tuple[RunningServer, RunningServer]]:
    """A faulty embedded server and an honest one."""
    faulty = start_in_thread(
        ServerConfig(password=PASSWORD, accounts=ACCOUNTS, faults=(request.param,))
    )
    honest = start_in_thread(ServerConfig(password=PASSWORD, accounts=ACCOUNTS))
    try:
        yield faulty, honest
    finally:
        faulty.stop()
        honest.stop()


def _reproduce(script: Path, url: str, *options: str) -> tuple[int, str]:
    """The script run (in this process) with root's password in POOL_SECRET only (and
    read-only's in RO_SECRET), as the run that wrote it was given them: its exit status and
    what it printed."""
    return replayed(script, [url, *options], {"POOL_SECRET": PASSWORD, "RO_SECRET": "ro-pw"})


REPLAYED = (
    "stale-record",
    "rbac-ignored",
    "blocked-ignored",
    "int-typed",
    "logout-keeps-session",
    "any-password-accepted",
    "session-originator-lost",
    "login-name-ignored",
    "default-template-clone-kept",
    "datetime-as-string",
    "migrate-stays",
    "affinity-ignored",
)


def _found_on(url: str, selection: str) -> DivergenceInfo:
    """The divergence ``selection`` finds first on the server at ``url``, connected as a run with
    ``--target``, ``--password-env POOL_SECRET`` and ``--role-account read-only=ro:RO_SECRET``
    connects (over the wire, in-process): its reproducers read those variables."""
    read_only = RoleAccount("read-only", "ro", "ro-pw", "RO_SECRET")
    connection, close = open_connection(
        RunConfig(target=url, password=PASSWORD, password_env="POOL_SECRET", roles=(read_only,))
    )
    try:
        return find(selection, connection)
    finally:
        close()


@pytest.mark.parametrize(
    ("servers", "fault"), [(f, f) for f in REPLAYED], indirect=["servers"], ids=REPLAYED
)
def test_the_reproducer_diverges_on_the_faulty_server_and_conforms_on_the_reference(
    servers: tuple[RunningServer, RunningServer], fault: str, tmp_path: Path
) -> None:
    faulty, honest = servers
    selection, _mark = CASES[fault]
    script = tmp_path / "reproducer.py"
    script.write_text(_found_on(faulty.url, selection).reproducer)
    status, printed = _reproduce(script, faulty.url)
    assert status == 1 and "DIVERGES" in printed, printed
    status, printed = _reproduce(script, honest.url)
    assert status == 0 and "conforms now" in printed, printed


RACE_REPLAYED = "concurrent-starts-both-succeed"


@pytest.mark.parametrize("servers", [RACE_REPLAYED], indirect=True)
def test_a_race_findings_reproducer_shows_the_race_on_the_faulty_server_only(
    servers: tuple[RunningServer, RunningServer], tmp_path: Path
) -> None:
    """The race found in-process (held at the barrier), replayed by its script three times
    against the served faulty server (its operations in flight as ``serve --fault`` keeps them)
    and the honest one."""
    faulty, honest = servers
    connection = gated(_server(faults=lookup([RACE_REPLAYED])))  # type: ignore[arg-type]
    connection.password_env = "POOL_SECRET"  # as a run given --password-env POOL_SECRET
    info = _raced(connection, RACE_CASES[RACE_REPLAYED])
    assert info is not None, "the race did not show"
    script = tmp_path / "race.py"
    script.write_text(info.reproducer)
    status, printed = _reproduce(script, faulty.url, "--repeat", "3")
    assert status == 1 and "the race showed in" in printed, printed
    status, printed = _reproduce(script, honest.url, "--repeat", "3")
    assert status == 0 and "the race showed in 0 of 3 runs" in printed, printed


def test_a_race_finding_shows_its_calls_session_by_session_with_their_times() -> None:
    """A race's divergence carries each call's session, times and answer through summary.json
    into the HTML's table; a sequential divergence has no such table."""
    lanes = RACE_CASES[RACE_REPLAYED]
    info = _raced(gated(_server(faults=lookup([RACE_REPLAYED]))), lanes)  # type: ignore[arg-type]
    assert info is not None, "the race did not show"
    text = json.dumps(divergence_to_json(divergence_record(info)))
    record = divergence_from_json(json.loads(text))
    assert len(record.calls) == sum(len(lane) for lane in lanes)
    assert {c.session for c in record.calls} == set(range(1, len(lanes) + 1))
    assert all(
        c.sent_ms is not None and c.answered_ms is not None and c.sent_ms <= c.answered_ms
        for c in record.calls
    )
    assert all(c.answer is not None for c in record.calls)
    page = render_html(summary(divergences=(record,)))
    table = page.partition('<table class="history">')[2].partition("</table>")[0]
    assert table.count("<tr><td>") == len(record.calls)
    sequential = replace(record, calls=(CallRecord("VM.start(vm1, False, False)"),), kind="outcome")
    page = render_html(summary(divergences=(sequential,)))
    assert 'class="history"' not in page
