"""The harness follows a VM that VM.revert makes again (its snapshot's VM was destroyed).

xapi answers such a revert with nothing; the new VM's ref is learnt from the snapshot's
``snapshot_of`` on both sides and bound (``conformance.judge.refs.snapshots_of_new_vms``). Shown both
ways: the honest server conforms and the VM is judged and cleaned up; servers that refuse, that
do not point the snapshot at the new VM, or that build it from the wrong record diverge.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from conformance.engine.harness import Harness, sweep_run_vms
from conformance.faults import FAULTS
from conformance.judge.divergence import Divergence
from models.checks import update_vm
from models.outcome import Failure, Success
from models.transition import Branch, Call, Result
from models.world import World
from tests.conformance.test_harness import Fault, _server, connect, new_vm


def _orphan(h: Harness, op: str = "VM.snapshot") -> tuple[str, str]:
    """A suite VM, a snapshot of it, the VM destroyed: (old VM, snapshot)."""
    vm = new_vm(h, name_label="xapi-conformance gone")
    if op == "VM.checkpoint":
        h.call("VM.start", vm, False, False)
    snapshot = h.call(op, vm, "xapi-conformance orphan")
    assert isinstance(snapshot, Success)
    if op == "VM.checkpoint":
        h.call("VM.hard_shutdown", vm)
    h.call("VM.destroy", vm)
    return vm, str(snapshot.value)


def _is_revert(call: Call) -> bool:
    return call.method.removeprefix("Async.") == "VM.revert"


def _new_vms(world: World, result: Result) -> list[str]:
    return [r for b in result for r in b.world.vms if r not in world.vms]


def _pointing_back(world: World, call: Call, result: Result) -> Result:
    """The VM is made, but the snapshot still names the destroyed one."""
    snapshot = str(call.args[1])
    old = world.vms[snapshot]["snapshot_of"]
    return tuple(
        replace(b, world=update_vm(b.world, snapshot, {"snapshot_of": old})) for b in result
    )


def _named_as_snapshot(world: World, call: Call, result: Result) -> Result:
    """The VM is made from the snapshot's own record: it takes the snapshot's name."""
    name = world.vms[str(call.args[1])]["name_label"]
    return tuple(
        Branch(b.outcome, _renamed(b.world, _new_vms(world, result), name)) for b in result
    )


def _renamed(world: World, refs: list[str], name: object) -> World:
    for ref in refs:
        world = update_vm(world, ref, {"name_label": name})
    return world


@pytest.mark.parametrize("method", ["call", "call_async"])
@pytest.mark.parametrize("op", ["VM.snapshot", "VM.checkpoint"])
def test_the_recreated_vm_is_bound_judged_and_cleaned_up(method: str, op: str) -> None:
    connection = connect()
    h = Harness(connection, "lifecycle")
    vm, snap = _orphan(h, op)
    getattr(h, method)("VM.revert", snap)
    back = str(h.world.vms[snap]["snapshot_of"])
    expected = "Suspended" if op == "VM.checkpoint" else "Halted"
    assert h.world.vms[back]["power_state"] == expected
    assert back != vm and h.refs.kind(back) == "vm" and back in h.suite_vms()
    assert [c.method for c in h.log][-1] == "VM.get_snapshot_of"
    assert h.log[-1].result_ref == back  # the reproducer names the VM from this step
    h.check_state(full=True)
    h.teardown()
    assert sweep_run_vms(connection.target, connection.root.session, "harness-tests") == []


def test_the_recreated_vm_is_learnt_even_when_the_revert_then_fails() -> None:
    """xapi makes the VM before the op checks: a blocked revert still leaves it."""
    h = Harness(connect(), "operations")
    _vm, snap = _orphan(h)
    h.call("VM.add_to_blocked_operations", snap, "revert", "xapi-conformance")
    h.call("VM.revert", snap)
    assert str(h.world.vms[snap]["snapshot_of"]) in h.suite_vms()
    h.check_state(full=True)
    h.teardown()


def test_a_server_that_refuses_the_revert_diverges() -> None:
    h = Harness(connect(_server(faults=(FAULTS["revert-orphan-refused"],))), "lifecycle")
    _vm, snap = _orphan(h)
    with pytest.raises(Divergence, match="VM_REVERT_FAILED"):
        h.call("VM.revert", snap)
    h.teardown()


def test_a_snapshot_left_naming_the_destroyed_vm_diverges() -> None:
    h = Harness(connect(_server(faults=(Fault(_is_revert, _pointing_back),))), "lifecycle")
    _vm, snap = _orphan(h)
    with pytest.raises(Divergence, match=r"VM\.get_snapshot_of"):
        h.call("VM.revert", snap)
    h.teardown()


def test_a_vm_made_from_the_snapshot_record_diverges() -> None:
    h = Harness(connect(_server(faults=(Fault(_is_revert, _named_as_snapshot),))), "lifecycle")
    _vm, snap = _orphan(h)
    h.call("VM.revert", snap)
    with pytest.raises(Divergence, match="name_label"):
        h.check_state(full=True)
    h.teardown()


def test_a_refused_revert_names_the_vm_it_made_and_the_harness_binds_it() -> None:
    """With reverting blocked, xapi remakes the VM, then refuses the revert naming the new VM:
    the error's ref is bound to the model's (no divergence) and the VM is cleaned up."""
    h = Harness(connect(), "lifecycle")
    vm = new_vm(h, name_label="xapi-conformance gone")
    h.call("VM.add_to_blocked_operations", vm, "reverting", "xapi-conformance")
    snapshot = h.call("VM.snapshot", vm, "xapi-conformance orphan")
    assert isinstance(snapshot, Success)
    h.call("VM.destroy", vm)
    refused = h.call("VM.revert", str(snapshot.value))
    assert isinstance(refused, Failure) and refused.code == "OPERATION_BLOCKED"
    made = refused.params[0]
    assert made in h.world.vms and h.refs.kind(made) == "vm"
    h.finish()
    assert sweep_run_vms(h.connection.target, h.session, h.connection.run_id) == []
