"""The diff: strictness, shape-only fields, typing of target answers, refs and waivers."""

from __future__ import annotations

import datetime
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conformance.errors import UsageError
from conformance.judge.compare import (
    SHAPE_ONLY_FIELDS,
    AnswerRules,
    field_mismatch,
    outcome_mismatch,
    typed_outcome,
    value_mismatch,
    wire_mismatch,
)
from conformance.judge.divergence import DivergenceInfo
from conformance.judge.memo import IdentityMemo
from conformance.judge.refs import RefMap
from conformance.judge.waivers import Waiver, Waivers, load_waivers
from models import catalogue
from models.outcome import Failure, Outcome, Success, Value
from models.schema import XType

if TYPE_CHECKING:
    from conformance.engine.harness import Harness

BPS = Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a", "halted", "running"))


@pytest.mark.parametrize(
    ("actual", "strictness", "differs"),
    [
        (BPS, "exact", False),
        (Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a", "halted", "paused")), "exact", True),
        (Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a", "halted", "paused")), "arity", False),
        (Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a",)), "arity", True),
        (Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a",)), "code", False),
        (Failure("OPERATION_BLOCKED", ()), "code", True),
        (Success(""), "code", True),
    ],
)
def test_strictness(actual: Failure | Success, strictness: str, differs: bool) -> None:
    mismatch = outcome_mismatch(BPS, actual, returns=XType("void"), strictness=strictness)  # type: ignore[arg-type]
    assert (mismatch is not None) == differs


def test_shape_only_fields_are_real_fields_with_reasons() -> None:
    assert set(SHAPE_ONLY_FIELDS) <= set(catalogue.FIELDS)
    assert all(reason for reason in SHAPE_ONLY_FIELDS.values())


@pytest.mark.parametrize(
    ("field", "expected", "good", "bad"),
    [
        (
            "uuid",
            "11111111-2222-4333-8444-555555555555",
            "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
            "nope",
        ),
        ("domid", -1, -1, 7),
        ("domid", 3, 12, -1),
        ("resident_on", "OpaqueRef:NULL", "OpaqueRef:NULL", "OpaqueRef:h"),
        ("resident_on", "OpaqueRef:h1", "OpaqueRef:h2", "OpaqueRef:NULL"),
        ("blobs", {"a": "OpaqueRef:1"}, {"a": "OpaqueRef:2"}, {}),
        ("metrics", "OpaqueRef:m1", "OpaqueRef:m2", "OpaqueRef:NULL"),
        ("metrics", "OpaqueRef:NULL", "OpaqueRef:NULL", "OpaqueRef:m"),
        (
            "snapshot_time",
            datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC),
            datetime.datetime(2026, 1, 1, 12, 0, 40, tzinfo=datetime.UTC),
            "x",
        ),
    ],
)
def test_shape_only_rules_accept_shape_and_reject_nonsense(
    field: str, expected: object, good: object, bad: object
) -> None:
    assert not field_mismatch(field, expected, good)  # type: ignore[arg-type]
    assert field_mismatch(field, expected, bad)  # type: ignore[arg-type]


def test_snapshot_time_is_the_epoch_or_the_time_of_the_call() -> None:
    """copy_vm_record: Date.epoch for anything but a snapshot, Date.now () for one."""
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    taken = datetime.datetime(2026, 1, 1, 12, tzinfo=datetime.UTC)
    assert not field_mismatch("snapshot_time", epoch, epoch)
    assert field_mismatch("snapshot_time", epoch, taken)
    assert field_mismatch("snapshot_time", taken, epoch)
    assert not field_mismatch("snapshot_time", taken, taken - datetime.timedelta(minutes=4))
    assert field_mismatch("snapshot_time", taken, taken + datetime.timedelta(hours=1))


def test_memory_overhead_and_its_messages_are_exact() -> None:
    """memory_check.ml: the overhead is a function of the record and the release."""
    assert field_mismatch("memory_overhead", 13 * 2**20, 12 * 2**20)
    assert not field_mismatch("memory_overhead", 13 * 2**20, 13 * 2**20)
    assert not AnswerRules.of("VM.compute_memory_overhead").shape_only
    assert not AnswerRules.of("VM.maximise_memory").shape_only


def test_exact_fields_and_unordered_sets() -> None:
    assert field_mismatch("name_label", "a", "b")
    assert not field_mismatch("allowed_operations", ("start", "clone"), ("clone", "start"))
    assert field_mismatch("allowed_operations", ("start", "clone"), ("clone",))
    assert not field_mismatch(
        "other_config", {"mac_seed": "x", "k": "v"}, {"mac_seed": "y", "k": "v"}
    )
    assert field_mismatch("other_config", {"mac_seed": "x"}, {})


def test_target_answers_are_typed_by_the_declared_return_type() -> None:
    typed = typed_outcome(Success("1073741824"), catalogue.message("get_memory_static_max").returns)
    assert typed == Success(1073741824)
    record = typed_outcome(
        Success({"VCPUs_max": "2", "name_label": "x"}), XType("record", name="VM")
    )
    assert record == Success({"VCPUs_max": 2, "name_label": "x"})


def test_ref_map_binds_both_ways_and_names_suite_objects() -> None:
    refs = RefMap()
    refs.bind("OpaqueRef:model", "OpaqueRef:target")
    assert refs.to_target(("OpaqueRef:model", "x")) == ("OpaqueRef:target", "x")
    assert refs.outcome_to_model(Failure("HANDLE_INVALID", ("VM", "OpaqueRef:target"))) == Failure(
        "HANDLE_INVALID", ("VM", "OpaqueRef:model")
    )
    assert refs.display("OpaqueRef:model") == "vm1"


def test_a_map_read_again_maps_as_before_until_a_ref_in_it_is_bound() -> None:
    """The model view of a map the target answers again unchanged (the very same decoded
    map) is the one worked out before, while no bind came between."""
    refs = RefMap()
    answer = {"OpaqueRef:target-1": {"parent": "OpaqueRef:target-2"}}
    first = refs.to_model(answer)
    assert refs.to_model(answer) is first == answer
    refs.bind("OpaqueRef:model-2", "OpaqueRef:target-2")
    again = refs.to_model(answer)
    assert again == {"OpaqueRef:target-1": {"parent": "OpaqueRef:model-2"}}
    assert refs.to_model(dict(answer)) is not again  # an equal map is mapped anew


def test_a_record_read_again_in_another_map_maps_as_before_until_a_ref_in_it_is_bound() -> None:
    """A map of records (a pool's) maps each record through the same memory: a record that
    comes back unchanged in the next answer (the very same decoded record) maps as before."""
    refs = RefMap()
    kept, changed = {"parent": "OpaqueRef:target-2"}, {"parent": "OpaqueRef:NULL"}
    first = refs.to_model({"OpaqueRef:target-1": kept, "OpaqueRef:target-3": changed})
    second = refs.to_model({"OpaqueRef:target-1": kept, "OpaqueRef:target-3": {"parent": ""}})
    assert isinstance(first, dict) and isinstance(second, dict)
    assert second["OpaqueRef:target-1"] is first["OpaqueRef:target-1"] == kept
    assert second["OpaqueRef:target-3"] == {"parent": ""}
    refs.bind("OpaqueRef:model-2", "OpaqueRef:target-2")
    third = refs.to_model({"OpaqueRef:target-1": kept})
    assert third == {"OpaqueRef:target-1": {"parent": "OpaqueRef:model-2"}}


def test_what_was_worked_out_is_kept_for_the_very_same_object_under_the_same_tag() -> None:
    memo: IdentityMemo[list[int]] = IdentityMemo(keep=2)
    works: list[object] = []

    def work(source: dict[str, int]) -> list[int]:
        works.append(source)
        return sorted(source.values())

    first, second, third = {"a": 2, "b": 1}, {"a": 2, "b": 1}, {"c": 3}
    result = memo.worked_out(first, "xmlrpc", work)
    assert memo.worked_out(first, "xmlrpc", work) is result == [1, 2]
    assert memo.worked_out(second, "xmlrpc", work) == result  # an equal object: worked anew
    assert memo.worked_out(first, "jsonrpc", work) is not result  # another tag: anew
    memo.worked_out(third, "xmlrpc", work)  # over the bound: the oldest (first) is dropped
    memo.worked_out(first, "jsonrpc", work)
    assert works == [first, second, first, third, first]


def _info(actual: Failure) -> DivergenceInfo:
    return DivergenceInfo("VM.start", (), (Success(""),), actual, "lifecycle", "outcome", "m")


def test_waivers_match_method_and_code_until_they_expire(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(
        '[[waiver]]\nmethod = "VM.start"\ncode = "NO_HOSTS_AVAILABLE"\nreason = "r"\nexpires = 2027-01-31\n'
    )
    before = load_waivers(path, today=datetime.date(2027, 1, 31))
    assert before.match(_info(Failure("NO_HOSTS_AVAILABLE"))) is not None
    assert before.match(_info(Failure("OTHER"))) is None
    after = load_waivers(path, today=datetime.date(2027, 2, 1))
    assert after.match(_info(Failure("NO_HOSTS_AVAILABLE"))) is None
    assert len(after.expired()) == 1


@pytest.mark.parametrize(
    "text",
    [
        "not toml [",
        '[[waiver]]\nmethod = "VM.start"\n',
        '[[waiver]]\nmethod="a"\nreason="r"\nexpires="soon"\n',
    ],
)
def test_malformed_waiver_files_are_usage_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "w.toml"
    path.write_text(text)
    with pytest.raises(UsageError):
        load_waivers(path)


def test_missing_waiver_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_waivers(tmp_path / "absent.toml")


def test_waiver_without_code_covers_any_answer() -> None:
    waivers = Waivers((Waiver("VM.start", "", "r", datetime.date(2999, 1, 1)),))
    assert waivers.match(_info(Failure("ANYTHING"))) is not None


VM_RECORD = XType("record", name="VM")


@pytest.mark.parametrize(
    ("expected", "actual", "xtype", "where", "how"),
    [
        (
            {"a": "1"},
            {"b": "1"},
            XType("map", key=XType("string"), item=XType("string")),
            "result",
            "missing keys ['a']; extra keys ['b']",
        ),
        (
            {"a": "1"},
            {"a": "2"},
            XType("map", key=XType("string"), item=XType("string")),
            "result['a']",
            "expected '1', got '2'",
        ),
        (
            ("x", "y"),
            ("y", "z"),
            XType("set", item=XType("string")),
            "result",
            "missing ['x']; extra ['z']",
        ),
        (
            {"name_label": "a", "tags": ()},
            {"name_label": "b", "tags": ("t",)},
            VM_RECORD,
            "field name_label",
            "expected 'a', got 'b' (also differing: tags)",
        ),
        ({"name_label": "a"}, {}, VM_RECORD, "field name_label", "missing from the record"),
        (3, 4, XType("int"), "result", "expected 3, got 4"),
    ],
)
def test_value_mismatch_says_where_and_how(
    expected: object, actual: object, xtype: XType, where: str, how: str
) -> None:
    mismatch = value_mismatch(expected, actual, xtype)  # type: ignore[arg-type]
    assert mismatch is not None
    assert (mismatch.where, mismatch.how) == (where, how)


def test_equal_values_have_no_mismatch() -> None:
    assert (
        value_mismatch(
            {"a": ("x",)},
            {"a": ("x",)},
            XType("map", key=XType("string"), item=XType("set", item=XType("string"))),
        )
        is None
    )


@pytest.mark.parametrize(
    ("raw", "xtype", "protocol", "where"),
    [
        ("1", XType("int"), "jsonrpc", "result"),
        (1, XType("int"), "xmlrpc", "result"),
        (True, XType("int"), "jsonrpc", "result"),
        ("x", XType("void"), "xmlrpc", "result"),
        ("a", XType("set", item=XType("string")), "xmlrpc", "result"),
        ([1], XType("set", item=XType("string")), "xmlrpc", "result[0]"),
        (
            {"k": 1},
            XType("map", key=XType("string"), item=XType("string")),
            "xmlrpc",
            "result['k']",
        ),
        ([], XType("map", key=XType("string"), item=XType("string")), "xmlrpc", "result"),
        ({"VCPUs_max": 2}, VM_RECORD, "xmlrpc", "field VCPUs_max"),
        ("rec", VM_RECORD, "xmlrpc", "result"),
        (1.5, XType("string"), "jsonrpc", "result"),
        (True, XType("float"), "jsonrpc", "result"),
        (1, XType("float"), "xmlrpc", "result"),  # <int>1</int>: xapi writes <double>
        ({"HVM_shadow_multiplier": 1}, VM_RECORD, "xmlrpc", "field HVM_shadow_multiplier"),
    ],
)
def test_wire_mismatch_names_the_wrongly_typed_place(
    raw: object, xtype: XType, protocol: str, where: str
) -> None:
    mismatch = wire_mismatch(raw, xtype, protocol)
    assert mismatch is not None and mismatch.where == where


@pytest.mark.parametrize(
    ("raw", "xtype", "protocol"),
    [
        ("1", XType("int"), "xmlrpc"),
        (1, XType("int"), "jsonrpc"),
        (1, XType("float"), "jsonrpc"),
        (1.0, XType("float"), "xmlrpc"),
        ("", XType("void"), "xmlrpc"),
        ({"VCPUs_max": "2", "unknown": 3}, VM_RECORD, "xmlrpc"),
        ("19700101T00:00:00Z", XType("datetime"), "jsonrpc"),
        ({}, XType("record", name="task"), "xmlrpc"),
    ],
)
def test_wire_mismatch_accepts_what_xapi_sends(raw: object, xtype: XType, protocol: str) -> None:
    assert wire_mismatch(raw, xtype, protocol) is None


def test_failure_mismatches_name_code_count_and_parameter() -> None:
    expected = Failure("VM_BAD_POWER_STATE", ("vm1", "halted", "running"))
    assert str(outcome_mismatch(expected, Failure("X"), returns=None)) == (
        "error code: expected VM_BAD_POWER_STATE, got X"
    )
    count = outcome_mismatch(expected, Failure("VM_BAD_POWER_STATE", ("vm1",)), returns=None)
    assert count is not None and count.where == "error parameters"
    assert str(outcome_mismatch(expected, Success(""), returns=None)).startswith(
        "outcome: xapi fails"
    )
    assert str(outcome_mismatch(Success(""), expected, returns=None)).startswith(
        "outcome: xapi succeeds"
    )


def test_answer_rules_resolve_once_per_method() -> None:
    rules = AnswerRules.of("Async.VM.clone")
    assert rules.is_async and rules.answer == XType("ref", name="task")
    assert rules.result == XType("ref", name="VM")
    getter = AnswerRules.of("VM.get_uuid")
    assert getter.result_field == "uuid" and not getter.is_async
    assert AnswerRules.of("session.login_with_password").takes_session is False
    assert AnswerRules.of("VM.frobnicate").known is False
    assert AnswerRules.of("VM.get_data_sources").shape_only


def test_record_comparison_keeps_every_rule_for_fields_that_look_equal() -> None:
    from conformance.judge.compare import record_mismatches

    expected = {
        "name_label": "a",
        "name_description": "d",
        "tags": ["x", "y"],
        "uuid": "not-a-uuid",
        "other_config": {"k": "v"},
    }
    actual = {
        "name_label": "a",
        "tags": ["y", "x"],  # a set: order is free
        "uuid": "not-a-uuid",  # equal, yet shape-only: still checked, and no uuid
        "other_config": {"k": "v"},
    }
    assert record_mismatches(expected, actual) == sorted(
        ["name_description", "uuid"], key=list(catalogue.FIELDS).index
    )


# ---- an error parameter read from the host's clock: VM_CALL_PLUGIN_RATE_LIMIT's wait --------

LIMITED = Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "10.", "7."))


@pytest.mark.parametrize(
    ("actual", "where"),
    [
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "10.", "6.98712345")), None),
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "10.", "10.")), None),
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "10.", "1e-05")), None),
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "10.", "10.5")), "error parameter 3"),
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "10.", "0.")), "error parameter 3"),
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "10.", "soon")), "error parameter 3"),
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "5.", "3.")), "error parameter 2"),
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:b", "10.", "7.")), "error parameter 1"),
        (Failure("VM_CALL_PLUGIN_RATE_LIMIT", ("OpaqueRef:a", "10.")), "error parameters"),
        (Failure("OTHER_OPERATION_IN_PROGRESS", ("VM", "OpaqueRef:a")), "error code"),
        (Success(""), "outcome"),
    ],
)
def test_a_rate_limit_wait_is_compared_within_the_interval(
    actual: Failure | Success, where: str | None
) -> None:
    """The wait left is the host's clock: any 0 < wait <= interval conforms; the VM, the
    interval, the count and the code are still exact, and a missing limit diverges."""
    mismatch = outcome_mismatch(LIMITED, actual, returns=XType("string"))
    assert (mismatch.where if mismatch else None) == where


