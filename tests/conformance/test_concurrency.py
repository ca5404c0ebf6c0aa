"""Concurrency (issue 12): operations in flight on the embedded server, the linearizability
check, the concurrency area on honest and racy servers, and race reproducers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn, cast

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from conformance.areas.machines import AREAS
from conformance.engine.harness import Connection, Harness
from conformance.faults import FAULTS, RACE_WINDOW, Raced, lookup, races
from conformance.faults.events import class_filter_ignored
from conformance.judge.divergence import Divergence, DivergenceInfo
from conformance.races import concurrency
from conformance.races.concurrency import (
    EVENT_READ,
    EVENT_WAIT,
    PAUSE,
    PAUSE_S,
    Race,
    RaceCall,
    run_race,
    task_of,
)
from conformance.races.linearize import (
    Created,
    Explained,
    FinalCheck,
    Observed,
    Undecided,
    Unexplained,
    linearize,
    task_name,
)
from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.latency import SlowCalls
from conformance.server.process import RunningServer, start_in_thread
from conformance.server.profiles import NO_LATENCY, load_profile
from conformance.targets import open_target
from conformance.targets.inprocess import InProcessTarget
from models.outcome import Failure, Outcome, Success, Value
from models.transition import Call
from models.world import World
from tests.conformance.gated import gated, run_overlapping
from tests.conformance.test_harness import FAST, _server, connect, new_vm
from tests.models.helpers import Driver, driver

PASSWORD = "race-pw"
RACE_FAULTS = [name for name, seeded in FAULTS.items() if races([seeded])]


# ---- the embedded server with operations in flight -----------------------------------------------


@pytest.fixture
def slow() -> Iterator[RunningServer]:
    """An embedded server where VM.start takes 0.4 s, clean_shutdown 0.75 s (xapi x 0.05)."""
    profile = load_profile("xapi").scaled(0.05)
    running = start_in_thread(ServerConfig(password=PASSWORD, latency=profile))
    try:
        yield running
    finally:
        running.stop()


class _Client:
    def __init__(self, url: str) -> None:
        self.target = open_target(url, "xmlrpc")
        login = self.target.call("session.login_with_password", "root", PASSWORD)
        assert isinstance(login, Success)
        self.session = str(login.value)

    def call(self, method: str, *args: Value) -> Outcome:
        return self.target.call(method, self.session, *args)

    def ok(self, method: str, *args: Value) -> Value:
        outcome = self.call(method, *args)
        assert isinstance(outcome, Success), outcome
        return outcome.value


def _in_background(action: Callable[[], Outcome]) -> tuple[threading.Thread, list[Outcome]]:
    answers: list[Outcome] = []
    thread = threading.Thread(target=lambda: answers.append(action()))
    thread.start()
    return thread, answers


WAKE_S = 10.0
"""How long one event.from of ``_until`` waits for a change."""


def _until(client: _Client, check: Callable[[], bool], classes: Sequence[str] = ("vm",)) -> None:
    """Wait until ``check`` holds, looking again at each change of an object of ``classes``
    (event.from wakes the waiter: no polling clock). Fails once several waits in a row saw
    nothing change."""
    token: Value = ""
    quiet = 0
    while not check():
        batch = cast(dict[str, Value], client.ok("event.from", list(classes), token, WAKE_S))
        token = batch["token"]
        quiet = 0 if batch["events"] else quiet + 1
        assert quiet < 5, "the condition was not reached, and nothing changes any more"


def _vm(client: _Client) -> str:
    from conformance.areas.strategies import vm_record

    return str(client.ok("VM.create", vm_record("race")))


def test_an_operation_in_flight_shows_on_the_wire_and_a_second_start_waits(
    slow: RunningServer,
) -> None:
    first, other = _Client(slow.url), _Client(slow.url)
    vm = _vm(first)
    thread, answers = _in_background(lambda: first.call("VM.start", vm, False, False))
    _until(other, lambda: bool(other.ok("VM.get_current_operations", vm)))
    in_flight = cast(dict[str, str], other.ok("VM.get_current_operations", vm))
    (task,) = in_flight
    assert in_flight[task] == "start"
    assert other.ok("VM.get_allowed_operations", vm) == ()
    assert other.call("VM.assert_operation_valid", vm, "start") == Failure(
        "OTHER_OPERATION_IN_PROGRESS", ("VM", vm, "start", task)
    )
    second = other.call("VM.start", vm, False, False)  # waits for the first, then checks
    thread.join()
    assert answers == [Success("")]
    assert second == Failure("VM_BAD_POWER_STATE", (vm, "halted", "running"))
    assert other.ok("VM.get_current_operations", vm) == {}
    assert "clean_shutdown" in cast(tuple[str, ...], other.ok("VM.get_allowed_operations", vm))


def _vm_snapshots(batch: Value, vm: str) -> list[dict[str, Value]]:
    assert isinstance(batch, dict)
    events = cast(list[dict[str, Value]], batch["events"])
    return [cast(dict[str, Value], e["snapshot"]) for e in events if e["ref"] == vm]


def test_events_show_the_operation_in_flight(slow: RunningServer) -> None:
    client, watcher = _Client(slow.url), _Client(slow.url)
    vm = _vm(client)
    token = cast(dict[str, Value], watcher.ok("event.from", ["vm"], "", 0.0))["token"]
    thread, _answers = _in_background(lambda: client.call("VM.start", vm, False, False))
    begun = watcher.ok("event.from", ["vm"], token, 5.0)  # wakes at the begin
    assert any(s["current_operations"] for s in _vm_snapshots(begun, vm))
    thread.join()
    token = cast(dict[str, Value], begun)["token"]
    ended = watcher.ok("event.from", ["vm"], token, 5.0)
    assert not _vm_snapshots(ended, vm)[-1]["current_operations"]


@pytest.fixture
def endless() -> Iterator[RunningServer]:
    """As ``slow``, but a clean shutdown takes an hour: a call that ends did not wait it out."""
    slow = load_profile("xapi").scaled(0.05)
    hour = replace(slow, methods={**slow.methods, "VM.clean_shutdown": 3600 / slow.scale})
    running = start_in_thread(ServerConfig(password=PASSWORD, latency=hour))
    try:
        yield running
    finally:
        running.stop()


def test_hard_shutdown_cancels_a_clean_shutdown_in_flight(endless: RunningServer) -> None:
    client, other = _Client(endless.url), _Client(endless.url)
    vm = _vm(client)
    client.ok("VM.start", vm, False, False)
    thread, answers = _in_background(lambda: client.call("VM.clean_shutdown", vm))
    _until(other, lambda: bool(other.ok("VM.get_current_operations", vm)))
    assert other.call("VM.hard_shutdown", vm) == Success("")  # within the call's deadline
    thread.join()
    (cancelled,) = answers
    assert isinstance(cancelled, Failure) and cancelled.code == "TASK_CANCELLED"
    assert other.ok("VM.get_power_state", vm) == "Halted"


def test_task_cancel_stops_an_async_operation_in_flight_at_once(endless: RunningServer) -> None:
    client = _Client(endless.url)
    vm = _vm(client)
    client.ok("VM.start", vm, False, False)
    task = str(client.ok("Async.VM.clean_shutdown", vm))  # an hour in flight
    assert client.ok("task.cancel", task) == ""
    _until(client, lambda: client.ok("task.get_status", task) != "pending")
    assert client.ok("task.get_status", task) == "cancelled"
    assert client.ok("task.get_error_info", task) == ("TASK_CANCELLED", task)
    assert client.ok("VM.get_current_operations", vm) == {}
    assert client.ok("VM.get_power_state", vm) == "Running"


def test_a_cancelled_call_waiting_out_a_conflict_never_runs(slow: RunningServer) -> None:
    client, other = _Client(slow.url), _Client(slow.url)
    vm = _vm(client)
    client.ok("VM.start", vm, False, False)
    thread, answers = _in_background(lambda: client.call("VM.clean_shutdown", vm))
    _until(other, lambda: bool(other.ok("VM.get_current_operations", vm)))
    task = str(other.ok("Async.VM.pause", vm))  # waits for the clean shutdown
    assert other.ok("task.get_status", task) == "pending"
    assert other.ok("task.cancel", task) == ""
    _until(other, lambda: other.ok("task.get_status", task) != "pending", ("vm", "task"))
    assert other.ok("task.get_error_info", task) == ("TASK_CANCELLED", task)
    thread.join()
    assert answers == [Success("")]
    assert other.ok("VM.get_power_state", vm) == "Halted"
    assert other.ok("task.cancel", task) == ""  # a finished task: nothing happens


# ---- the linearizability search -------------------------------------------------------------------


def _history(
    d_world: World, session: str, calls: list[tuple[Call, float, float, Outcome]]
) -> list[Observed]:
    return [
        Observed(i, i, call, sent, answered, outcome)
        for i, (call, sent, answered, outcome) in enumerate(calls)
    ]


def _no_final(_: World, _created: Created) -> str | None:
    return None


def test_two_overlapping_starts_one_refused_are_linearizable() -> None:
    d = driver()
    vm = d.in_state("Halted")
    start = Call("VM.start", (d.session, vm, False, False))
    refused = Failure("VM_BAD_POWER_STATE", (vm, "halted", "running"))
    history = _history(d.world, d.session, [(start, 0, 10, Success("")), (start, 1, 11, refused)])
    found = linearize(d.world, history, _no_final)
    assert isinstance(found, Explained)
    assert found.order == ("begin #0", "end #0", "call #1")
    assert found.world.vms[vm]["power_state"] == "Running"


def test_two_overlapping_starts_that_both_succeed_are_not() -> None:
    d = driver()
    vm = d.in_state("Halted")
    start = Call("VM.start", (d.session, vm, False, False))
    history = _history(
        d.world, d.session, [(start, 0, 10, Success("")), (start, 1, 11, Success(""))]
    )
    found = linearize(d.world, history, _no_final)
    assert isinstance(found, Unexplained)
    assert "VM_BAD_POWER_STATE" in found.closest


@pytest.mark.parametrize("winner", [0, 1])
def test_the_call_accepted_where_xapi_refuses_stands_for_the_race_whichever_session_won(
    winner: int,
) -> None:
    """Two destroys of a VM whose destroy is blocked, on a server that ignores
    blocked_operations: one is accepted, the other finds the VM gone (HANDLE_INVALID). Which
    session won is timing; the race's deepest attempt names the accepted destroy either way,
    so the finding, its id and its replay are the same whoever won."""
    d = driver()
    vm = d.in_state("Halted")
    d.ok("VM.add_to_blocked_operations", vm, "destroy", "kept")
    destroy = Call("VM.destroy", (d.session, vm))
    answers: list[Outcome] = [Failure("HANDLE_INVALID", ("VM", vm))] * 2
    answers[winner] = Success("")
    history = _history(d.world, d.session, [(destroy, 0, 10, a) for a in answers])
    found = linearize(d.world, history, _no_final)
    assert isinstance(found, Unexplained)
    assert found.closest.startswith(f"after nothing: #{winner} VM.destroy:")
    assert isinstance(found.expected, Failure) and found.expected.code == "OPERATION_BLOCKED"
    refused = Failure("OPERATION_BLOCKED", (vm, "kept"))
    honest = _history(d.world, d.session, [(destroy, 0, 10, refused)] * 2)
    assert isinstance(linearize(d.world, honest, _no_final), Explained)


def test_real_time_order_is_respected() -> None:
    d = driver()
    vm = d.in_state("Halted")
    start = Call("VM.start", (d.session, vm, False, False))
    state = Call("VM.get_power_state", (d.session, vm))
    history = _history(
        d.world, d.session, [(start, 0, 10, Success("")), (state, 20, 21, Success("Halted"))]
    )
    assert isinstance(linearize(d.world, history, _no_final), Unexplained)
    overlapping = _history(
        d.world, d.session, [(start, 0, 10, Success("")), (state, 5, 6, Success("Halted"))]
    )
    assert isinstance(linearize(d.world, overlapping, _no_final), Explained)


def test_final_records_must_be_explained_too() -> None:
    d = driver()
    vm = d.in_state("Halted")
    add = [Call("VM.add_to_other_config", (d.session, vm, key, "x")) for key in ("a", "b")]
    history = _history(
        d.world, d.session, [(add[0], 0, 5, Success("")), (add[1], 0, 5, Success(""))]
    )

    def lost_update(world: World, _created: Created) -> str | None:
        other = world.vms[vm]["other_config"]
        return None if set(other) == {"a"} else "other_config"  # type: ignore[arg-type]

    assert isinstance(linearize(d.world, history, lost_update), Unexplained)
    assert isinstance(linearize(d.world, history, _no_final), Explained)


def _cancel_history(
    d: Driver, vm: str, answer: Outcome, cancel: Outcome, cancel_sent: float = 2
) -> list[Observed]:
    start = Call("VM.start", (d.session, vm, False, False))
    cancel_call = Call("task.cancel", (d.session, task_name(0)))
    return [
        Observed(0, 0, start, 0, 10, answer, is_async=True, task="OpaqueRef:target-task"),
        Observed(1, 1, cancel_call, cancel_sent, cancel_sent + 1, cancel),
    ]


def _power_state_is(vm: str, state: str) -> FinalCheck:
    return lambda world, _: None if world.vms[vm]["power_state"] == state else "power_state"


CANCELLED = Failure("TASK_CANCELLED", ("OpaqueRef:target-task",))


@pytest.mark.parametrize(
    ("state", "explained"), [("Halted", True), ("Paused", True), ("Running", False)]
)
def test_a_cancelled_start_stops_or_is_left_paused_but_never_runs(
    state: str, explained: bool
) -> None:
    d = driver()
    vm = d.in_state("Halted")
    history = _cancel_history(d, vm, CANCELLED, Success(""))
    found = linearize(d.world, history, _power_state_is(vm, state))
    assert isinstance(found, Explained) is explained, found


def test_a_start_that_ends_after_its_cancel_may_have_completed() -> None:
    d = driver()
    vm = d.in_state("Halted")
    history = _cancel_history(d, vm, Success(""), Success(""))
    found = linearize(d.world, history, _power_state_is(vm, "Running"))
    assert isinstance(found, Explained)


def test_a_call_cancelled_before_its_begin_must_answer_task_cancelled() -> None:
    d = driver()
    vm = d.in_state("Halted")
    history = _cancel_history(d, vm, CANCELLED, Success(""))
    found = linearize(d.world, history, _power_state_is(vm, "Halted"))
    assert isinstance(found, Explained)
    assert found.order[:2] in (("call #1", "call #0"), ("begin #0", "call #1"))


def test_a_task_cancel_after_the_task_was_destroyed_is_handle_invalid() -> None:
    d = driver()
    vm = d.in_state("Halted")
    gone = Failure("HANDLE_INVALID", ("task", "OpaqueRef:target-task"))
    running = _power_state_is(vm, "Running")
    late = _cancel_history(d, vm, Success(""), gone, cancel_sent=20)
    assert isinstance(linearize(d.world, late, running), Explained)
    wrong = _cancel_history(d, vm, Success(""), Success(""), cancel_sent=20)
    assert isinstance(linearize(d.world, wrong, running), Unexplained)


def test_the_search_is_bounded() -> None:
    d = driver()
    vm = d.in_state("Halted")
    label = [Call("VM.set_name_label", (d.session, vm, str(i))) for i in range(6)]
    history = _history(d.world, d.session, [(c, 0, 1, Success("")) for c in label])
    assert isinstance(linearize(d.world, history, lambda _w, _c: "never", limit=50), Undecided)


# ---- the area: honest servers conform, racy ones diverge, sequential areas do not see races --------


def _racy(fault: str) -> Connection:
    """An in-process server with the race ``fault``, its races made to overlap."""
    return gated(_server(faults=lookup([fault])))  # type: ignore[arg-type]


def _racy_window() -> Connection:
    """An honest server whose operations stay in flight as a race fault's do."""
    return gated(_server(faults=(Raced("none", frozenset()),)))  # type: ignore[arg-type]


