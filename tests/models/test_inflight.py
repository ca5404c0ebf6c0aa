"""Operations in flight (models/inflight.py): begin marks, conflicts wait, end unmarks."""

from __future__ import annotations

import pytest

from models.inflight import (
    Began,
    Blocked,
    begin,
    cancelled_before_begin,
    cancelled_by,
    finish,
    in_flight,
    stopped,
    task_cancel,
    vm_operation,
)
from models.operations import VM_OPERATIONS, is_allowed_concurrently
from models.outcome import Failure, Success
from models.transition import Branch, Call
from models.world import Account, World
from tests.models.helpers import Driver, driver

TASK_A = "OpaqueRef:task-a"
TASK_B = "OpaqueRef:task-b"


def _call(d: Driver, method: str, *args: object) -> Call:
    return Call(method, (d.session, *args))


def _began(d: Driver, method: str, ref: str, task: str, *args: object) -> World:
    starts = begin(d.world, _call(d, method, ref, *args), task)
    assert len(starts) == 1 and isinstance(starts[0], Began), starts
    return starts[0].world


def test_lifecycle_messages_mark_their_op_and_setters_are_atomic() -> None:
    assert vm_operation("VM.start") == "start"
    assert vm_operation("Async.VM.hard_shutdown") == "hard_shutdown"
    assert vm_operation("VM.set_name_label") is None


def test_begin_marks_current_operations_and_empties_allowed_operations() -> None:
    d = driver()
    vm = d.in_state("Halted")
    world = _began(d, "VM.start", vm, TASK_A, False, False)
    record = world.vms[vm]
    assert dict(record["current_operations"]) == {TASK_A: "start"}  # type: ignore[arg-type]
    assert record["power_state"] == "Halted"
    assert record["allowed_operations"] == ()


def test_a_second_start_waits_then_finds_the_vm_running() -> None:
    d = driver()
    vm = d.in_state("Halted")
    d.world = _began(d, "VM.start", vm, TASK_A, False, False)
    second = begin(d.world, _call(d, "VM.start", vm, False, False), TASK_B)
    assert second == (Blocked(Failure("OTHER_OPERATION_IN_PROGRESS", ("VM", vm, "start", TASK_A))),)
    (ended,) = finish(d.world, _call(d, "VM.start", vm, False, False), TASK_A)
    assert ended.outcome == Success("")
    assert ended.world.vms[vm]["power_state"] == "Running"
    assert in_flight(ended.world, vm) == {}
    assert "clean_shutdown" in ended.world.vms[vm]["allowed_operations"]  # type: ignore[operator]
    (retried,) = begin(ended.world, _call(d, "VM.start", vm, False, False), TASK_B)
    assert isinstance(retried, Branch)
    assert retried.outcome == Failure("VM_BAD_POWER_STATE", (vm, "halted", "running"))


def test_assert_operation_valid_shows_the_op_in_flight_with_xapis_parameters() -> None:
    d = driver()
    vm = d.in_state("Halted")
    d.world = _began(d, "VM.start", vm, TASK_A, False, False)
    outcome = d.call("VM.assert_operation_valid", vm, "start")
    assert outcome == Failure("OTHER_OPERATION_IN_PROGRESS", ("VM", vm, "start", TASK_A))


def test_two_ops_in_flight_are_listed_in_braces() -> None:
    d = driver()
    vm = d.in_state("Halted")
    d.world = _began(d, "VM.clone", vm, TASK_A, "c1")
    d.world = _began(d, "VM.copy", vm, TASK_B, "c2", "OpaqueRef:NULL")
    outcome = d.call("VM.assert_operation_valid", vm, "start")
    assert outcome == Failure(
        "OTHER_OPERATION_IN_PROGRESS",
        ("VM", vm, "{clone,copy}", "{" + TASK_A + "," + TASK_B + "}"),
    )


def test_destroy_in_flight_makes_a_second_destroy_wait_then_find_no_vm() -> None:
    d = driver()
    vm = d.in_state("Halted")
    d.world = _began(d, "VM.destroy", vm, TASK_A)
    assert isinstance(begin(d.world, _call(d, "VM.destroy", vm), TASK_B)[0], Blocked)
    (ended,) = finish(d.world, _call(d, "VM.destroy", vm), TASK_A)
    assert vm not in ended.world.vms
    (again,) = begin(ended.world, _call(d, "VM.destroy", vm), TASK_B)
    assert isinstance(again, Branch) and again.outcome == Failure("HANDLE_INVALID", ("VM", vm))


def test_hard_shutdown_runs_beside_a_clean_shutdown_and_cancels_it() -> None:
    d = driver()
    vm = d.in_state("Running")
    d.world = _began(d, "VM.clean_shutdown", vm, TASK_A)
    hard = _call(d, "VM.hard_shutdown", vm)
    d.world = _began(d, "VM.hard_shutdown", vm, TASK_B)
    assert cancelled_by(d.world, hard, TASK_B) == frozenset({TASK_A})
    clean = _call(d, "VM.clean_shutdown", vm)
    ends = finish(d.world, clean, TASK_A, cancelled=True)
    stopped_ = Failure("TASK_CANCELLED", (TASK_A,))
    assert [b.outcome for b in ends] == [Success(""), stopped_, stopped_]
    assert stopped(ends) == ends[1]
    cancelled = ends[1].world
    assert in_flight(cancelled, vm) == {TASK_B: "hard_shutdown"}
    assert cancelled.vms[vm]["power_state"] == "Running"
    assert ends[2].world.vms[vm]["power_state"] == "Halted"  # the guest had the request
    (done,) = finish(cancelled, hard, TASK_B)
    assert done.outcome == Success("")
    assert done.world.vms[vm]["power_state"] == "Halted"


