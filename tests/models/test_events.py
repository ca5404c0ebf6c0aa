"""What event.from and event.next answer after a sequence of worlds (models/events.py), as
xapi_event.ml's from_inner and Next decide: one event per object per answer, add/mod/del
coalesced, the snapshot the record now, tokens that advance and resume."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from models.events import (
    EventHistory,
    NextQueue,
    class_name,
    event_order,
    format_token,
    parse_token,
    read_token,
    snapshot_all,
    trackid,
    wanted,
)
from models.outcome import Failure
from tests.models.helpers import Driver, driver


def _history(d: Driver) -> EventHistory:
    return EventHistory.start(d.world)


def _step(history: EventHistory, d: Driver) -> EventHistory:
    return history.record(d.world)[0]


def _ops(history: EventHistory, since: int, classes: list[str]) -> list[tuple[str, str, str]]:
    return [(e.cls, e.operation, e.ref) for e in history.since(since, classes).events]


def test_a_created_then_changed_vm_is_one_add_with_the_record_after_the_change() -> None:
    d = driver()
    history = _history(d)
    vm = d.new_vm()
    history = _step(history, d)
    d.ok("VM.start", vm, False, False)
    history = _step(history, d)
    [event] = history.since(1, ["vm"]).events
    assert (event.operation, event.ref) == ("add", vm)
    assert event.snapshot is not None and event.snapshot["power_state"] == "Running"


def test_a_change_since_the_token_is_a_mod_and_a_destroy_a_del_without_snapshot() -> None:
    d = driver()
    vm = d.new_vm()
    history = _history(d)
    token = history.generation
    d.ok("VM.set_name_label", vm, "renamed")
    history = _step(history, d)
    [mod] = history.since(token, ["vm"]).events
    assert (mod.operation, mod.snapshot and mod.snapshot["name_label"]) == ("mod", "renamed")
    token = history.generation
    d.ok("VM.destroy", vm)
    history = _step(history, d)
    [gone] = history.since(token, ["vm"]).events
    assert (gone.operation, gone.ref, gone.snapshot) == ("del", vm, None)


def test_an_object_created_and_destroyed_between_two_polls_is_not_reported() -> None:
    d = driver()
    history = _history(d)
    vm = d.new_vm()
    history = _step(history, d)
    d.ok("VM.destroy", vm)
    history = _step(history, d)
    assert _ops(history, 1, ["vm"]) == []


def test_an_object_created_and_destroyed_since_the_token_does_not_move_it() -> None:
    """``Table.fold_over_deleted`` skips a row created after the token: nothing matched, the
    token stays where it was."""
    d = driver()
    history = _history(d)
    since = history.generation
    vm = d.new_vm()
    history = _step(history, d)
    d.ok("VM.destroy", vm)
    history = _step(history, d)
    assert history.generation > since
    assert history.since(since, ["vm"]).events == ()
    assert history.since(since, ["vm"]).token == format_token(since)
    # a token that stopped inside the VM's life (another object changed then) has its del
    # a poll late: in doubt for a token between ``since`` and now
    assert ("vm", vm) in history.deletions_in_doubt(since, history.generation, ["vm"])
    assert history.deletions_in_doubt(since, since, ["vm"]) == set()
    assert history.deletions_in_doubt(history.generation, history.generation, ["vm"]) == set()


def test_an_answer_holds_adds_then_mods_then_dels_newest_first() -> None:
    """``Xapi_event.from_inner``: adds and mods in class then ref order, dels newest first."""
    d = driver()
    old = [d.new_vm() for _ in range(3)]
    history = _history(d)
    since = history.generation
    new = sorted([d.new_vm(), d.new_vm()])
    history = _step(history, d)
    for vm in (old[0], old[2], old[1]):
        d.ok("VM.destroy", vm)
        history = _step(history, d)
    events = history.since(since, ["vm"]).events
    assert [(e.operation, e.ref) for e in events] == [
        *(("add", vm) for vm in new),
        *(("del", vm) for vm in (old[1], old[2], old[0])),
    ]
    assert list(events) == sorted(events, key=event_order)


@pytest.mark.parametrize(
    ("token", "generation"),
    [
        ("", 0),
        ("00000000000000000042,00000000000000000000", 42),
        ("42,0", 42),
        ("-1,0", -1),
        ("+7,0", 7),
        ("0x10,0", 16),
        ("1_000,0b1", 1000),
        ("9223372036854775807,0", 2**63 - 1),
        ("0xffffffffffffffff,0", -1),
    ],
)
def test_a_token_xapi_reads(token: str, generation: int) -> None:
    """``Token.of_string``: two parts, each OCaml's ``Int64.of_string``."""
    assert parse_token(token) == generation