def _race(connection: Connection, lanes: Lanes) -> None:
    harness = Harness(connection, "concurrency")
    try:
        vm = new_vm(harness)
        race = Race(tuple(tuple(RaceCall(m, (vm, *a), s) for m, a, s in lane) for lane in lanes))
        run_overlapping(harness, race, [harness.session] * len(lanes))
        harness.check_state(full=True)
    finally:
        harness.teardown()


Lanes = list[list[tuple[str, tuple[Value, ...], bool]]]
TWO_STARTS: Lanes = [[("VM.start", (False, False), False)], [("VM.start", (False, False), True)]]


def test_a_race_on_the_honest_server_is_explained() -> None:
    _race(connect(), TWO_STARTS)


def test_a_race_on_the_honest_slow_server_is_explained() -> None:
    state = _server()
    app = XenAPIApp(state, latency=SlowCalls(load_profile("xapi").scaled(0.005)))
    _race(connect(state, wrap=lambda _inner: InProcessTarget(app, "xmlrpc")), TWO_STARTS)


WATCHED_BY_EVENT: Lanes = [
    [("VM.start", (False, False), False)],
    [
        (EVENT_WAIT, (), False),
        ("VM.get_current_operations", (), False),
        (EVENT_READ, (), False),
        ("VM.get_allowed_operations", (), False),
    ],
]
"""A start, and another session that waits for the VM's first change (the start's begin),
reads current_operations, the VM's event, then allowed_operations. The server's barrier holds
the start in flight until the start and both reads have been checked, so the event read lands
in the middle of the start whatever the load."""