def _rewriting_harness(
    rewrite: Callable[[Outcome], Outcome], served: str = "", chosen: str = ""
) -> Harness:
    """A harness over the embedded server of release ``served`` (the newest if empty), whose
    answers pass through ``rewrite``, judging by release ``chosen`` (empty: the one served)."""
    from conformance.engine.harness import Connection, Harness
    from conformance.engine.importer import Login
    from conformance.server.app import XenAPIApp
    from conformance.server.config import ServerConfig
    from conformance.server.state import ServerState
    from conformance.targets.inprocess import InProcessTarget
    from models.releases import release
    from models.world import Account, Facts

    class Rewriting(InProcessTarget):
        def call(self, method: str, *params: Value) -> Outcome:
            return rewrite(super().call(method, *params))

    config = ServerConfig(password="pw", salt="rewriting", xapi_version=served)
    state = ServerState.from_config(config)
    target = Rewriting(XenAPIApp(state))
    login = target.call("session.login_with_password", "root", "pw", "2.21", "test")
    assert isinstance(login, Success)
    root = Login(str(login.value), Account("root", "pw", "pool-admin", superuser=True))
    judged = release(chosen) if chosen else None
    connection = Connection(target, root, {}, Facts(), "rewriting", release=judged)
    return Harness(connection, "operations")