@pytest.mark.parametrize(
    "token",
    ["abc", "1", "1,2,3", ",", "1,", "x,0", "_1,0", "9223372036854775808,0", "\u0661,0", " 1,0"],
)
def test_a_token_xapi_cannot_parse(token: str) -> None:
    """EVENT_FROM_TOKEN_PARSE_FAILURE: what OCaml's ``Int64.of_string`` refuses."""
    assert parse_token(token) is None
    assert read_token(token) == Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", (token,))


def test_a_token_read_is_its_generation() -> None:
    assert read_token("00000000000000000007,00000000000000000000") == 7
    assert read_token("") == 0


def test_tokens_advance_and_an_old_token_resumes_with_everything_since() -> None:
    d = driver()
    history = _history(d)
    first = parse_token(history.since(0, ["vm"]).token)
    assert first == history.generation
    a = d.new_vm()
    history = _step(history, d)
    middle = parse_token(history.since(1, ["vm"]).token)
    assert middle is not None and middle > 1
    b = d.new_vm()
    history = _step(history, d)
    assert _ops(history, middle, ["vm"]) == [("vm", "add", b)]
    assert {r for _c, _o, r in _ops(history, 1, ["vm"])} == {a, b}


def test_nothing_since_the_token_is_an_empty_answer_with_the_same_token() -> None:
    d = driver()
    d.new_vm()
    history = _history(d)
    batch = history.since(history.generation, ["*"])
    assert batch.events == () and batch.token == format_token(history.generation)


def test_class_filters_vm_one_vm_star_and_task() -> None:
    d = driver()
    history = _history(d)
    a, b = d.new_vm(), d.new_vm()
    task = d.ok("Async.VM.clone", a, "copy")
    history = _step(history, d)
    assert {r for _c, _o, r in _ops(history, 1, ["vm"])} >= {a, b}
    assert _ops(history, 1, [f"vm/{a}"]) == [("vm", "add", a)]
    assert _ops(history, 1, ["task"]) == [("task", "add", task)]
    assert {c for c, _o, _r in _ops(history, 1, ["*"])} >= {"vm", "task"}
    assert class_name("VM/OpaqueRef:Ab") == "vm/OpaqueRef:Ab"
    assert wanted("vm", a, ["*"]) and not wanted("host", a, ["vm"])


def test_the_task_of_an_async_call_is_reported_finished_with_its_result() -> None:
    d = driver()
    vm = d.new_vm()
    history = _history(d)
    task = d.ok("Async.VM.clone", vm, "copy")
    history = _step(history, d)
    [event] = history.since(1, ["task"]).events
    assert event.ref == task and event.snapshot is not None
    assert event.snapshot["status"] == "success" and event.snapshot["progress"] == 1.0
    assert event.snapshot["resident_on"] == d.world.pool.master  # taskHelper.ml make
    assert event.snapshot["finished"] == event.snapshot["created"]


def test_a_pending_task_has_not_finished() -> None:
    """taskHelper.ml make: ``~finished:Date.epoch`` until the task completes."""
    from dataclasses import replace

    from models.others import task_record
    from models.records import EPOCH

    d = driver()
    task = d.ok("Async.VM.clone", d.new_vm(), "copy")
    pending = replace(d.world.tasks[task], status="pending")
    assert task_record(pending)["finished"] == EPOCH and task_record(pending)["progress"] == 0.0


def test_valid_ref_counts_count_live_objects_and_sessions() -> None:
    d = driver()
    history = _history(d)
    before = history.counts()["vm"]
    d.new_vm()
    counts = _step(history, d).counts()
    assert counts["vm"] == before + 1 and counts["session"] == len(d.world.sessions)