def _watched_by_event(connection: Connection) -> None:
    harness = Harness(connection, "concurrency")
    try:
        vm = new_vm(harness)
        race = Race(
            tuple(tuple(RaceCall(m, (vm, *a), s) for m, a, s in lane) for lane in WATCHED_BY_EVENT)
        )
        run_overlapping(harness, race, [harness.session] * 2, calls=3)
        harness.check_state(full=True)
    finally:
        harness.teardown()


def test_an_event_read_in_the_middle_of_an_operation_shows_it() -> None:
    _watched_by_event(_racy_window())


def test_an_event_read_that_hides_the_operation_in_flight_diverges() -> None:
    with pytest.raises(Divergence, match="no order of these 4 calls") as caught:
        _watched_by_event(_racy("event-in-flight-hidden"))
    message = str(caught.value)
    assert "event.from(vm1)" in message
    assert caught.value.info.area == "concurrency"


def test_an_event_read_answering_other_objects_diverges() -> None:
    state = _server(faults=(Raced("none", frozenset(), inner=class_filter_ignored),))
    with pytest.raises(Divergence, match=r"expected the VM once \(add\)") as caught:
        _watched_by_event(gated(state))  # type: ignore[arg-type]
    assert "event.from(" in str(caught.value)


CANCEL_RACE = (
    (RaceCall("VM.start", ("vm", False, False), True),),
    (RaceCall("task.cancel", (task_of(0),)), RaceCall("VM.get_power_state", ("vm",))),
)


