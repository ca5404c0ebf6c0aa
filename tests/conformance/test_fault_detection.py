"""Both sides of the suite: the ``ci`` profile finds every seeded fault, with a divergence in the
area the catalogue names, and a reproducer that reproduces it and passes on the reference server.

Each fault's run is narrowed to the test that finds it cheapest (a sweep where one covers it,
else the area's machine). The sequential faults run in-process against the in-process target
(the area's machine derandomized at the ci profile's sizes, a sweep up to its first divergence);
the command line runs a sweep's and an area's fault as smoke tests. Each race fault is found by
the race its catalogue entry describes, run in-process against a server whose barrier makes the
lanes overlap whatever the load (``tests.conformance.gated``). A finding's reproducer is found
in-process over the wire against a served faulty server, then run as a script against it and
against the honest one. ``benchmarks/fault_detection.py`` measures whole areas over several seeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from conformance.areas.machines import AREAS
from conformance.areas.roles_sweep import roles_sweep
from conformance.areas.sweeps import blocked_sweep, fields_sweep, lifecycle_sweep, memory_sweep
from conformance.engine.harness import Connection, Harness
from conformance.faults import FAULTS, Raced, lookup
from conformance.judge.divergence import Divergence, DivergenceInfo
from conformance.races.concurrency import (
    EVENT_READ,
    EVENT_WAIT,
    PAUSE,
    PAUSE_S,
    Race,
    RaceCall,
    task_of,
)
from conformance.runner.connect import RoleAccount, RunConfig, open_connection
from conformance.runner.profiles import PROFILES, area_examples
from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.latency import SlowCalls
from conformance.server.overlap import counted
from conformance.server.process import RunningServer, start_in_thread
from conformance.server.profiles import NO_LATENCY
from conformance.targets.inprocess import InProcessTarget
from models.world import Account
from tests.conformance.gated import gated, run_overlapping
from tests.conformance.test_harness import _server, connect, new_vm

pytestmark = pytest.mark.slow

PASSWORD = "fault-pw"
ACCOUNTS = (Account("ro", "ro-pw", "read-only"),)

LIFECYCLE_SWEEP = "lifecycle_sweep"
BLOCKED_SWEEP = "blocked_sweep"
MEMORY_SWEEP = "memory_sweep"
FIELDS_SWEEP = "fields_sweep"
ROLES_SWEEP = "roles_sweep"
CONCURRENCY = "test_area and concurrency"
EVENTS = "test_area and events"

# fault → (-k selection, a text the divergence's message, expected outcome or kind shows)
CASES: dict[str, tuple[str, str]] = {
    "wrong-state-allowed": (LIFECYCLE_SWEEP, "VM_BAD_POWER_STATE"),
    "start-paused-ignored": (LIFECYCLE_SWEEP, "paused"),
    "suspend-keeps-host": (LIFECYCLE_SWEEP, "resident_on"),
    "shutdown-keeps-domid": (LIFECYCLE_SWEEP, "domid"),
    "unpause-running-accepted": (LIFECYCLE_SWEEP, "VM_BAD_POWER_STATE"),
    "start-fails": (LIFECYCLE_SWEEP, "NO_HOSTS_AVAILABLE"),
    "boot-checks-lax": (LIFECYCLE_SWEEP, "VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION"),
    "possible-hosts-all": (LIFECYCLE_SWEEP, "VM.get_possible_hosts"),
    "hard-shutdown-suspended-refused": (LIFECYCLE_SWEEP, "VM.hard_shutdown"),
    "wrong-error-param": (LIFECYCLE_SWEEP, "VM_BAD_POWER_STATE"),
    "power-state-capitalised": (LIFECYCLE_SWEEP, "VM_BAD_POWER_STATE"),
    "handle-invalid-lowercase": ("test_area and rpc", "HANDLE_INVALID"),
    "blocked-reason-lost": (BLOCKED_SWEEP, "OPERATION_BLOCKED"),
    "template-error-code": (LIFECYCLE_SWEEP, "VM_IS_TEMPLATE"),
    "map-duplicate-uuid": ("test_area and fields", "MAP_DUPLICATE_KEY"),
    "memory-order-unchecked": (MEMORY_SWEEP, "MEMORY_CONSTRAINT_VIOLATION_ORDER"),
    "target-not-following": (MEMORY_SWEEP, "memory_target"),
    "static-max-unchecked": (MEMORY_SWEEP, "MEMORY_CONSTRAINT_VIOLATION_ORDER"),
    "vcpus-unchecked": (MEMORY_SWEEP, "INVALID_VALUE"),
    "dynamic-range-running-refused": (MEMORY_SWEEP, "VM.set_memory_dynamic_range"),
    "blocked-ignored": (BLOCKED_SWEEP, "OPERATION_BLOCKED"),
    "blocked-checked-late": (BLOCKED_SWEEP, "OPERATION_BLOCKED"),
    "migrate-stays": (LIFECYCLE_SWEEP, "resident_on"),
    "allowed-ops-stale": ("test_area and operations", "allowed_operations"),
    "assert-valid-lax": ("test_area and operations", "VM.assert_operation_valid"),
    "unblock-ignored": ("test_area and operations", "blocked_operations"),
    "template-startable": (LIFECYCLE_SWEEP, "VM_IS_TEMPLATE"),
    "default-template-destroyable": (LIFECYCLE_SWEEP, "VM_IS_TEMPLATE"),
    "default-template-clone-kept": (LIFECYCLE_SWEEP, "default_template"),
    "snapshot-of-unset": (LIFECYCLE_SWEEP, "snapshot"),
    "checkpoint-without-memory": (LIFECYCLE_SWEEP, "uspended"),
    "revert-orphan-refused": ("test_area and lifecycle", "VM.revert"),
    "stale-record": ("test_area and fields", "name_label"),
    "tags-duplicated": ("test_area and fields", "tags"),
    "record-missing-field": ("test_area and fields", "hardware_platform_version"),
    "param-count-with-session": ("test_area and rpc", "MESSAGE_PARAMETER_COUNT_MISMATCH"),
    "unknown-method-bare": ("test_area and rpc", "MESSAGE_METHOD_UNKNOWN"),
    "type-error-text": ("test_area and rpc", "INTERNAL_ERROR"),
    "rbac-ignored": ("test_area and roles", "RBAC_PERMISSION_DENIED"),
    "rbac-permission-case": ("test_area and roles", "RBAC_PERMISSION_DENIED"),
    "operator-denied-start": ("test_area and roles", "RBAC_PERMISSION_DENIED"),
    "lost-async-error": ("test_area and async", "async"),
    "async-result-dropped": ("test_area and async", "async"),
    "async-error-code-only": ("test_area and async", "async"),
    "async-effect-lost": ("test_area and async", "[async]"),
    "logout-keeps-session": ("test_area and rpc", "_INVALID"),  # SESSION_ or HANDLE_
    "clone-keeps-blocked-ops": ("test_area and operations", "blocked_operations"),
    "any-password-accepted": ("test_area and rpc", "SESSION_AUTHENTICATION_FAILED"),
    "auth-failure-unnamed": ("test_area and rpc", "SESSION_AUTHENTICATION_FAILED"),
    "session-originator-lost": ("test_area and rpc", "originator"),
    "int64-through-double": (FIELDS_SWEEP, "user_version"),
    "non-bmp-mangled": (FIELDS_SWEEP, "not a XenAPI answer"),
    "datetime-as-string": (FIELDS_SWEEP, "dateTime"),
    "map-key-roles-ignored": ("test_area and roles", "RBAC_PERMISSION_DENIED"),
    "name-label-prefix-match": (FIELDS_SWEEP, "get_by_name_label"),
    "records-without-snapshots": (FIELDS_SWEEP, "get_all_records"),
    "where-filter-ignored": (FIELDS_SWEEP, "get_all_records_where"),
    "snapshot-time-epoch": (LIFECYCLE_SWEEP, "snapshot_time"),
    "revert-keeps-changes": (LIFECYCLE_SWEEP, "name_description"),
    "template-vcpus-unchecked": (MEMORY_SWEEP, "INVALID_VALUE"),
    "int-typed": ("test_area and fields", "int"),
    "bool-as-text": ("test_area and fields", "bool"),
    "task-not-resident": ("test_area and async", "resident_on"),
    "task-created-local-time": ("test_area and async", "created"),
    "task-destroy-kept": (EVENTS, "destroyed task"),
    "event-no-mod-on-power-change": (EVENTS, "(mod)"),
    "event-stale-snapshot": (EVENTS, "in the snapshot of"),
    "event-token-stuck": (EVENTS, "token"),
    "event-class-filter-ignored": (EVENTS, "outside the subscription"),
    "event-no-del-on-destroy": (EVENTS, "(del)"),
    "event-task-without-result": (EVENTS, "task result"),
    "event-next-repeats": (EVENTS, "the last id already answered"),
    "event-next-stale-snapshot": (EVENTS, "in the snapshot of"),
    "event-counts-empty": (EVENTS, "valid_ref_counts"),
    "event-ids-not-generations": (EVENTS, "event id"),
    "event-token-unpadded": (EVENTS, "is not xapi's"),
    "event-next-class-uppercase": (EVENTS, "event class"),
    "pool-other-config-write-lost": (ROLES_SWEEP, "pool.get_other_config"),
    "task-owner-ignored": (ROLES_SWEEP, "RBAC_PERMISSION_DENIED"),
    "not-utf8-replaced": (FIELDS_SWEEP, "INVALID_VALUE"),
    # races (issue 12): found only by the concurrency area
    "concurrent-starts-both-succeed": (CONCURRENCY, "VM.start"),
    "destroy-succeeds-twice": (CONCURRENCY, "VM.destroy"),
    "map-update-lost": (CONCURRENCY, "no order of these"),
    "conflict-not-waited": (CONCURRENCY, "OTHER_OPERATION_IN_PROGRESS"),
    "in-flight-not-asserted": (CONCURRENCY, "VM.assert_operation_valid"),
    "allowed-ops-stale-in-flight": (CONCURRENCY, "allowed_operations"),
    "cancelled-op-done": (CONCURRENCY, "TASK_CANCELLED"),
    "event-in-flight-hidden": (CONCURRENCY, "event.from"),
    "hard-shutdown-cancels-all": (CONCURRENCY, "TASK_CANCELLED"),
}
SEED = "1"
MACHINE_BUDGET = "60"
"""A machine's run is bounded (its shrinking above all) by a time budget; the sweeps are not."""