@pytest.mark.parametrize(("paused", "left"), [(False, ["Halted", "Paused"]), (True, ["Halted"])])
def test_a_cancelled_start_completes_stops_or_is_left_paused(paused: bool, left: list[str]) -> None:
    d = driver()
    vm = d.in_state("Halted")
    start = _call(d, "VM.start", vm, paused, False)
    d.world = _began(d, "VM.start", vm, TASK_A, paused, False)
    ends = finish(d.world, start, TASK_A, cancelled=True)
    assert ends[0].outcome == Success("")
    assert all(b.outcome == Failure("TASK_CANCELLED", (TASK_A,)) for b in ends[1:])
    assert [b.world.vms[vm]["power_state"] for b in ends[1:]] == left
    assert all(in_flight(b.world, vm) == {} for b in ends)
    (done,) = finish(d.world, start, TASK_A)  # not cancelled: no TASK_CANCELLED end
    assert done == ends[0]


def test_a_cancelled_destroy_in_flight_still_completes() -> None:
    d = driver()
    vm = d.in_state("Halted")
    d.world = _began(d, "VM.destroy", vm, TASK_A)
    ends = finish(d.world, _call(d, "VM.destroy", vm), TASK_A, cancelled=True)
    assert [b.outcome for b in ends] == [Success("")]
    assert stopped(ends) is None and vm not in ends[0].world.vms


def test_a_call_cancelled_before_its_begin_does_nothing() -> None:
    d = driver()
    (branch,) = cancelled_before_begin(d.world, TASK_A)
    assert branch == Branch(Failure("TASK_CANCELLED", (TASK_A,)), d.world)


def test_task_cancel_succeeds_while_the_task_exists_for_its_owner_or_a_pool_operator() -> None:
    d = driver(accounts=(Account("ro", "ro-pw", "read-only"),))
    ro = d.login("ro", "ro-pw")
    cancel = _call(d, "task.cancel", TASK_A)
    (own,) = task_cancel(d.world, cancel, d.session, exists=True)
    assert own == Branch(Success(""), d.world)
    (gone,) = task_cancel(d.world, cancel, d.session, exists=False)
    assert gone.outcome == Failure("HANDLE_INVALID", ("task", TASK_A))
    (other,) = task_cancel(d.world, Call("task.cancel", (ro, TASK_A)), d.session, exists=True)
    assert isinstance(other.outcome, Failure)
    assert other.outcome.code == "RBAC_PERMISSION_DENIED"
    assert other.outcome.params[0] == "task.destroy/any"


def test_memory_and_vcpu_setters_are_operations_in_flight() -> None:
    assert vm_operation("VM.set_memory_dynamic_range") == "changing_dynamic_range"
    assert vm_operation("VM.set_VCPUs_number_live") == "changing_VCPUs_live"
    assert vm_operation("VM.set_memory_dynamic_max") is None  # reads min before it begins
    d = driver()
    vm = d.in_state("Running")
    ranged = _call(d, "VM.set_memory_dynamic_range", vm, 805306368, 1073741824)
    d.world = _began(d, "VM.set_memory_dynamic_range", vm, TASK_A, 805306368, 1073741824)
    assert in_flight(d.world, vm) == {TASK_A: "changing_dynamic_range"}
    (second,) = begin(d.world, _call(d, "VM.set_VCPUs_number_live", vm, 2), TASK_B)
    assert isinstance(second, Blocked)
    (ended,) = finish(d.world, ranged, TASK_A)
    assert ended.world.vms[vm]["memory_dynamic_min"] == 805306368


def test_a_setter_runs_while_an_op_is_in_flight() -> None:
    d = driver()
    vm = d.in_state("Halted")
    d.world = _began(d, "VM.start", vm, TASK_A, False, False)
    (branch,) = begin(d.world, _call(d, "VM.set_name_label", vm, "renamed"), TASK_B)
    assert isinstance(branch, Branch) and branch.outcome == Success("")
    assert in_flight(branch.world, vm) == {TASK_A: "start"}


def test_a_refused_op_answers_at_once() -> None:
    d = driver()
    vm = d.in_state("Halted")
    (branch,) = begin(d.world, _call(d, "VM.clean_shutdown", vm), TASK_A)
    assert isinstance(branch, Branch)
    assert isinstance(branch.outcome, Failure) and branch.outcome.code == "VM_BAD_POWER_STATE"


# xapi's own table (ocaml/tests/test_vm_check_operation_error.ml, allowed_specs): which op may
# start while one other op is in flight.
XAPI_SPECS = [
    (True, "snapshot", ()),
    (True, "snapshot", ("checkpoint",)),
    (False, "migrate_send", ("clean_reboot",)),
    (True, "clean_reboot", ("migrate_send",)),
    *((op != "hard_shutdown", "hard_shutdown", (op,)) for op in VM_OPERATIONS),
    *((op not in ("hard_shutdown", "hard_reboot"), "hard_reboot", (op,)) for op in VM_OPERATIONS),
    *((op == "migrate_send", "clean_shutdown", (op,)) for op in VM_OPERATIONS),
]


@pytest.mark.parametrize(("expected", "op", "current"), XAPI_SPECS)
def test_is_allowed_concurrently_as_xapis_tests_pin_it(
    expected: bool, op: str, current: tuple[str, ...]
) -> None:
    assert is_allowed_concurrently(op, current) is expected
