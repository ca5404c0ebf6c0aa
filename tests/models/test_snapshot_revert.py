"""Snapshots, clones and revert as xapi's source has them.

Sources: xapi_vm_clone.ml ``copy_vm_record`` (generation_id, base_template_name, snapshot_info,
snapshot_metadata), xapi_vm_snapshot.ml ``revert``/``do_not_copy``/``create_vm_from_snapshot``
and xapi_vm.ml ``revert`` (a fresh generation id).
"""

from __future__ import annotations

import re

from models.outcome import Failure
from tests.models.helpers import driver

GENID = re.compile(r"\d+:\d+\Z")


def test_revert_restores_every_field_of_the_vm_at_snapshot_time() -> None:
    d = driver()
    vm = d.new_vm(name_label="original", other_config={"k": "before"})
    d.ok("VM.set_ha_restart_priority", vm, "")
    snap = d.ok("VM.snapshot", vm, "snap")
    d.ok("VM.set_name_label", vm, "renamed")
    d.ok("VM.set_name_description", vm, "changed")
    d.ok("VM.add_to_other_config", vm, "added", "later")
    d.ok("VM.add_to_blocked_operations", vm, "start", "no")
    d.ok("VM.set_tags", vm, ["kept"])
    d.ok("VM.revert", snap)
    assert d.field(vm, "name_label") == "original"
    assert d.field(vm, "name_description") == ""
    assert "added" not in d.field(vm, "other_config")
    assert d.field(vm, "blocked_operations") == {}
    assert d.field(vm, "tags") == ("kept",)  # do_not_copy: tags stay
    assert d.field(vm, "is_a_snapshot") is False
    assert d.field(vm, "parent") == snap
    assert d.field(vm, "snapshots") == (snap,)


def test_revert_refreshes_the_generation_id_unless_empty() -> None:
    d = driver()
    vm = d.new_vm(generation_id="1:2")
    snap = d.ok("VM.snapshot", vm, "snap")
    d.ok("VM.revert", snap)
    genid = d.field(vm, "generation_id")
    assert GENID.match(genid) and genid != "1:2"
    plain = d.new_vm(generation_id="")
    d.ok("VM.revert", d.ok("VM.snapshot", plain, "s"))
    assert d.field(plain, "generation_id") == ""


def test_revert_to_a_snapshot_whose_vm_was_destroyed_recreates_the_vm() -> None:
    d = driver()
    vm = d.new_vm(name_label="gone")
    uuid = d.field(vm, "uuid")
    first = d.ok("VM.snapshot", vm, "first")
    second = d.ok("VM.snapshot", vm, "second")
    d.ok("VM.destroy", vm)
    d.ok("VM.revert", first)
    back = d.ok("VM.get_by_uuid", uuid)
    assert back != vm
    assert d.field(back, "name_label") == "gone"
    assert d.field(back, "power_state") == "Halted"
    assert d.field(first, "snapshot_of") == back
    assert d.field(second, "snapshot_of") == back
    assert set(d.field(back, "snapshots")) == {first, second}


def test_revert_of_a_vm_that_is_not_a_snapshot() -> None:
    d = driver()
    vm = d.new_vm()
    assert d.fails("VM.revert", vm) == Failure("VM_REVERT_FAILED", (vm, "OpaqueRef:NULL"))


def test_copies_get_a_fresh_generation_id_unless_empty() -> None:
    d = driver()
    vm = d.new_vm(generation_id="5:6")
    clone = d.ok("VM.clone", vm, "c")
    assert GENID.match(d.field(clone, "generation_id"))
    assert d.field(d.ok("VM.clone", d.new_vm(generation_id=""), "e"), "generation_id") == ""
    assert d.field(d.new_vm(), "generation_id") == "0:0"  # the datamodel default


