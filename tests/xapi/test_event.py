"""Ported from xapi's ocaml/tests/test_event.ml and ocaml/quicktest/quicktest_event.ml.

event.from and event.inject are the embedded server's (the model has no event log), so these
run over XML-RPC and JSON-RPC only, as do the legacy event.register/event.next. Messages
(alerts) and VBDs are not modelled: those expectations are xfails.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest

from models.outcome import Failure, Success
from models.releases import DEFAULT_RELEASE, database_tables, release
from tests.xapi.conftest import PASSWORD, WIRE, Api, login_as, make_api
from tests.xapi.oracle import missing

WAIT_S = 60.0
"""The longest a test waits for what follows from what it did (a long poll starting to wait)."""


def _from(api: Api, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
    batch = api.ok("event.from", classes, token, timeout)
    assert isinstance(batch, dict)
    return batch


def _waited(api: Api, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
    """event.from that was not ready when it came: it waited, and with nothing changed only its
    timeout could end the wait (no clock read by the test)."""
    waited = api.state.events.waited
    batch = _from(api, classes, token, timeout)
    assert api.state.events.waited == waited + 1, "event.from answered without waiting"
    return batch


def test_event_from_ev(wire_api: Api) -> None:
    """test_event.ml test_event_from_ev: creating a VM makes one event naming it."""
    token = _from(wire_api, ["vm"], "", 30.0)["token"]
    vm = wire_api.new_vm()
    events = [e for e in _from(wire_api, ["vm"], token, 4.0)["events"] if e["class"] == "vm"]
    assert [e["ref"] for e in events] == [vm]


def test_event_from_ev_rel(wire_api: Api) -> None:
    """test_event.ml test_event_from_ev_rel: a VBD's creation is an event on the VBD and VM."""
    missing(wire_api, "VBD.get_all", reason="the model has no VBDs")


def test_event_from_timeout(wire_api: Api) -> None:
    """test_event.ml test_event_from_timeout: with nothing new, event.from waits its timeout."""
    token = _from(wire_api, ["vm"], "", 30.0)["token"]
    batch = _waited(wire_api, ["vm"], token, 1.0)
    assert batch["events"] == ()


@pytest.mark.parametrize(
    "source",
    ["test_event.ml test_event_next_unblock", "quicktest_event.ml event_next_unblocking_test"],
)
def test_event_next_unblocks_on_logout(wire_api: Api, source: str) -> None:
    """event_next_unblocking_test: registered for no class, event.next blocks; the session's
    logout wakes it with an error (Xapi_event.Next.wait: SESSION_INVALID)."""
    del source
    session = login_as(wire_api, "root", PASSWORD)
    assert session.ok("event.register", []) == ""
    answers: list[Any] = []
    waiter = threading.Thread(
        target=lambda: answers.append(session.call("event.next")), daemon=True
    )
    waiter.start()
    assert wire_api.state.events.wait_for_waiters(1, WAIT_S)  # nothing to answer: it waits
    session.raw("session.logout", session.session)
    waiter.join(timeout=WAIT_S)
    assert answers == [Failure("SESSION_INVALID", (session.session,))]


@pytest.mark.parametrize(
    "source", ["test_event.ml test_event_next", "quicktest_event.ml event_next_test"]
)
def test_event_next_sees_a_pool_other_config_change(wire_api: Api, source: str) -> None:
    """event_next_test: registered for pool, event.next answers once pool.other_config gains
    the key (events as xapi's event structs: string ids, add/mod/del, the record)."""
    del source
    session = login_as(wire_api, "root", PASSWORD)
    session.ok("event.register", ["pool"])
    pool = session.ok("pool.get_all")[0]
    seen: list[Any] = []

    def watch() -> None:
        while not seen:
            events = session.call("event.next")
            if not isinstance(events, Success):
                return
            other = session.ok("pool.get_other_config", pool)
            if other.get("event_next_test") == "1":
                seen.extend(events.value)  # type: ignore[arg-type]

    waiter = threading.Thread(target=watch, daemon=True)
    waiter.start()
    assert wire_api.state.events.wait_for_waiters(1, WAIT_S)  # the change wakes it
    session.ok("pool.add_to_other_config", pool, "event_next_test", "1")
    waiter.join(timeout=WAIT_S)
    assert [(e["class"], e["operation"], e["ref"]) for e in seen] == [("pool", "mod", pool)]
    assert isinstance(seen[0]["id"], str)
    assert seen[0]["snapshot"]["other_config"]["event_next_test"] == "1"
    session.raw("session.logout", session.session)