def _later_wait(outcome: Outcome) -> Outcome:
    """A host whose clock read the wait a little later than the model's (what xapi sends)."""
    if isinstance(outcome, Failure) and outcome.code == "VM_CALL_PLUGIN_RATE_LIMIT":
        return Failure(outcome.code, (*outcome.params[:2], "9.98712345678"))
    return outcome


def _no_limit(outcome: Outcome) -> Outcome:
    """A host that never limits: the call goes on to its function (unknown here)."""
    if isinstance(outcome, Failure) and outcome.code == "VM_CALL_PLUGIN_RATE_LIMIT":
        text = 'The requested fn "frob" could not be found in plugin "guest-agent-operation".'
        return Failure("XENAPI_PLUGIN_FAILURE", ("failed to find fn", text, text))
    return outcome


@pytest.mark.parametrize(
    ("rewrite", "diverges"),
    [(lambda o: o, False), (_later_wait, False), (_no_limit, True)],
    ids=["embedded server", "wait read later", "limit never applied"],
)
def test_a_repeated_plugin_call_is_judged_by_the_limit_not_the_clock(
    rewrite: Callable[[Outcome], Outcome], diverges: bool
) -> None:
    from conformance.areas.strategies import vm_record
    from conformance.judge.divergence import Divergence

    h = _rewriting_harness(rewrite)
    try:
        vm = h.call("VM.create", vm_record("rate-limit"))
        assert isinstance(vm, Success)
        h.call("VM.start", str(vm.value), False, False)
        h.call("VM.call_plugin", str(vm.value), "guest-agent-operation", "frob", {})
        if diverges:
            with pytest.raises(
                Divergence, match="error code: expected VM_CALL_PLUGIN_RATE_LIMIT"
            ) as raised:
                h.call("VM.call_plugin", str(vm.value), "guest-agent-operation", "frob", {})
            _reproducer_judges_the_wait_alike(raised.value.info.reproducer)
        else:
            again = h.call("VM.call_plugin", str(vm.value), "guest-agent-operation", "frob", {})
            assert isinstance(again, Failure) and again.code == "VM_CALL_PLUGIN_RATE_LIMIT"
    finally:
        h.teardown()