def _selection(selection: str) -> list[str]:
    """``-k selection``, with the time budget when it selects an area machine."""
    budget = ["--time-budget", MACHINE_BUDGET] if "test_area" in selection else []
    return ["-k", selection, *budget]


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


def _shown(divergence: dict[str, object]) -> str:
    return json.dumps(divergence["expected"]) + str(divergence["kind"]) + str(divergence["message"])


def test_every_fault_has_a_detection_case() -> None:
    assert set(CASES) == set(FAULTS)


RACES = tuple(fault for fault, (selection, _mark) in CASES.items() if selection == CONCURRENCY)
SEQUENTIAL = tuple(fault for fault in CASES if fault not in RACES)
COMMAND_LINE = ("wrong-state-allowed", "stale-record")
"""Faults found end to end through the command line: a sweep's and an area's, as smoke tests of
the command (the concurrency area's, in test_concurrency.py)."""

SWEEPS: dict[str, tuple[Callable[[], Iterable[Callable[[Connection, str], None]]], str]] = {
    LIFECYCLE_SWEEP: (lifecycle_sweep, "lifecycle"),
    BLOCKED_SWEEP: (blocked_sweep, "operations"),
    MEMORY_SWEEP: (memory_sweep, "memory"),
    FIELDS_SWEEP: (fields_sweep, "fields"),
    ROLES_SWEEP: (roles_sweep, "roles"),
}


