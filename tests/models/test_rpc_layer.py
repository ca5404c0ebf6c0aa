"""The RPC layer of the model, in xapi's order (semantics §4.1, §3, §7, §12)."""

from __future__ import annotations

import pytest

from models import catalogue
from models.outcome import Encoded, Failure, Success
from models.rpc import REGISTRY, resolve
from models.world import Account
from tests.models.helpers import driver


def test_unknown_method_names_the_method() -> None:
    d = driver()
    assert d.fails("VM.frobnicate") == Failure("MESSAGE_METHOD_UNKNOWN", ("VM.frobnicate",))


def test_unknown_method_checks_the_session_first() -> None:
    d = driver()
    assert d.raw("VM.frobnicate", "OpaqueRef:dead") == Failure(
        "SESSION_INVALID", ("OpaqueRef:dead",)
    )


def test_unknown_method_without_params_needs_no_session() -> None:
    d = driver()
    assert d.raw("VM.frobnicate") == Failure("MESSAGE_METHOD_UNKNOWN", ("VM.frobnicate",))


def test_unknown_method_for_a_non_admin_is_an_rbac_denial_on_call_extension() -> None:
    d = driver(accounts=(Account("ro", "pw", "read-only"),))
    ro = d.login("ro", "pw")
    outcome = d.raw("VM.frobnicate", ro)
    assert isinstance(outcome, Failure)
    assert outcome.code == "RBAC_PERMISSION_DENIED"
    assert outcome.params[0] == "host.call_extension"


def test_method_names_are_case_sensitive() -> None:
    d = driver()
    assert d.fails("vm.get_all").code == "MESSAGE_METHOD_UNKNOWN"


def test_underscore_form_resolves_like_dot_form() -> None:
    assert resolve("VM_start")[1] is REGISTRY["VM.start"]


def test_parameter_count_excludes_the_session() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.start", ref) == Failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", ("VM.start", "3", "1")
    )


def test_parameter_count_with_no_params_at_all_is_minus_one() -> None:
    d = driver()
    assert d.raw("VM.get_all") == Failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", ("VM.get_all", "0", "-1")
    )


def test_parameter_count_strips_async_prefix() -> None:
    d = driver()
    failure = d.fails("Async.VM.clean_shutdown")
    assert failure == Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", ("VM.clean_shutdown", "1", "0"))


@pytest.mark.parametrize("extra", [(), ([],), ([], "ignored", 7)])
def test_defaulted_parameters_accept_any_count_from_the_required_one(
    extra: tuple[object, ...],
) -> None:
    d = driver()
    ref = d.new_vm()
    assert isinstance(d.call("VM.snapshot", ref, "snap", *extra), Success)


def test_login_accepts_any_count_from_two() -> None:
    d = driver()
    for extra in ((), ("1.0",), ("1.0", "origin", "more")):
        assert isinstance(d.raw("session.login_with_password", "root", "", *extra), Success)
    assert d.raw("session.login_with_password", "root") == Failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", ("session.login_with_password", "2", "1")
    )


def test_wrong_password_fails_as_xapi_sends_it() -> None:
    d = driver()
    assert d.raw("session.login_with_password", "root", "wrong") == Failure(
        "SESSION_AUTHENTICATION_FAILED", ("root", "Authentication failure")
    )


@pytest.mark.unconfirmed
def test_type_error_beats_a_bad_session_unconfirmed_text() -> None:
    d = driver()
    ref = d.new_vm()
    outcome = d.raw("VM.start", "OpaqueRef:bad-session", ref, "yes", False)
    assert outcome == Failure("INTERNAL_ERROR", ("Expected bool, got 'S(yes)'",))


@pytest.mark.unconfirmed
def test_int64_accepts_digit_strings_and_rejects_words_unconfirmed_text() -> None:
    d = driver()
    ref = d.new_vm()
    assert isinstance(d.call("VM.set_user_version", ref, "42"), Success)
    assert d.field(ref, "user_version") == 42
    assert d.fails("VM.set_user_version", ref, "forty") == Failure(
        "INTERNAL_ERROR", ("Int64.of_string",)
    )