def test_base_template_name_is_kept_from_the_first_template() -> None:
    d = driver()
    template = d.new_vm(name_label="base", is_a_template=True)
    first = d.ok("VM.clone", template, "first")
    assert d.field(first, "other_config")["base_template_name"] == "base"
    assert d.field(first, "is_a_template") is True  # a clone of a template is one
    d.ok("VM.set_name_label", first, "derived")
    second = d.ok("VM.clone", first, "second")
    assert d.field(second, "other_config")["base_template_name"] == "base"


def test_a_clone_of_a_snapshot_names_the_snapshot_as_its_base_template() -> None:
    d = driver()
    snap = d.ok("VM.snapshot", d.new_vm(), "snap")
    clone = d.ok("VM.clone", snap, "from-snap")
    assert d.field(clone, "other_config")["base_template_name"] == "snap"
    assert d.field(clone, "snapshot_info") == {}
    assert d.field(clone, "snapshot_metadata") == ""


def test_snapshot_info_records_the_power_state_at_snapshot() -> None:
    d = driver()
    vm = d.in_state("Running")
    snap = d.ok("VM.snapshot", vm, "snap")
    assert d.field(snap, "snapshot_info") == {
        "disk-snapshot-type": "crash_consistent",
        "power-state-at-snapshot": "Running",
    }
    assert d.field(snap, "snapshot_metadata") != ""


def test_checkpoint_records_snapshot_info_only_of_a_running_vm() -> None:
    # xapi_vm_snapshot.ml checkpoint: snapshot_info starts empty and is filled in only when the
    # VM is suspended live; a suspended or paused VM's checkpoint carries none.
    d = driver()
    running, suspended, paused = (d.in_state(s) for s in ("Running", "Suspended", "Paused"))
    live = d.ok("VM.checkpoint", running, "live")
    assert d.field(live, "snapshot_info") == {
        "disk-snapshot-type": "crash_consistent",
        "power-state-at-snapshot": "Running",
    }
    for vm in (suspended, paused):
        assert d.field(d.ok("VM.checkpoint", vm, "not live"), "snapshot_info") == {}


def test_revert_of_a_live_vm_whose_hard_shutdown_is_blocked_fails_and_leaves_it_running() -> None:
    # message_forwarding.ml VM.revert shuts a VM that is not Halted down through the API
    # (Client.VM.hard_shutdown), so hard_shutdown's operation check, blocked list included, runs.
    d = driver()
    vm = d.in_state("Running")
    snap = d.ok("VM.snapshot", vm, "snap")
    d.ok("VM.add_to_blocked_operations", vm, "hard_shutdown", "kept up")
    assert d.fails("VM.revert", snap) == Failure("OPERATION_BLOCKED", (vm, "kept up"))
    assert d.field(vm, "power_state") == "Running"
    d.ok("VM.remove_from_blocked_operations", vm, "hard_shutdown")
    d.ok("VM.revert", snap)
    assert d.field(vm, "power_state") == "Halted"


def test_a_copy_of_a_suspended_snapshot_is_refused_by_its_own_shutdown_and_stays() -> None:
    # xapi_vm_clone.ml: a copy of a Suspended VM is Suspended, and a snapshot's copy a template;
    # xapi_vm.ml copy then shuts it down through the API, whose op check refuses a template,
    # while clone shuts its copy down directly.
    d = driver()
    checkpoint = d.ok("VM.checkpoint", d.in_state("Running"), "cp")
    before = set(d.ok("VM.get_all"))
    failure = d.fails("VM.copy", checkpoint, "copied", "OpaqueRef:NULL")
    (copy,) = set(d.ok("VM.get_all")) - before
    assert failure == Failure("VM_IS_TEMPLATE", (copy, "hard_shutdown"))
    assert d.field(copy, "power_state") == "Suspended"
    assert d.field(copy, "is_a_template") is True
    clone = d.ok("VM.clone", checkpoint, "cloned")
    assert d.field(clone, "power_state") == "Halted"