ON_POOL_TEMPLATES = ("default-template-clone-kept",)
"""Faults shown only on the pool's default templates (serve has them; ``_server`` has none)."""


def _faulty(fault: str) -> Connection:
    """An in-process embedded server with ``fault``, its operations in flight as the fault's
    windows say (as ``serve --fault``)."""
    templates = fault in ON_POOL_TEMPLATES
    state = _server(faults=lookup([fault]), templates=templates)  # type: ignore[arg-type]
    app = XenAPIApp(state, latency=SlowCalls(NO_LATENCY))
    return connect(state, wrap=lambda _inner: InProcessTarget(app, "xmlrpc"))


def _ci_settings(area: str) -> settings:
    """The ci profile's sizes for ``area``, derandomized (the same examples every run), without
    shrinking: finding the fault is what is checked."""
    return settings(
        max_examples=area_examples("ci", area, None),
        stateful_step_count=min(PROFILES["ci"].steps, AREAS[area].max_steps),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        report_multiple_bugs=False,
    )


def _find(selection: str, connection: Connection) -> DivergenceInfo:
    """The divergence the selection (a sweep, or an area's machine) finds first."""
    with pytest.raises(Divergence) as caught:
        if selection in SWEEPS:
            cases, area = SWEEPS[selection]
            for case in cases():  # the first divergence ends the sweep
                case(connection, area)
        else:
            area = selection.removeprefix("test_area and ")
            bound = type("Bound", (AREAS[area],), {"connection": connection})
            run_state_machine_as_test(bound, settings=_ci_settings(area))
    return caught.value.info