def _cancel_race(connection: Connection) -> None:
    harness = Harness(connection, "concurrency")
    try:
        vm = new_vm(harness)
        lanes = tuple(
            tuple(RaceCall(c.method, tuple(vm if a == "vm" else a for a in c.args), c.is_async)
                  for c in lane)
            for lane in CANCEL_RACE
        )  # fmt: skip
        run_overlapping(harness, Race(lanes), [harness.session] * 2)
        harness.check_state(full=True)
    finally:
        harness.teardown()


def test_a_cancel_race_on_the_honest_servers_is_explained() -> None:
    _cancel_race(connect())
    _cancel_race(_racy_window())


def test_a_cancelled_op_that_still_takes_effect_diverges() -> None:
    with pytest.raises(Divergence) as caught:
        _cancel_race(_racy("cancelled-op-done"))
    message = str(caught.value)
    assert "TASK_CANCELLED" in message
    assert "task.cancel(the task of #0)" in message


def test_setter_and_migration_races_on_the_honest_slow_server_are_explained() -> None:
    state = _server()
    app = XenAPIApp(state, latency=SlowCalls(load_profile("xapi").scaled(0.005)))
    connection = connect(state, wrap=lambda _inner: InProcessTarget(app, "xmlrpc"))
    harness = Harness(connection, "concurrency")
    try:
        vm = new_vm(harness)
        harness.call("VM.start", vm, False, False)
        ranges = [(268435456, 536870912), (402653184, 536870912)]
        race = Race(
            (
                tuple(RaceCall("VM.set_memory_dynamic_range", (vm, *r)) for r in ranges),
                (RaceCall("VM.set_VCPUs_number_live", (vm, 2)),),
                (RaceCall("VM.pool_migrate", (vm, "(the other host)", {}), True),),
            )
        ).on([vm], harness.world)
        run_race(harness, race, [harness.session] * 3)
        harness.check_state(full=True)
        assert harness.world.vms[vm]["memory_dynamic_min"] == 402653184
    finally:
        harness.teardown()