def _reproducer_judges_the_wait_alike(reproducer: str) -> None:
    """The reproducer's matches() accepts the same waits as the suite, no others."""
    namespace: dict[str, object] = {"__name__": "reproducer"}
    exec(compile(reproducer, "reproducer.py", "exec"), namespace)
    matches = namespace["matches"]
    want = ("error", ["VM_CALL_PLUGIN_RATE_LIMIT", "vm1", "10.", "10."])
    for wait, conforms in (
        ("9.98712345678", True),
        ("1e-05", True),
        ("10.5", False),
        ("0.", False),
    ):
        got = ("error", ["VM_CALL_PLUGIN_RATE_LIMIT", "vm1", "10.", wait])
        assert matches(got, want) is conforms  # type: ignore[operator]
    assert not matches(("error", ["VM_CALL_PLUGIN_RATE_LIMIT", "vm1", "5.", "3."]), want)  # type: ignore[operator]


# ---- allowed device lists: exact by the release judged against -------------------------------


def _one_device_less(outcome: Outcome) -> Outcome:
    """A host that keeps the last device of every list back."""
    if isinstance(outcome, Success) and isinstance(outcome.value, list | tuple) and outcome.value:
        return Success(outcome.value[:-1])
    return outcome


@pytest.mark.parametrize(
    ("served", "chosen", "rewrite", "diverges"),
    [
        pytest.param("", "", lambda o: o, False, id="newest-read"),
        pytest.param("24.19", "", lambda o: o, False, id="24.19-read"),
        pytest.param("24.19", "26.17", lambda o: o, True, id="24.19-judged-as-26.17"),
        pytest.param("26.17", "24.19", lambda o: o, True, id="26.17-judged-as-24.19"),
        pytest.param("", "", _one_device_less, True, id="a-device-missing"),
    ],
)
@pytest.mark.parametrize("method", ["VM.get_allowed_VIF_devices", "VM.get_allowed_VBD_devices"])
def test_allowed_device_lists_are_exact_by_the_release_judged_against(
    method: str, served: str, chosen: str, rewrite: Callable[[Outcome], Outcome], diverges: bool
) -> None:
    """xapi_vm_helpers.ml allowed_VIF_devices (0..15 from 25.29, 0..6 before) and
    allowed_VBD_devices (0..254): the list is compared whole, by the release the harness judges
    against (read from the target or chosen)."""
    from conformance.areas.strategies import vm_record
    from conformance.judge.divergence import Divergence

    diverges = diverges and not (method.endswith("VBD_devices") and chosen)  # VBD: same in both
    h = _rewriting_harness(rewrite, served, chosen)
    try:
        vm = h.call("VM.create", vm_record("rewriting"))
        assert isinstance(vm, Success)
        if diverges:
            with pytest.raises(Divergence, match=r"result: (missing|extra) \["):
                h.call(method, str(vm.value))
        else:
            assert isinstance(h.call(method, str(vm.value)), Success)
    finally:
        h.teardown()