def test_enums_are_matched_case_insensitively() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_actions_after_reboot", ref, "DESTROY")
    assert d.field(ref, "actions_after_reboot") == "destroy"


@pytest.mark.unconfirmed
def test_unknown_enum_value_is_an_internal_error_unconfirmed_text() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.add_to_blocked_operations", ref, "fly", "x").code == "INTERNAL_ERROR"


def test_removed_message_checks_session_then_answers_removed() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.raw("VM.snapshot_with_quiesce", "OpaqueRef:x", ref, "s") == Failure(
        "SESSION_INVALID", ("OpaqueRef:x",)
    )
    assert d.fails("VM.snapshot_with_quiesce", ref, "s") == Failure("MESSAGE_REMOVED", ())


def test_logout_invalidates_the_session() -> None:
    d = driver()
    assert d.ok("session.logout") == ""
    assert d.call("VM.get_all") == Failure("SESSION_INVALID", (d.session,))


def test_handle_invalid_names_the_class() -> None:
    d = driver()
    assert d.fails("VM.get_name_label", "OpaqueRef:NULL") == Failure(
        "HANDLE_INVALID", ("VM", "OpaqueRef:NULL")
    )
    assert d.fails("VM.get_name_label", "not-a-ref") == Failure(
        "HANDLE_INVALID", ("VM", "not-a-ref")
    )


def test_invalid_utf8_is_refused_before_anything_else() -> None:
    d = driver()
    assert d.raw("VM.nothing", "\ud800") == Failure(
        "INVALID_VALUE", ("Invalid UTF-8 string in parameter", "\ud800")
    )


@pytest.mark.unconfirmed
def test_rbac_denial_lists_roles_in_privilege_order_unconfirmed() -> None:
    d = driver(accounts=(Account("op", "pw", "vm-operator"),))
    ref = d.new_vm()
    op = d.login("op", "pw")
    assert d.raw("VM.destroy", op, ref) == Failure(
        "RBAC_PERMISSION_DENIED",
        (
            "vm.destroy",
            "No permission in user session. (Roles with this permission: "
            "pool-admin, pool-operator, vm-power-admin, vm-admin)",
        ),
    )
    assert isinstance(d.raw("VM.start", op, ref, False, False), Success)


def test_rbac_permission_of_async_call_is_the_sync_name() -> None:
    d = driver(accounts=(Account("ro", "pw", "read-only"),))
    ref = d.new_vm()
    ro = d.login("ro", "pw")
    task = d.raw("Async.VM.start", ro, ref, False, False)
    assert isinstance(task, Success)
    assert d.ok("task.get_error_info", task.value)[1] == "vm.start"


def test_rbac_keyed_other_config_permission_for_operators() -> None:
    d = driver(accounts=(Account("op", "pw", "vm-operator"),))
    ref = d.new_vm()
    op = d.login("op", "pw")
    assert isinstance(d.raw("VM.add_to_other_config", op, ref, "folder", "/x"), Success)
    denied = d.raw("VM.add_to_other_config", op, ref, "secret", "x")
    assert isinstance(denied, Failure)
    assert denied.params[0] == "vm.add_to_other_config"


def test_rbac_keyed_permission_string_names_the_key() -> None:
    d = driver(accounts=(Account("ro", "pw", "read-only"),))
    ref = d.new_vm()
    ro = d.login("ro", "pw")
    denied = d.raw("VM.add_to_other_config", ro, ref, "folder", "/x")
    assert isinstance(denied, Failure)
    assert denied.params[0] == "vm.add_to_other_config/key:folder"


def test_client_cert_role_may_shutdown_but_not_start() -> None:
    d = driver(accounts=(Account("cc", "pw", "client-cert"),))
    ref = d.in_state("Running")
    cc = d.login("cc", "pw")
    assert d.raw("VM.start", cc, ref, False, False).code == "RBAC_PERMISSION_DENIED"  # type: ignore[union-attr]
    assert isinstance(d.raw("VM.shutdown", cc, ref), Success)