CLONES: Lanes = [
    [("VM.clone", ("race c",), False)],
    [("VM.snapshot", ("race s",), True)],
    [("VM.copy", ("race p", "OpaqueRef:NULL"), True)],
]


@pytest.mark.parametrize("scale", [0.0, 0.005])
def test_concurrent_clones_are_paired_with_the_models_and_left_nowhere(scale: float) -> None:
    state = _server()
    app = XenAPIApp(state, latency=SlowCalls(load_profile("xapi").scaled(scale)))
    _race(connect(state, wrap=lambda _inner: InProcessTarget(app, "xmlrpc")), CLONES)
    names = {str(vm["name_label"]) for vm in state.world.vms.values()}
    assert not names & {"race c", "race s", "race p"}  # the harness destroyed them


def test_the_search_pairs_each_new_vm_with_the_order_that_made_it() -> None:
    d = driver()
    vm = d.in_state("Halted")
    clones = [Call("VM.clone", (d.session, vm, name)) for name in ("a", "b")]
    made = [Success("OpaqueRef:target-1"), Success("OpaqueRef:target-0")]
    history = _history(d.world, d.session, [(clones[i], 0, 5, made[i]) for i in (0, 1)])

    def named(labels: dict[str, str]) -> FinalCheck:
        def check(world: World, created: Created) -> str | None:
            seen = {t: world.vms[m]["name_label"] for m, t in created}
            return None if seen == labels else f"names {seen}"

        return check

    found = linearize(
        d.world, history, named({"OpaqueRef:target-1": "a", "OpaqueRef:target-0": "b"})
    )
    assert isinstance(found, Explained), found
    assert {t for _m, t in found.created} == {"OpaqueRef:target-0", "OpaqueRef:target-1"}
    swapped = named({"OpaqueRef:target-0": "a", "OpaqueRef:target-1": "b"})
    assert isinstance(linearize(d.world, history, swapped), Unexplained)