# ---- the reproducer judges with the suite's rules -------------------------------------------------

_OPERATION_ELSEWHERE = {"current_operations": {"OpaqueRef:t1": "start"}}
_OTHER_OPERATION = {"current_operations": {"OpaqueRef:t2": "clean_shutdown"}}
_SAME_OPERATION = {"current_operations": {"OpaqueRef:t9": "start"}}
_NOON = datetime.datetime(2026, 12, 6, 12, tzinfo=datetime.UTC)
_SNAPSHOT_NOW = {"snapshot_time": xmlrpc.client.DateTime("20261206T12:00:00Z")}
_SNAPSHOT_AN_HOUR_LATER = {"snapshot_time": xmlrpc.client.DateTime("20261206T13:00:00Z")}


@pytest.mark.parametrize(
    ("want", "got"),
    [
        (_OPERATION_ELSEWHERE, _OTHER_OPERATION),
        (_OPERATION_ELSEWHERE, _SAME_OPERATION),
        ({"snapshot_time": _NOON}, _SNAPSHOT_AN_HOUR_LATER),
        ({"snapshot_time": _NOON}, _SNAPSHOT_NOW),
    ],
    ids=["other operation", "same operation", "snapshot an hour off", "snapshot on time"],
)
def test_the_reproducer_judges_a_record_as_the_suite_does(
    want: dict[str, Value], got: dict[str, object]
) -> None:
    """The reproducer's verdict on a VM record is the suite's, field rules included (it said
    "conforms now" for any current_operations map and any snapshot_time the suite rejects).
    ``got`` is the record as the script's standard-library client decodes it."""
    from conformance.reproduce.reproducer import LoggedCall, render_reproducer

    script = render_reproducer(
        title="VM.get_record(vm1)",
        steps=(),
        final=LoggedCall("VM.get_record", ("vm1",), "session"),
        expected=(Success(want),),
        names={},
        roles=(),
        display="VM.get_record(vm1)",
        url="http://localhost",
        user="root",
        protocol="xmlrpc",
        strictness="exact",
    )
    namespace: dict[str, object] = {"__name__": "reproducer"}
    exec(compile(script, "reproducer.py", "exec"), namespace)
    matches = namespace["matches"]
    record = XType("record", name="VM")
    decoded = {k: str(v) if isinstance(v, xmlrpc.client.DateTime) else v for k, v in got.items()}
    actual = typed_outcome(Success(decoded), record)  # type: ignore[arg-type]
    suite = outcome_mismatch(Success(want), actual, returns=record)
    assert matches(("ok", got), ("ok", _rendered(want))) is (suite is None)  # type: ignore[operator]


def _rendered(record: dict[str, Value]) -> dict[str, Value]:
    """A record as a reproducer writes xapi's answer (datetimes as their text)."""
    return {k: f"{v:%Y%m%dT%H:%M:%SZ}" if isinstance(v, datetime.datetime) else v
            for k, v in record.items()}  # fmt: skip


def test_possible_hosts_are_exact_only_where_the_hosts_free_memory_is_known() -> None:
    """VM.get_possible_hosts depends on free memory: exact against the embedded server, shape
    only against a pool whose free memory the suite cannot see; other shape-only results stay
    shape only."""
    from conformance.judge.compare import AnswerRules, shape_only_here
    from models.world import Facts

    known, unknown = Facts(), Facts(host_memory_sufficient=None)
    hosts = AnswerRules.of("VM.get_possible_hosts")
    assert not shape_only_here(hosts, known)
    assert shape_only_here(hosts, unknown)
    assert shape_only_here(AnswerRules.of("Async.VM.get_possible_hosts"), unknown)
    assert shape_only_here(AnswerRules.of("VM.query_data_source"), known)