def test_getters_are_open_to_read_only() -> None:
    d = driver(accounts=(Account("ro", "pw", "read-only"),))
    ref = d.new_vm()
    ro = d.login("ro", "pw")
    assert d.raw("VM.get_name_label", ro, ref) == Success("test-vm")


def test_an_async_call_a_role_may_not_make_fails_in_its_task() -> None:
    """xapi checks RBAC inside the call it dispatches, which for an Async call runs in the
    task: the call answers a task, which fails with RBAC_PERMISSION_DENIED."""
    d = driver(accounts=(Account("ro", "pw", "read-only"),))
    ref = d.new_vm()
    ro = d.login("ro", "pw")
    assert d.raw("VM.clone", ro, ref, "c").code == "RBAC_PERMISSION_DENIED"  # type: ignore[union-attr]
    task = d.raw("Async.VM.clone", ro, ref, "c")
    assert isinstance(task, Success)
    record = d.ok("task.get_record", task.value)
    assert record["status"] == "failure"
    assert record["error_info"][:2] == ("RBAC_PERMISSION_DENIED", "vm.clone")
    assert len(d.ok("VM.get_all")) == len(d.world.vms)


def test_async_without_async_mode_is_a_fault() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("Async.VM.get_name_label", ref) == Failure(
        "Fault", ("No async mode for this operation (rpc: Async.VM.get_name_label)",)
    )


def test_async_success_lands_in_the_task() -> None:
    d = driver()
    ref = d.new_vm()
    task = d.ok("Async.VM.clone", ref, "copy-of")
    record = d.ok("task.get_record", task)
    assert record["status"] == "success"
    assert record["name_label"] == "Async.VM.clone"
    assert isinstance(record["result"], Encoded)
    assert record["result"].value in d.ok("VM.get_all")
    assert record["progress"] == 1.0


def test_async_failure_lands_in_error_info_and_the_response_succeeds() -> None:
    d = driver()
    ref = d.new_vm()
    task = d.ok("Async.VM.clean_shutdown", ref)
    assert d.ok("task.get_status", task) == "failure"
    assert d.ok("task.get_error_info", task) == ("VM_BAD_POWER_STATE", ref, "running", "halted")
    d.ok("task.destroy", task)
    assert d.fails("task.get_status", task) == Failure("HANDLE_INVALID", ("task", task))


def test_async_parameter_errors_stay_synchronous() -> None:
    d = driver()
    assert d.fails("Async.VM.start", "x").code == "MESSAGE_PARAMETER_COUNT_MISMATCH"


def test_every_catalogue_message_is_in_the_registry() -> None:
    missing = [m.wire_name for m in catalogue.MESSAGES.values() if m.wire_name not in REGISTRY]
    assert missing == []
    assert len(catalogue.MESSAGES) == 219


def test_other_class_getters_find_their_way() -> None:
    d = driver()
    pool = d.ok("pool.get_all")[0]
    master = d.ok("pool.get_master", pool)
    assert "hvm-3.0-x86_64" in d.ok("host.get_capabilities", master)
    assert d.ok("pool.get_restrictions", pool)["restrict_dmc"] == "false"
    assert d.ok("host.get_by_uuid", d.ok("host.get_uuid", master)) == master
    assert d.fails("host.get_by_uuid", "nope") == Failure("UUID_INVALID", ("host", "nope"))
    assert len(d.ok("SR.get_all_records")) == 1
    assert d.fails("SR.get_record", "OpaqueRef:NULL") == Failure(
        "HANDLE_INVALID", ("SR", "OpaqueRef:NULL")
    )


def test_task_times_are_the_call_time() -> None:
    import datetime

    from models.rpc import apply
    from models.transition import Call

    d = driver()
    ref = d.new_vm()
    now = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
    branch = apply(d.world, Call("Async.VM.clone", (d.session, ref, "c"), now))[0]
    d.world = branch.world
    record = d.ok("task.get_record", branch.outcome.value)  # type: ignore[union-attr]
    assert record["created"] == now == record["finished"]