TWO_EDITS: Lanes = [
    [("VM.add_to_other_config", ("a", "1"), False)],
    [("VM.add_to_other_config", ("b", "2"), False)],
]


def test_overlapping_map_edits_are_explained_on_the_honest_window_server() -> None:
    _race(_racy_window(), TWO_EDITS)


def test_a_lost_map_edit_diverges_on_the_final_record() -> None:
    """``map-update-lost`` holds each edit for its own window (wider than an operation's), so
    two edits released together overlap even on a loaded machine."""
    with pytest.raises(Divergence) as caught:
        _race(_racy("map-update-lost"), TWO_EDITS)
    assert "other_config" in str(caught.value)
    assert caught.value.info.area == "concurrency"


def test_a_race_divergence_is_raised_through_the_harness() -> None:
    """So that a budget's watcher notes it like any other: when the replays of a race that
    showed once take other paths, the divergence is reported, not an inconsistent target."""
    seen: list[str] = []

    class Spied(Harness):
        def diverged(self, info: DivergenceInfo) -> NoReturn:
            seen.append(info.message)
            super().diverged(info)

    harness = Spied(_racy("concurrent-starts-both-succeed"), "concurrency")
    try:
        vm = new_vm(harness)
        lanes = [tuple(RaceCall(m, (vm, *a), s) for m, a, s in lane) for lane in TWO_STARTS]
        with pytest.raises(Divergence) as caught:
            run_overlapping(harness, Race(tuple(lanes)), [harness.session] * 2)
    finally:
        harness.teardown()
    assert seen == [caught.value.info.message]