def test_event_next_needs_a_registration(wire_api: Api) -> None:
    """Xapi_event.next: assert_subscribed, SESSION_NOT_REGISTERED [trackid=<md5 of the ref>]."""
    failure = wire_api.fails("event.next")
    digest = hashlib.md5(wire_api.session.encode(), usedforsecurity=False).hexdigest()
    assert failure == Failure("SESSION_NOT_REGISTERED", (f"trackid={digest}",))


def test_get_current_id_counts_the_events_queued_for_event_next(wire_api: Api) -> None:
    """xapi_event.ml get_current_id: Next.id, which Next.add bumps once per change some
    event.register subscription wants (others are dropped); event.next's events carry the ids
    below it, in order (event_add takes the id before the bump)."""
    start = int(wire_api.ok("event.get_current_id"))
    vm = wire_api.new_vm()
    assert int(wire_api.ok("event.get_current_id")) == start  # nobody registered: dropped
    wire_api.ok("event.register", ["vm"])
    wire_api.ok("VM.set_name_label", vm, "seen")
    wire_api.ok("VM.set_name_description", vm, "seen too")
    assert int(wire_api.ok("event.get_current_id")) == start + 2
    events = wire_api.ok("event.next")
    assert [int(e["id"]) for e in events] == [start, start + 1]


def test_logout_ends_the_event_next_subscription(wire_api: Api) -> None:
    """xapi_event.ml on_session_deleted → Next.on_session_deleted: the logged-out session's
    subscription is removed, so its classes no longer queue events (get_current_id, read by
    another session, stands still)."""
    other = login_as(wire_api, "root", PASSWORD)
    other.ok("event.register", ["vm"])
    vm = wire_api.new_vm()
    queued = int(wire_api.ok("event.get_current_id"))
    wire_api.ok("VM.set_name_label", vm, "queued for the other session")
    assert int(wire_api.ok("event.get_current_id")) == queued + 1
    other.raw("session.logout", other.session)
    wire_api.ok("VM.set_name_label", vm, "after its logout")
    assert int(wire_api.ok("event.get_current_id")) == queued + 1


def _pool_key_seen(api: Api, token: str, key: str) -> bool:
    for _ in range(5):
        batch = _from(api, ["pool"], token, 5.0)
        token = batch["token"]
        for event in batch["events"]:
            if key in event.get("snapshot", {}).get("other_config", {}):
                return True
    return False


@pytest.mark.parametrize(
    "source", ["test_event.ml test_event_from", "quicktest_event.ml event_from_test"]
)
def test_event_from_sees_a_pool_other_config_change(wire_api: Api, source: str) -> None:
    """event_from_test: a waiting event.from(["pool"]) sees pool.other_config gain a key."""
    del source
    pool = wire_api.ok("pool.get_all")[0]
    token = _from(wire_api, ["pool"], "", 5.0)["token"]
    seen: list[bool] = []
    waiter = threading.Thread(target=lambda: seen.append(_pool_key_seen(wire_api, token, "k")))
    waiter.start()  # the change shows from the token whether it comes before the wait or in it
    wire_api.ok("pool.add_to_other_config", pool, "k", "1")
    waiter.join(timeout=WAIT_S)
    assert seen == [True]


@pytest.mark.parametrize(
    "source",
    ["test_event.ml test_event_from_parallel", "quicktest_event.ml event_from_parallel_test"],
)
def test_event_from_parallel(wire_api: Api, source: str) -> None:
    """event_from_parallel_test: one event.from does not cancel another waiting one."""
    del source
    pool = wire_api.ok("pool.get_all")[0]
    token = _from(wire_api, ["pool"], "", 5.0)["token"]
    errors: list[str] = []
    seen: list[bool] = []

    def plain() -> None:
        outcome = wire_api.call("event.from", [], "", 2.0)
        if not hasattr(outcome, "value"):
            errors.append(str(outcome))

    first = threading.Thread(target=plain)
    second = threading.Thread(target=lambda: seen.append(_pool_key_seen(wire_api, token, "p")))
    first.start()
    second.start()
    wire_api.ok("pool.add_to_other_config", pool, "p", "1")
    second.join(timeout=WAIT_S)
    first.join(timeout=WAIT_S)
    assert errors == []
    assert seen == [True]


