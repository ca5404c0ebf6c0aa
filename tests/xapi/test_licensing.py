"""Licensing as xapi checks it, on the model and the embedded server over both protocols.

pool.restrictions lists every flag of xapi-types ``features.ml`` in its order
(``to_assoc_list``); without a licensing daemon xapi runs as "free/libre" with every feature
(``license_init.ml``). A restricted feature makes ``Pool_features.assert_enabled`` fail
LICENSE_RESTRICTION [feature name] at the point each message checks it.
"""

from __future__ import annotations

import pytest

from models.features import FEATURES
from models.outcome import Failure
from tests.xapi.conftest import BACKENDS, Api, make_api

MIB = 2**20
GIB = 2**30


def test_restrictions_list_every_flag_enabled(api: Api) -> None:
    """features.ml to_assoc_list of all_features: restrict_* "false", enable_xha "true"."""
    pool = str(api.ok("pool.get_all")[0])
    flags = api.ok("pool.get_restrictions", pool)
    assert list(flags) == [f.flag for f in FEATURES]
    assert len(flags) == 54
    assert {k: v for k, v in flags.items() if v != "false"} == {"enable_xha": "true"}


def _restricted(kind: str, *features: str) -> Api:
    return make_api(kind, restricted=features)


def _licence(feature: str) -> Failure:
    return Failure("LICENSE_RESTRICTION", (feature,))


@pytest.mark.parametrize("kind", BACKENDS)
def test_restricted_flags_show_in_pool_restrictions(kind: str) -> None:
    api = _restricted(kind, "Checkpoint", "HA")
    pool = str(api.ok("pool.get_all")[0])
    flags = api.ok("pool.get_restrictions", pool)
    assert flags["restrict_checkpoint"] == "true"
    assert flags["enable_xha"] == "false"
    assert flags["restrict_vmss"] == "false"


@pytest.mark.parametrize("kind", BACKENDS)
def test_vm_start_is_checked_before_anything_else(kind: str) -> None:
    """message_forwarding.ml start/start_on: VM_start first (even for a VM that does not
    exist); assert_can_boot_here checks it only for a halted VM."""
    api = _restricted(kind, "VM_start")
    vm = api.new_vm()
    host = str(api.ok("host.get_all")[0])
    assert api.fails("VM.start", vm, False, False) == _licence("VM_start")
    assert api.fails("VM.start", "OpaqueRef:NULL", False, False) == _licence("VM_start")
    assert api.fails("VM.start_on", vm, host, False, False) == _licence("VM_start")
    assert api.fails("VM.assert_can_boot_here", vm, host) == _licence("VM_start")


@pytest.mark.parametrize("kind", BACKENDS)
def test_checkpoint_and_live_vcpus_are_checked_after_the_operation_check(kind: str) -> None:
    """xapi_vm.ml checkpoint and set_VCPUs_number_live assert their feature in the local
    call, after message_forwarding's operation check."""
    api = _restricted(kind, "Checkpoint", "Live_set_vcpus")
    halted = api.new_vm()
    assert api.fails("VM.set_VCPUs_number_live", halted, "1").code == "VM_BAD_POWER_STATE"
    running = api.in_state("Running")
    assert api.fails("VM.checkpoint", running, "cp") == _licence("Checkpoint")
    assert api.fails("VM.set_VCPUs_number_live", running, "1") == _licence("Live_set_vcpus")
    assert api.ok("VM.snapshot", running, "snap")


@pytest.mark.parametrize("kind", BACKENDS)
def test_snapshot_schedule_needs_vmss(kind: str) -> None:
    """xapi_vm.ml set_snapshot_schedule: VMSS first, then the schedule must be a VMSS or null."""
    restricted = _restricted(kind, "VMSS")
    vm = restricted.new_vm()
    assert restricted.fails("VM.set_snapshot_schedule", vm, "OpaqueRef:NULL") == _licence("VMSS")
    api = make_api(kind)
    vm = api.new_vm()
    bogus = "OpaqueRef:00000000-0000-0000-0000-000000000001"
    assert api.fails("VM.set_snapshot_schedule", vm, bogus) == Failure("INVALID_VALUE", (bogus,))
    assert api.ok("VM.set_snapshot_schedule", vm, "OpaqueRef:NULL") == ""


@pytest.mark.parametrize("kind", BACKENDS)
def test_nested_virt_needs_its_feature_at_start(kind: str) -> None:
    """vm_platform.ml check_restricted_flags at VM.start: the flag must read as a boolean,
    and a true one needs Nested_virt."""
    api = _restricted(kind, "Nested_virt")
    pinned = {"memory_dynamic_min": str(GIB), "memory_static_min": str(GIB)}
    vm = api.new_vm(platform={"nested-virt": "true"}, **pinned)
    assert api.fails("VM.start", vm, False, False) == _licence("Nested_virt")
    odd = api.new_vm(platform={"nested-virt": "maybe"}, **pinned)
    expected = Failure("INVALID_VALUE", ("platform:nested-virt", "maybe"))
    assert api.fails("VM.start", odd, False, False) == expected


@pytest.mark.parametrize("kind", BACKENDS)
def test_pool_migrate_needs_xen_motion(kind: str) -> None:
    """xapi_vm_migrate.ml pool_migrate: Xen_motion first in the local call."""
    api = _restricted(kind, "Xen_motion")
    vm = api.in_state("Running")
    host = str(api.ok("host.get_all")[1])
    assert api.fails("VM.pool_migrate", vm, host, {}) == _licence("Xen_motion")
