"""Both sides of the events area, in process: the honest server's events conform, and each
seeded fault of events and tasks is found by the ``ci`` profile's search with the divergence its
catalogue names, and replayed by its finding's reproducer (these faults' search is here, not in
test_fault_detection.py).

The event log's faults are also shown on the log itself (no socket, no machine): the honest
log and the faulty one answer the same event.from differently, as the catalogue says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis.stateful import run_state_machine_as_test

from conformance.areas.machines import AREAS
from conformance.faults import FAULTS
from conformance.judge.divergence import DivergenceInfo
from conformance.judge.events import SeenEvent, next_del_mismatch, order_mismatch
from conformance.server.config import ServerConfig
from conformance.server.events import EventLog
from conformance.server.process import start_in_thread
from conformance.server.state import ServerState
from models.events import Event, parse_token, trackid
from models.outcome import Failure
from tests.conformance.detect import QUICK_IDLE_S, found, replayed
from tests.conformance.test_harness import (
    DETECT,
    PASSWORD,
    ROLE_ACCOUNTS,
    _server,
    connect,
    replace_settings,
)
from tests.models.helpers import Driver, driver

FOUND_BY_EVENTS: dict[str, str] = {
    "event-no-mod-on-power-change": r"never reported vm vm\d+ \(mod\)",
    "event-stale-snapshot": r"in the snapshot of vm vm\d+ \(mod\)",
    "event-token-stuck": r"vm vm\d+ (as add|\(add\) though it did not change)|is not xapi's|event id: \d+ of",
    "event-class-filter-ignored": r"outside the subscription",
    "event-empty-subscription-everything": r"event\.from\(\[\], .*outside the subscription",
    "event-no-del-on-destroy": r"never reported vm vm\d+ \(del\)",
    "event-task-without-result": r"the task's event: task result",
    "task-destroy-kept": r"a destroyed task must be gone",
    "task-listed-after-destroy": r"task\.get_all: a destroyed task must not be listed",
    "task-not-resident": r"task resident_on",
    "task-created-local-time": r"task created",
    "event-next-repeats": r"event\.next\(\) .*(not after \d+, the last id already answered)",
    "event-next-stale-snapshot": r"event\.next\(\) .*in the snapshot of vm vm\d+ \((add|mod)\)",
    "event-counts-empty": r"valid_ref_counts: no count of vm, task",
    "event-ids-not-generations": r"event id: \d+ of vm \(add\) is not after",
    "event-token-unpadded": r"token: '\d+,0' is not xapi's",
    "event-next-class-uppercase": r"event\.next\(\) .*event class: VM \(add\)",
    "event-wildcard-unmatched": r"event\.(from\(\['\*'\]|next\(\) registered to \['\*'\]).*never reported",
    "event-subscription-case-sensitive": r"event\.from\(\['VM'\].*never reported vm vm\d+",
    "event-inject-untouched": r"the token of event\.inject\('VM', vm\d+\)\): missing mod",
    "event-current-id-last": r"event\.get_current_id: \d+, not past \d+",
    "event-next-unregistered-handle": r"event\.next\(\) by session\d*.*, never registered: outcome",
    "event-from-token-lax": r"a token xapi cannot read \('[^']*'\) must fail",
    "event-token-unsigned": r"a token xapi reads \('\d+,-9223372036854775808'\) must not fail",
    "task-destroy-no-del": r"after task\.destroy: the destroyed task.s events: .*got nothing",
    "event-order-mods-first": r"event order: vm vm\d+ \(add\) answered after vm vm\d+ \(mod\)",
    "event-next-del-bare": r"event\.next\(\) .*the snapshot of vm vm\d+ \(del\): missing",
    "event-unregister-ignored": r"event\.next\(\) registered to \['vm'\]: .*task .* outside the subscription",
    "event-idle-object-repeated": r"event\.from\(\['vm/vm\d+'\], token\): .*vm.*\(mod\)",
}
"""Fault → what its divergence says (a regular expression)."""


def test_the_honest_server_conforms_to_the_events_area() -> None:
    connection = connect(_server())
    machine = type(
        "Events", (AREAS["events"],), {"connection": connection, "idle_wait_s": QUICK_IDLE_S}
    )
    run_state_machine_as_test(machine, settings=replace_settings(max_examples=40, phases=DETECT))
    cells = {k for k in connection.tally.coverage if k[0] == "event.from"}
    assert {("event.from", "vm", op) for op in ("add", "mod")} <= cells  # del: see below
    assert ("event.from", "task", "add") in cells
    assert {("event.next", "vm", op) for op in ("add", "mod")} <= set(connection.tally.coverage)


# ---- the reproducer of an event finding -------------------------------------------------------

REPLAYED = {
    "event-stale-snapshot": "catch_up(",
    "event-token-stuck": "call('event.from'",
    "event-ids-not-generations": "call('event.from'",
    "event-token-unpadded": "call('event.from'",
    "event-counts-empty": "call('event.from'",
    "event-next-class-uppercase": "next_catch_up(",
    "event-inject-untouched": "token = injected(",
    "event-no-del-on-destroy": "catch_up(",
    "event-next-repeats": "next_catch_up(",
    "event-next-stale-snapshot": "call('event.register'",
    "event-task-without-result": "task_event(",
    "task-not-resident": "task_record(",
    "task-created-local-time": "task_record(",
    "task-destroy-kept": "tasks[-1]",
    "task-listed-after-destroy": "task_listed(",
    "logout-keeps-session": "call('session.logout'",
    "event-next-unregistered-handle": "trackid(",
    "event-from-token-lax": "call('event.from'",
    "event-token-unsigned": "call('event.from'",
    "task-destroy-no-del": "task_del_event(",
    "event-order-mods-first": "catch_up(",
    "event-next-del-bare": "call('event.register'",
    "event-unregister-ignored": "call('event.unregister'",
    "event-idle-object-repeated": "catch_up(",
    "event-empty-subscription-everything": "catch_up(",
    "event-subscription-case-sensitive": "catch_up(",
}
"""Faults whose finding's reproducer is replayed both ways → what the script must hold (the
subscription, the task or the session it replays)."""


def _replayed(script: Path, fault: str | None) -> tuple[int, str]:
    """The script run in this process against a fresh embedded server (with ``fault``, if
    given): its exit status and what it printed."""
    faults = (fault,) if fault else ()
    running = start_in_thread(
        ServerConfig(password=PASSWORD, accounts=ROLE_ACCOUNTS, faults=faults)
    )
    try:
        return replayed(script, [running.url], {"XAPI_PASSWORD": PASSWORD})
    finally:
        running.stop()


def _found(fault: str) -> DivergenceInfo:
    """The divergence the ``ci`` profile's search for ``fault`` finds (as test_fault_detection
    finds every other sequential fault), checked: its area, and what it says."""
    info = found(fault)
    assert re.search(FOUND_BY_EVENTS.get(fault, ""), info.message), info.message
    return info


@pytest.mark.parametrize("fault", [fault for fault in FOUND_BY_EVENTS if fault not in REPLAYED])
def test_the_ci_profile_finds_the_fault(fault: str) -> None:
    _found(fault)


@pytest.mark.parametrize("fault", list(REPLAYED))
def test_an_event_findings_reproducer_replays_the_subscription(fault: str, tmp_path: Path) -> None:
    """The script replays what showed the fault (a subscription; for a task-record finding of
    the async area, the Async call and the ended task's record, not only the answer in it) and
    exits 1 on a server with the fault, 0 on the honest one."""
    script = tmp_path / "reproducer.py"
    script.write_text(_found(fault).reproducer)
    assert REPLAYED[fault] in script.read_text(), script.read_text()
    status, printed = _replayed(script, fault)
    assert status == 1, printed
    status, printed = _replayed(script, None)
    assert status == 0, printed


# ---- the faults on the event log itself --------------------------------------------------------


def _logs(fault: str) -> tuple[Driver, EventLog, EventLog, int]:
    d = driver()
    honest = EventLog(d.world)
    faulty = ServerState(d.world, (FAULTS[fault],)).events
    token = parse_token(honest.since(0, {"vm"}).token)
    assert token is not None
    return d, honest, faulty, token


def _recorded(d: Driver, *logs: EventLog) -> None:
    for log in logs:
        log.record(d.world)


def _ops(log: EventLog, since: int, classes: set[str]) -> list[tuple[str, str]]:
    return [(e.operation, e.ref) for e in log.since(since, classes).events]


def test_no_mod_after_a_power_change() -> None:
    d, honest, faulty, _ = _logs("event-no-mod-on-power-change")
    vm = d.new_vm()
    _recorded(d, honest, faulty)
    token = parse_token(honest.since(0, {"vm"}).token) or 0
    d.ok("VM.start", vm, False, False)
    _recorded(d, honest, faulty)
    assert _ops(honest, token, {"vm"}) == [("mod", vm)]
    assert _ops(faulty, token, {"vm"}) == []


def test_a_stale_snapshot() -> None:
    d, honest, faulty, _ = _logs("event-stale-snapshot")
    vm = d.new_vm()
    _recorded(d, honest, faulty)
    token = parse_token(honest.since(0, {"vm"}).token) or 0
    d.ok("VM.set_name_label", vm, "b")
    _recorded(d, honest, faulty)
    [right], [wrong] = honest.since(token, {"vm"}).events, faulty.since(token, {"vm"}).events
    assert right.snapshot and right.snapshot["name_label"] == "b"
    assert wrong.snapshot and wrong.snapshot["name_label"] == "test-vm"


def test_a_token_that_does_not_advance() -> None:
    d, honest, faulty, token = _logs("event-token-stuck")
    d.new_vm()
    _recorded(d, honest, faulty)
    assert parse_token(honest.since(token, {"vm"}).token) != token
    assert parse_token(faulty.since(token, {"vm"}).token) == token


def test_a_class_filter_ignored() -> None:
    d, honest, faulty, token = _logs("event-class-filter-ignored")
    a, b = d.new_vm(), d.new_vm()
    _recorded(d, honest, faulty)
    assert _ops(honest, token, {f"vm/{a}"}) == [("add", a)]
    assert ("add", b) in _ops(faulty, token, {f"vm/{a}"})


def test_a_subscription_matched_as_written() -> None:
    d, honest, faulty, token = _logs("event-subscription-case-sensitive")
    vm = d.new_vm()
    _recorded(d, honest, faulty)
    assert _ops(honest, token, honest.subscription(["VM"])) == [("add", vm)]
    assert _ops(faulty, token, faulty.subscription(["VM"])) == []
    assert _ops(faulty, token, faulty.subscription(["vm"])) == [("add", vm)]


def test_no_del_on_destroy() -> None:
    d, honest, faulty, _ = _logs("event-no-del-on-destroy")
    vm = d.new_vm()
    _recorded(d, honest, faulty)
    token = parse_token(honest.since(0, {"vm"}).token) or 0
    d.ok("VM.destroy", vm)
    _recorded(d, honest, faulty)
    assert _ops(honest, token, {"vm"}) == [("del", vm)]
    assert _ops(faulty, token, {"vm"}) == []


def test_task_events_without_their_result() -> None:
    d, honest, faulty, _ = _logs("event-task-without-result")
    task = d.ok("Async.VM.clone", d.new_vm(), "c")
    _recorded(d, honest, faulty)
    [right] = [e for e in honest.since(0, {"task"}).events if e.ref == task]
    [wrong] = [e for e in faulty.since(0, {"task"}).events if e.ref == task]
    assert right.snapshot and right.snapshot["result"] != ""
    assert wrong.snapshot and wrong.snapshot["result"] == ""


def _next_logs(fault: str) -> tuple[Driver, EventLog, EventLog, str]:
    """An honest and a faulty log, a session of the driver's registered to ``vm`` on both."""
    d, honest, faulty, _ = _logs(fault)
    session = next(iter(d.world.sessions))
    for log in (honest, faulty):
        log.register(session, {"vm"})
    return d, honest, faulty, session


def test_event_next_repeating_what_it_answered() -> None:
    d, honest, faulty, session = _next_logs("event-next-repeats")
    d.new_vm()
    _recorded(d, honest, faulty)
    first = [(e.id, e.operation) for e in honest.take_next(session) or ()]
    assert [(e.id, e.operation) for e in faulty.take_next(session) or ()] == first
    assert not honest.has_next(session)
    assert [(e.id, e.operation) for e in faulty.take_next(session) or ()] == first


def _next_of_a_vms_change(fault: str, *call: object) -> tuple[str, Event, Event]:
    """A VM, created and read by event.next; then ``call`` (its method, then its arguments after
    the VM): the one event event.next answers of it, honest and faulty."""
    d, honest, faulty, session = _next_logs(fault)
    vm = d.new_vm()
    _recorded(d, honest, faulty)
    for log in (honest, faulty):
        log.take_next(session)
    d.ok(str(call[0]), vm, *call[1:])
    _recorded(d, honest, faulty)
    [right], [wrong] = honest.take_next(session) or (), faulty.take_next(session) or ()
    return vm, right, wrong


def test_event_next_with_a_stale_snapshot() -> None:
    _vm, right, wrong = _next_of_a_vms_change("event-next-stale-snapshot", "VM.set_name_label", "b")
    assert right.snapshot and right.snapshot["name_label"] == "b"
    assert wrong.snapshot and wrong.snapshot["name_label"] == "test-vm"


def test_inject_changes_the_object_for_event_from_and_event_next() -> None:
    """xapi's event.inject touches the row (``Db_cache_impl.touch_row``): event.from from the
    token it answers reports a mod, and event.next one too (a RefreshRow event). The faulty
    log answers a token and changes nothing."""
    d, honest, faulty, session = _next_logs("event-inject-untouched")
    vm = d.new_vm()
    _recorded(d, honest, faulty)
    for log in (honest, faulty):
        log.take_next(session)
    for log, expected in ((honest, [("mod", vm)]), (faulty, [])):
        token = parse_token(log.inject("VM", vm) or "")
        assert token is not None and _ops(log, token, {"vm"}) == expected
        assert [(e.operation, e.ref) for e in log.take_next(session) or ()] == expected
    assert honest.inject("vm", vm) is None


def test_get_current_id_is_the_next_events_id() -> None:
    d, honest, faulty, session = _next_logs("event-current-id-last")
    d.new_vm()
    _recorded(d, honest, faulty)
    [event] = honest.take_next(session) or ()
    assert honest.current_id() == event.id + 1 == faulty.current_id() + 1


def test_event_next_unregistered_names_the_session_not_its_trackid() -> None:
    d, honest, faulty, _ = _logs("event-next-unregistered-handle")
    session = next(iter(d.world.sessions))
    assert honest.refusal(session) == Failure("SESSION_NOT_REGISTERED", (trackid(session),))
    assert faulty.refusal(session) == Failure("SESSION_NOT_REGISTERED", (session,))
    for log in (honest, faulty):
        log.register(session, {"vm"})
        assert log.refusal(session) is None


def test_a_token_that_cannot_be_parsed_read_from_scratch() -> None:
    _d, honest, faulty, _ = _logs("event-from-token-lax")
    failure = Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", ("1.5,0",))
    assert (honest.read_token("1.5,0"), faulty.read_token("1.5,0")) == (failure, 0)
    assert honest.read_token("00000000000000000003,0") == faulty.read_token("3,0") == 3


def test_a_token_at_the_edges_of_int64_refused() -> None:
    _d, honest, faulty, _ = _logs("event-token-unsigned")
    for token in ("3,-9223372036854775808", "3,9223372036854775807", "-1,0"):
        refused = Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", (token,))
        assert honest.read_token(token) != refused and faulty.read_token(token) == refused
    assert honest.read_token("3,0") == faulty.read_token("3,0") == 3


def test_a_destroyed_task_without_its_del() -> None:
    d, honest, faulty, _ = _logs("task-destroy-no-del")
    task = d.ok("Async.VM.clone", d.new_vm(), "c")
    _recorded(d, honest, faulty)
    token = parse_token(honest.since(0, {f"task/{task}"}).token) or 0
    d.ok("task.destroy", task)
    _recorded(d, honest, faulty)
    assert _ops(honest, token, {f"task/{task}"}) == [("del", task)]
    assert _ops(faulty, token, {f"task/{task}"}) == []


def test_mods_answered_before_adds() -> None:
    """xapi answers adds before mods; the faulty log answers a VM changed before another
    created, and the judge of the answer's order says so."""
    d, honest, faulty, token = _logs("event-order-mods-first")
    first = d.new_vm()
    _recorded(d, honest, faulty)
    since = parse_token(honest.since(token, {"vm"}).token) or 0
    d.ok("VM.set_name_label", first, "b")
    _recorded(d, honest, faulty)
    second = d.new_vm()
    _recorded(d, honest, faulty)
    assert _ops(honest, since, {"vm"}) == [("add", second), ("mod", first)]
    assert _ops(faulty, since, {"vm"}) == [("mod", first), ("add", second)]
    for log, wrong in ((honest, False), (faulty, True)):
        seen = [
            SeenEvent(e.cls, e.operation, e.ref, e.snapshot, str(e.id))
            for e in log.since(since, {"vm"}).events
        ]
        assert (order_mismatch(seen) is not None) == wrong


def test_event_next_dels_without_their_snapshot() -> None:
    """xapi's event.next del carries the record before the destroy (Eventgen's PreDelete)."""
    vm, right, wrong = _next_of_a_vms_change("event-next-del-bare", "VM.destroy")
    assert right.operation == wrong.operation == "del"
    assert right.snapshot is not None and right.snapshot["uuid"] and wrong.snapshot is None
    last = {"name_label": right.snapshot["name_label"]}
    for event, wrong_answer in ((right, False), (wrong, True)):
        seen = [SeenEvent("vm", "del", vm, event.snapshot, str(event.id))]
        assert (next_del_mismatch(seen, {vm: last}, str) is not None) == wrong_answer


def test_an_idle_poll_of_one_vm_answering_it_again() -> None:
    d, honest, faulty, _ = _logs("event-idle-object-repeated")
    vm = d.new_vm()
    _recorded(d, honest, faulty)
    token = parse_token(honest.since(0, {"vm"}).token) or 0
    assert _ops(honest, token, {f"vm/{vm}"}) == []
    assert _ops(faulty, token, {f"vm/{vm}"}) == [("mod", vm)]
    assert _ops(faulty, token, {"vm"}) == []


def test_event_unregister_that_changes_nothing() -> None:
    d, honest, faulty, session = _next_logs("event-unregister-ignored")
    for log in (honest, faulty):
        log.register(session, {"task"})
        log.register(session, {"task"}, add=False)
    task = d.ok("Async.VM.clone", d.new_vm(), "c")
    _recorded(d, honest, faulty)
    right, wrong = honest.take_next(session) or (), faulty.take_next(session) or ()
    assert {e.cls for e in right} == {"vm"}
    assert ("task", task) in {(e.cls, e.ref) for e in wrong}