@pytest.mark.parametrize(
    "source",
    ["test_event.ml test_event_object_level_event", "quicktest_event.ml object_level_event_test"],
)
def test_object_level_event(wire_api: Api, source: str) -> None:
    """object_level_event_test: a vm/REF subscription sees only that VM's changes."""
    del source
    vm_a, vm_b = wire_api.new_vm(name_label="vm_a"), wire_api.new_vm(name_label="vm_b")
    token = _from(wire_api, [f"vm/{vm_a}"], "", 5.0)["token"]
    key = "object_level_event_next"
    wire_api.ok("VM.add_to_other_config", vm_b, key, "1")
    wire_api.ok("VM.remove_from_other_config", vm_b, key)
    wire_api.ok("VM.add_to_other_config", vm_a, key, "1")
    events = _from(wire_api, [f"vm/{vm_a}"], token, 5.0)["events"]
    assert events and {e["ref"] for e in events} == {vm_a}
    assert events[-1]["snapshot"]["other_config"][key] == "1"


def test_event_message(wire_api: Api) -> None:
    """quicktest_event.ml event_message_test: message.create shows as an event on messages."""
    missing(wire_api, "message.get_all", reason="the model has no messages (alerts)")


def test_event_inject(wire_api: Api) -> None:
    """quicktest_event.ml event_inject_test: event.inject wakes a waiting event.from."""
    token = _from(wire_api, ["pool"], "", 1.0)["token"]
    pool = wire_api.ok("pool.get_all")[0]
    batches: list[dict[str, Any]] = []
    waiter = threading.Thread(target=lambda: batches.append(_from(wire_api, ["pool"], token, 60.0)))
    waiter.start()  # the inject shows from the token whether it comes before the wait or in it
    wire_api.ok("event.inject", "pool", pool)
    waiter.join(timeout=WAIT_S)
    [batch] = batches  # a wait the inject did not wake would have ended with no event
    assert [(e["class"], e["ref"]) for e in batch["events"]] == [("pool", pool)]


def test_event_from_number(wire_api: Api) -> None:
    """quicktest_event.ml event_from_number_test: no object is seen twice in one batch."""
    for _ in range(3):
        vm = wire_api.new_vm()
        wire_api.ok("VM.set_name_label", vm, "renamed")
    refs = [e["ref"] for e in _from(wire_api, ["vm"], "", 10.0)["events"]]
    assert len(refs) == len(set(refs))


# ---- what one event.from answers, read from xapi_event.ml (from_inner, collect_events) ------


def _events_of(api: Api, classes: list[str], token: str, ref: str) -> list[dict[str, Any]]:
    return [e for e in _from(api, classes, token, 1.0)["events"] if e["ref"] == ref]


def test_created_then_modified_is_one_add_with_the_record_now(wire_api: Api) -> None:
    """xapi_event.ml collect_events: an object created since the token is an add, whatever
    changed after; its snapshot is the record as it is now, its id the creation's generation."""
    token = _from(wire_api, ["vm"], "", 5.0)["token"]
    vm = wire_api.new_vm(name_label="first")
    wire_api.ok("VM.set_name_label", vm, "second")
    [event] = _events_of(wire_api, ["vm"], token, vm)
    assert event["operation"] == "add"
    assert event["snapshot"]["name_label"] == "second"


def test_created_then_destroyed_is_no_event(wire_api: Api) -> None:
    """xapi_event.ml collect_events: a deleted object is a del only if it existed at the token;
    created and destroyed since, it is not seen at all (the poll waits on)."""
    token = _from(wire_api, ["vm"], "", 5.0)["token"]
    vm = wire_api.new_vm()
    wire_api.ok("VM.destroy", vm)
    assert _events_of(wire_api, ["vm"], token, vm) == []


def test_modified_then_destroyed_is_one_del_without_snapshot(wire_api: Api) -> None:
    """xapi_event.ml from_inner: deletes are events_of ~with_snapshot:false, so a del carries
    no snapshot field at all."""
    vm = wire_api.new_vm()
    token = _from(wire_api, ["vm"], "", 5.0)["token"]
    wire_api.ok("VM.set_name_label", vm, "renamed")
    wire_api.ok("VM.destroy", vm)
    [event] = _events_of(wire_api, ["vm"], token, vm)
    assert event["operation"] == "del" and "snapshot" not in event