@pytest.mark.parametrize("fault", SEQUENTIAL)
def test_the_ci_profile_finds_the_fault_in_its_area(fault: str) -> None:
    selection, mark = CASES[fault]
    info = _find(selection, _faulty(fault))
    assert info.area == FAULTS[fault].area, info.message
    assert mark in f"{info.expected!r}{info.kind}{info.message}", info.message


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
        *_selection(selection),
        "--report-dir",
        str(tmp_path),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    first = summary["divergences"][0]
    assert first["area"] == FAULTS[fault].area, first["message"]
    assert mark in _shown(first), first["message"]


IN_FLIGHT = (RaceCall(PAUSE, (PAUSE_S,)), RaceCall("VM.get_current_operations", ("vm",)))
"""A watcher's first calls: the proof that the other lane's operation has begun."""
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


def test_every_race_fault_has_its_race() -> None:
    assert set(RACE_CASES) == set(RACES)


@pytest.mark.parametrize("fault", RACES)
def test_the_race_check_finds_the_race_fault(fault: str) -> None:
    """The operation in flight holds at the server's barrier until every other call of the race
    has been checked, so the race shows on every run; the honest server explains it."""
    _selection, mark = CASES[fault]
    running = fault in RUNNING_FIRST
    faulty = gated(_server(faults=lookup([fault])))  # type: ignore[arg-type]
    info = _raced(faulty, RACE_CASES[fault], running)
    assert info is not None, f"the race did not show {fault}"
    assert info.area == FAULTS[fault].area, info.message
    assert mark in info.message, info.message
    honest = gated(_server(faults=(Raced("none", frozenset()),)))  # type: ignore[arg-type]
    assert _raced(honest, RACE_CASES[fault], running) is None


def _raced(connection: Connection, lanes: Lanes, running: bool = False) -> DivergenceInfo | None:
    """The divergence of ``lanes`` on a fresh VM (started first when ``running``), each
    operation in flight held until all the race's calls the barrier counts (not pauses, waits
    or event reads) have been checked; None when an order explains it."""
    harness = Harness(connection, "concurrency")
    try:
        vm = new_vm(harness)
        if running:
            harness.call("VM.start", vm, False, False)
        race = Race(tuple(tuple(_on(call, vm) for call in lane) for lane in lanes))
        calls = sum(counted(call.wire_method) for _lane, call in race.calls())
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


def _reproduce(script: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XAPI_PASSWORD": PASSWORD, "XAPI_PASSWORD_READ_ONLY": "ro-pw"}
    return subprocess.run(
        [sys.executable, str(script), url],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


REPLAYED = (
    "stale-record",
    "rbac-ignored",
    "blocked-ignored",
    "int-typed",
    "logout-keeps-session",
    "any-password-accepted",
    "session-originator-lost",
    "default-template-clone-kept",
    "datetime-as-string",
    "migrate-stays",
)


def _found_on(url: str, selection: str) -> DivergenceInfo:
    """The divergence ``selection`` finds first on the server at ``url``, connected as a run with
    ``--target`` and ``--role-account read-only=ro:…`` connects (over the wire, in-process)."""
    read_only = RoleAccount("read-only", "ro", "ro-pw")
    connection, close = open_connection(
        RunConfig(target=url, password=PASSWORD, roles=(read_only,))
    )
    try:
        return _find(selection, connection)
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
    again = _reproduce(script, faulty.url)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "DIVERGES" in again.stdout
    clean = _reproduce(script, honest.url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "conforms now" in clean.stdout
