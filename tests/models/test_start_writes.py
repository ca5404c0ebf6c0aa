"""What VM.start, resume and the shutdowns write into the record (xapi_vm.ml start, resume,
hard_shutdown, clean_shutdown_with_timeout, suspend; Xapi_vm_helpers
``ensure_device_model_profile_present``; Vm_platform's device-model defaults)."""

from __future__ import annotations

import pytest

from models.outcome import Failure
from tests.models.helpers import driver


def test_start_marks_a_vm_to_restart_under_ha() -> None:
    d = driver()
    vm = d.new_vm()
    d.ok("VM.set_ha_restart_priority", vm, "restart")
    assert d.field(vm, "ha_always_run") is False
    d.ok("VM.start", vm, False, False)
    assert d.field(vm, "ha_always_run") is True
    d.ok("VM.suspend", vm)
    assert d.field(vm, "ha_always_run") is False
    d.ok("VM.resume", vm, False, False)
    assert d.field(vm, "ha_always_run") is True
    d.ok("VM.hard_shutdown", vm)
    assert d.field(vm, "ha_always_run") is False


@pytest.mark.parametrize(
    ("params", "platform", "expected"),
    [
        ({}, {}, "qemu-upstream-compat"),
        ({"firmware": "uefi"}, {}, "qemu-upstream-uefi"),
        ({}, {"device-model": "qemu-trad"}, "qemu-upstream-compat"),
        ({}, {"device-model": "qemu-upstream"}, "qemu-upstream"),
    ],
)
def test_start_gives_an_hvm_guest_a_device_model(
    params: dict[str, str], platform: dict[str, str], expected: str
) -> None:
    d = driver()
    vm = d.new_vm(HVM_boot_params=params, platform=platform)
    d.ok("VM.start", vm, False, False)
    assert d.field(vm, "platform")["device-model"] == expected


def test_start_leaves_a_pv_guest_without_device_model() -> None:
    d = driver()
    vm = d.new_vm(HVM_boot_policy="", domain_type="pv", platform={"secureboot": "auto"})
    d.ok("VM.start", vm, False, False)
    assert d.field(vm, "platform") == {"secureboot": "false"}


def test_a_bad_firmware_fails_start_after_the_ha_flag_is_written() -> None:
    d = driver()
    vm = d.new_vm(HVM_boot_params={"firmware": "coreboot"}, ha_restart_priority="restart")
    assert d.fails("VM.start", vm, False, False) == Failure(
        "INVALID_VALUE", ("HVM-boot-params['firmware']", "coreboot")
    )
    assert d.field(vm, "ha_always_run") is True
    assert d.field(vm, "power_state") == "Halted"