def test_event_ids_are_strings_and_timestamps_zero(wire_api: Api) -> None:
    """Event_types.event: id and timestamp are strings; from_inner sets ts to "0.0" and the id
    to the generation of the change, so ids grow with later changes."""
    token = _from(wire_api, ["vm"], "", 5.0)["token"]
    first, second = wire_api.new_vm(), wire_api.new_vm()
    events = {e["ref"]: e for e in _from(wire_api, ["vm"], token, 1.0)["events"]}
    for event in events.values():
        assert isinstance(event["id"], str) and event["id"].isdigit()
        assert event["timestamp"] == "0.0"
    assert int(events[first]["id"]) < int(events[second]["id"])


def test_valid_ref_counts_are_int32(wire_api: Api) -> None:
    """Event_types.rpc_of_event_from: counts are Rpc.Int32, <i4> over XML-RPC (a bare int64
    would read back as a string) and a number over JSON-RPC; one per table, live objects only."""
    vm = wire_api.new_vm()
    counts = _from(wire_api, ["vm"], "", 5.0)["valid_ref_counts"]
    assert all(type(count) is int for count in counts.values())
    before = counts["vm"]
    wire_api.ok("VM.destroy", vm)
    assert _from(wire_api, ["vm"], "", 5.0)["valid_ref_counts"]["vm"] == before - 1


@pytest.mark.parametrize(
    ("xapi_version", "absent", "present"),
    [
        ("", (), ("caller", "rate_limit", "host_driver", "vm_group", "observer")),
        ("24.19", ("caller", "rate_limit", "host_driver"), ("vm_group", "observer", "repository")),
        ("1.249", ("vm_group", "observer", "repository"), ("certificate", "diagnostics")),
    ],
    ids=["newest", "24.19", "1.249"],
)
@pytest.mark.parametrize("protocol", WIRE)
def test_valid_ref_counts_name_every_table_of_the_release(
    protocol: str, xapi_version: str, absent: tuple[str, ...], present: tuple[str, ...]
) -> None:
    """xapi_event.ml from_inner: valid_ref_counts folds over every table of the database
    (Datamodel_schema.of_datamodel: one per class of Datamodel.all_system), lower-cased, zeros
    included, whatever the classes subscribed; the tables are those of the release (Caller
    and Rate_limit from 26.17, Host_driver from 25.3, VM_group from 24.19). Sessions are rows
    too: the caller's own counts."""
    api = make_api(protocol, xapi_version)
    counts = _from(api, ["vm"], "", 0.1)["valid_ref_counts"]
    chosen = release(xapi_version) if xapi_version else DEFAULT_RELEASE
    assert set(counts) == set(database_tables(chosen))
    assert not set(absent) & set(counts)
    assert set(present) <= set(counts)
    assert counts["session"] == 1 and counts["pif"] == 0
    login_as(api, "ro", "ro-pw")
    assert _from(api, ["task"], "", 0.1)["valid_ref_counts"]["session"] == 2


@pytest.mark.parametrize(
    ("cls", "valid"),
    [("VM", True), ("vm", False), ("pool", False), ("SR", False), ("Vm", False)],
)
def test_event_inject_wants_the_table_name_of_the_ref(wire_api: Api, cls: str, valid: bool) -> None:
    """xapi_event.ml inject: the ref's table must equal the class exactly (table names: "VM",
    "SR", "pool"...), else HANDLE_INVALID [class; ref]; the token returned sees the change."""
    vm = wire_api.new_vm()
    outcome = wire_api.call("event.inject", cls, vm)
    if not valid:
        assert outcome == Failure("HANDLE_INVALID", (cls, vm))
        return
    assert isinstance(outcome, Success) and isinstance(outcome.value, str)
    [event] = _events_of(wire_api, ["vm"], outcome.value, vm)
    assert event["operation"] == "mod"


def test_an_empty_token_waits_when_nothing_matches(wire_api: Api) -> None:
    """xapi_event.ml Token.of_string: "" is generation 0, polled as any token: with no object
    in the subscription, event.from waits its timeout and answers no events."""
    batch = _waited(wire_api, ["vm/OpaqueRef:none"], "", 1.0)
    assert batch["events"] == ()