def test_two_starts_that_both_succeed_diverge_with_the_history() -> None:
    with pytest.raises(Divergence) as caught:
        _race(_racy("concurrent-starts-both-succeed"), TWO_STARTS)
    message = str(caught.value)
    assert "no order of these 2 calls from 2 sessions" in message
    assert "Async.VM.start(vm1, False, False)" in message
    assert caught.value.info.area == "concurrency"


LATE_SECOND_START: Lanes = [
    [("VM.start", (False, False), False)],
    [(PAUSE, (PAUSE_S,), False), ("VM.start", (False, False), False)],
]


def test_a_lane_that_reaches_the_server_late_still_overlaps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second start is sent ten race windows after the first (as on a loaded machine): the
    server's barrier holds the first in flight until the second has been checked, so the race
    shows; without the barrier, the first start has ended by then and nothing shows."""
    monkeypatch.setattr(concurrency, "PAUSE_S", 10 * RACE_WINDOW)
    with pytest.raises(Divergence, match="no order of these 2 calls"):
        _race(_racy("concurrent-starts-both-succeed"), LATE_SECOND_START)
    state = _server(faults=lookup(["concurrent-starts-both-succeed"]))  # type: ignore[arg-type]
    app = XenAPIApp(state, latency=SlowCalls(NO_LATENCY))
    _race(connect(state, wrap=lambda _inner: InProcessTarget(app, "xmlrpc")), LATE_SECOND_START)


@pytest.mark.parametrize("fault", RACE_FAULTS)
@pytest.mark.parametrize("area", ["lifecycle", "operations", "fields", "async"])
def test_race_faults_are_invisible_to_the_sequential_areas(fault: str, area: str) -> None:
    machine = AREAS[area]
    bound = type(f"{machine.__name__}Bound", (machine,), {"connection": _racy(fault)})
    run_state_machine_as_test(bound, settings=settings(FAST, max_examples=2))


def test_the_concurrency_area_conforms_on_the_honest_server() -> None:
    connection = connect()
    machine = AREAS["concurrency"]
    bound = type("ConcurrencyBound", (machine,), {"connection": connection})
    run_state_machine_as_test(bound, settings=FAST)
    assert connection.tally.steps > 0


# ---- end to end: the CLI against a slow server (a race finding's reproducer: test_fault_detection) --


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.runner.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "XAPI_PASSWORD": PASSWORD},
        timeout=timeout,
    )


@pytest.mark.slow
def test_the_area_conforms_against_a_slow_external_server(tmp_path: Path) -> None:
    profile = load_profile("xapi").scaled(0.002)
    server = start_in_thread(ServerConfig(password=PASSWORD, latency=profile))
    try:
        result = _cli(
            "run", "--target", server.url, "-k", "concurrency", "--profile", "dev",
            "--seed", "3", "--report-dir", str(tmp_path),
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["verdict"] == "conforms"


def test_a_race_answer_typed_as_xapi_never_types_it_diverges() -> None:
    """The lanes' answers go through the harness's typing: an int64 the target sends as an
    XML-RPC <int> (xapi sends a bare string) diverges in a race as it does in any other call."""
    harness = Harness(_racy("int-typed"), "concurrency")
    try:
        vm = new_vm(harness)
        lanes = ((RaceCall("VM.get_VCPUs_max", (vm,)),), (RaceCall("VM.get_power_state", (vm,)),))
        with pytest.raises(Divergence) as caught:
            run_race(harness, Race(lanes), [harness.session] * 2)
    finally:
        harness.teardown()
    assert "xapi sends int as a bare string over xmlrpc" in str(caught.value)
    assert caught.value.info.area == "concurrency"