def test_inject_makes_a_mod_after_the_token_it_answers() -> None:
    d = driver()
    vm = d.new_vm()
    history = _history(d)
    injected = history.inject("VM", vm)
    assert injected is not None and history.inject("VM", "OpaqueRef:nope") is None
    assert history.inject("vm", vm) is None  # the table's name, case and all
    after, change = injected
    assert _ops(after, after.generation - 1, ["vm"]) == [("vm", "mod", vm)]
    assert (change.key, change.operation) == (("vm", vm), "mod")


def test_event_next_before_event_register_is_refused_with_the_sessions_trackid() -> None:
    """``Next.assert_subscribed``: SESSION_NOT_REGISTERED [trackid=<MD5 of the ref>], the ref
    itself never shown; event.unregister makes a subscription too."""
    session = "OpaqueRef:0b6c5d1e-0000-4000-8000-000000000001"
    queue = NextQueue()
    md5 = "6523974f7207274d8ef6c94e80c563bd"  # of the ref's text
    assert trackid(session) == f"trackid={md5}"
    assert queue.refusal(session) == Failure("SESSION_NOT_REGISTERED", (f"trackid={md5}",))
    assert queue.register(session, ["vm"]).refusal(session) is None
    assert queue.register(session, ["vm"], add=False).refusal(session) is None


def test_event_next_queues_what_a_registered_session_wants_until_it_ends() -> None:
    d = driver()
    history, queue = _history(d), NextQueue().register(d.session, ["vm"])
    vm = d.new_vm()
    history, found = history.record(d.world)
    queue = queue.record(found, d.world, "1.")
    queue, events = queue.take(d.session)
    assert events is not None and [(e.operation, e.ref) for e in events] == [("add", vm)]
    assert queue.take(d.session)[1] == ()
    d.ok("session.logout")
    history, found = history.record(d.world)
    assert queue.record(found, d.world, "2.").take(d.session)[1] is None


WORLD_STEPS = st.lists(
    st.sampled_from(["create", "start", "rename", "destroy", "clone"]), max_size=8
)


def _act(d: Driver, action: str) -> None:
    vms = [r for r, vm in d.world.vms.items() if not vm["is_control_domain"]]
    if action == "create" or not vms:
        d.new_vm()
    elif action == "destroy":
        d.call("VM.destroy", vms[-1])
    elif action == "start":
        d.call("VM.start", vms[0], False, False)
    elif action == "clone":
        d.call("VM.clone", vms[0], "c")
    else:
        d.call("VM.set_name_label", vms[0], f"n{len(vms)}")


@settings(max_examples=40, deadline=None)
@given(WORLD_STEPS, WORLD_STEPS)
def test_an_answer_is_the_coalesced_difference_since_the_token(
    before: list[str], after: list[str]
) -> None:
    """Every object at most once: add for new, mod for changed, del for gone, its record now."""
    d = driver()
    history = _history(d)
    for action in before:
        _act(d, action)
        history = _step(history, d)
    token, then = history.generation, snapshot_all(d.world)
    for action in after:
        _act(d, action)
        history = _step(history, d)
    now = snapshot_all(d.world)
    answered = {(e.cls, e.ref): e for e in history.since(token, ["*"]).events}
    assert len(answered) == len(history.since(token, ["*"]).events)
    for key, event in answered.items():
        assert event.operation == ("del" if key not in now else "mod" if key in then else "add")
        assert event.snapshot == now.get(key)
    changed = {k for k in now if then.get(k) != now[k]} | (then.keys() - now.keys())
    assert changed <= answered.keys()


def test_a_fact_learnt_restates_the_history_without_a_change() -> None:
    """Guest drivers unknown: a refused clean shutdown shows the guest has none, and the model's
    records of every running VM then say so (allowed_operations); the target's records did not
    change, so the history restated under the fact reports nothing."""
    from models.checks import assume_drivers
    from models.outcome import Failure
    from models.world import Facts

    d = driver(facts=Facts(guest_has_pv_drivers=None))
    a = d.in_state("Running")
    d.in_state("Running")
    history = _history(d)
    token = history.generation
    refused = [
        x for x in d.branches("VM.clean_shutdown", d.session, a) if isinstance(x.outcome, Failure)
    ]
    assert refused and refused[0].world.facts.guest_has_pv_drivers is False
    learnt = refused[0].world
    assert history.record(learnt)[0].since(token, ["vm"]).events  # the records' change shows
    restated = history.restated(assume_drivers(history.world, False))
    assert _ops(restated.record(learnt)[0], token, ["vm"]) == []
