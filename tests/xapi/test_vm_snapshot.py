"""Ported from xapi's ocaml/xapi/xapi_vm_snapshot.ml (``create_vm_from_snapshot``, ``revert``,
``do_not_copy``) and ocaml/xapi/message_forwarding.ml (``VM.revert``): reverting to a snapshot
whose VM was destroyed.

xapi has no unit test or quicktest of this path; the expectations are what the code does on
the wire. VM.revert finds the snapshot's ``snapshot_of`` dangling, so it first makes the VM
again: VM.create_from_record of the snapshot's record (Halted, no suspend VDI), then the VM
takes the uuid and every field of ``snapshot_metadata`` except ``do_not_copy``, and every
snapshot of the old VM names the new one in ``snapshot_of``. Only then come the operation
checks and the revert itself (parent, generation id, the snapshot's power state). A client
learns the new VM's ref from the snapshot's ``snapshot_of`` (or by the old uuid).
"""

from __future__ import annotations

from models.outcome import Failure
from tests.xapi.conftest import Api

NULL = "OpaqueRef:NULL"


def _orphaned(api: Api, **overrides: object) -> tuple[str, str, str]:
    """A VM, a snapshot of it, the VM destroyed: (old ref, its uuid, the snapshot)."""
    vm = api.new_vm(name_label="gone", **overrides)
    uuid = api.get(vm, "uuid")
    snapshot = api.ok("VM.snapshot", vm, "orphan", [])
    api.ok("VM.destroy", vm)
    return vm, uuid, snapshot


def test_revert_recreates_the_vm_with_its_old_uuid_and_a_new_ref(api: Api) -> None:
    """create_vm_from_snapshot: a new ref, Db.VM.set_uuid to the metadata's uuid; the snapshot
    (and every other snapshot of the old VM) then names the new VM in snapshot_of."""
    vm = api.new_vm(name_label="gone")
    uuid = api.get(vm, "uuid")
    first = api.ok("VM.snapshot", vm, "first", [])
    second = api.ok("VM.snapshot", vm, "second", [])
    api.ok("VM.destroy", vm)
    assert api.get(first, "snapshot_of") == vm  # dangling until the revert
    api.ok("VM.revert", first)
    back = api.get(first, "snapshot_of")
    assert back not in (vm, NULL)
    assert api.ok("VM.get_by_uuid", uuid) == back
    assert api.get(second, "snapshot_of") == back
    assert set(api.get(back, "snapshots")) == {first, second}


def test_the_recreated_vm_is_the_vm_at_snapshot_time(api: Api) -> None:
    """copy_vm_fields with ``do_not_copy``: name, flags and settings come from the metadata; the
    VM is not a snapshot, Halted, and its parent is the snapshot (update_parent)."""
    _vm, _uuid, snapshot = _orphaned(
        api, other_config={"k": "v"}, VCPUs_max="3", VCPUs_at_startup="2"
    )
    api.ok("VM.set_name_label", snapshot, "renamed snapshot")
    api.ok("VM.revert", snapshot)
    back = api.get(snapshot, "snapshot_of")
    assert api.get(back, "name_label") == "gone"
    assert api.get(back, "other_config")["k"] == "v"
    assert api.int(back, "VCPUs_max") == 3
    assert api.get(back, "is_a_snapshot") is False
    assert api.get(back, "is_a_template") is False
    assert api.get(back, "snapshot_of") == NULL
    assert api.get(back, "parent") == snapshot
    assert api.get(back, "power_state") == "Halted"
    assert api.get(back, "ha_always_run") is False
    assert "start" in api.get(back, "allowed_operations")
    assert api.get(snapshot, "name_label") == "renamed snapshot"


def test_tags_and_affinity_come_from_the_snapshot_record(api: Api) -> None:
    """``tags`` and ``affinity`` are in do_not_copy: the new VM keeps what
    VM.create_from_record gave it from the snapshot's own record."""
    _vm, _uuid, snapshot = _orphaned(api, tags=["at-snapshot"])
    api.ok("VM.set_tags", snapshot, ["snapshot-own"])
    api.ok("VM.revert", snapshot)
    back = api.get(snapshot, "snapshot_of")
    assert list(api.get(back, "tags")) == ["snapshot-own"]


def test_a_checkpoint_recreates_a_suspended_vm(api: Api) -> None:
    """revert ends in force_state_reset to the snapshot's power state: a checkpoint of a
    Running VM brings the new VM back Suspended, with a suspend VDI."""
    vm = api.in_state("Running")
    checkpoint = api.ok("VM.checkpoint", vm, "checkpoint")
    api.ok("VM.hard_shutdown", vm)
    api.ok("VM.destroy", vm)
    api.ok("VM.revert", checkpoint)
    back = api.get(checkpoint, "snapshot_of")
    assert api.get(back, "power_state") == "Suspended"
    assert api.get(back, "suspend_VDI") != NULL


def test_the_vm_is_recreated_before_the_operation_checks(api: Api) -> None:
    """message_forwarding.ml VM.revert makes the VM, then runs with_vm_operation on the
    snapshot: a blocked revert fails, and the new VM stays."""
    _vm, uuid, snapshot = _orphaned(api)
    api.ok("VM.add_to_blocked_operations", snapshot, "revert", "no")
    failure = api.fails("VM.revert", snapshot)
    assert failure.code == "OPERATION_BLOCKED"
    back = api.ok("VM.get_by_uuid", uuid)
    assert api.get(snapshot, "snapshot_of") == back
    assert api.get(back, "parent") == NULL  # the revert itself never ran
    # copy_vm_fields wrote the fields behind update_allowed_operations' back: the VM keeps
    # what VM.create computed for the snapshot's record, a template's (no start).
    assert api.get(back, "is_a_template") is False
    assert "start" not in api.get(back, "allowed_operations")
    api.ok("VM.update_allowed_operations", back)
    assert "start" in api.get(back, "allowed_operations")


def test_a_second_revert_reverts_the_recreated_vm(api: Api) -> None:
    """Once snapshot_of names a live VM, VM.revert reverts that VM: nothing new is made."""
    _vm, _uuid, snapshot = _orphaned(api)
    api.ok("VM.revert", snapshot)
    back = api.get(snapshot, "snapshot_of")
    count = len(api.ok("VM.get_all"))
    api.ok("VM.set_name_label", back, "changed")
    api.ok("VM.revert", snapshot)
    assert api.get(snapshot, "snapshot_of") == back
    assert api.get(back, "name_label") == "gone"
    assert len(api.ok("VM.get_all")) == count


def test_revert_of_a_vm_that_is_not_a_snapshot_fails(api: Api) -> None:
    """create_vm_from_snapshot on a VM without snapshot_metadata fails; xapi answers
    VM_REVERT_FAILED [snapshot; snapshot_of] and makes nothing."""
    vm = api.new_vm()
    count = len(api.ok("VM.get_all"))
    assert api.fails("VM.revert", vm) == Failure("VM_REVERT_FAILED", (vm, NULL))
    assert len(api.ok("VM.get_all")) == count
