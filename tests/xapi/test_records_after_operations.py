"""What VM.create keeps and resets, and what clone, copy, snapshot and checkpoint copy or clear,
field by field, as xapi_vm.ml ``create`` and xapi_vm_clone.ml ``copy_vm_record`` write them; on
the model and the embedded server over both protocols."""

from __future__ import annotations

import pytest

from tests.xapi.conftest import Api

NULL = "OpaqueRef:NULL"


def test_create_keeps_suspend_data_only_for_a_suspended_vm(api: Api) -> None:
    """xapi_vm.ml create: last_booted_record, last_boot_CPU_flags and suspend_VDI are stored
    only when power_state is Suspended; a Halted VM gets "", {} and NULL."""
    vdi = "OpaqueRef:11111111-2222-3333-4444-555555555555"
    vm = api.new_vm(
        power_state="Halted",
        last_booted_record="(record)",
        last_boot_CPU_flags={"vendor": "x"},
        suspend_VDI=vdi,
    )
    assert api.get(vm, "last_booted_record") == ""
    assert api.get(vm, "last_boot_CPU_flags") == {}
    assert api.get(vm, "suspend_VDI") == NULL


def _source(api: Api) -> str:
    sr = str(api.ok("SR.get_all")[0])
    return api.new_vm(version="5", suspend_SR=sr, reference_label="ref-label", tags=["t"])


@pytest.mark.parametrize("op", ["clone", "copy", "snapshot"])
def test_copies_reset_what_copy_vm_record_resets(api: Api, op: str) -> None:
    """copy_vm_record: version 0, suspend_SR null, blobs and guidances empty, no VMSS or VMPP
    snapshot flag, transportable_snapshot_id "", domarch ""; reference_label, tags and the
    memory_overhead as stored are copied."""
    vm = _source(api)
    api.ok("VM.create_new_blob", vm, "b", "text/plain", False)
    args = (vm, "copied", NULL) if op == "copy" else (vm, "copied")
    new = str(api.ok(f"VM.{op}", *args))
    assert api.int(new, "version") == 0
    assert api.get(new, "suspend_SR") == NULL
    assert api.get(new, "blobs") == {}
    assert api.get(new, "is_vmss_snapshot") is False
    assert api.get(new, "transportable_snapshot_id") == ""
    assert api.get(new, "domarch") == ""
    assert list(api.get(new, "pending_guidances")) == []
    assert api.get(new, "reference_label") == "ref-label"
    assert list(api.get(new, "tags")) == ["t"]
    assert api.int(new, "memory_overhead") == api.int(vm, "memory_overhead")
