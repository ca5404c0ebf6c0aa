"""Ported from xapi's ocaml/quicktest/quicktest_vm_lifecycle.ml.

Each test starts the VM if halted, then shuts it down or reboots it, and waits for the domid:
-1 once halted, a new domid once rebooted. In the internal cases the guest's domain stops
itself (the quicktest calls Xenctrl.domain_shutdown from the host 15 s after the start); the
simulator has no guest, so the test makes that host-side event happen in the model
(``models.lifecycle.guest_stops``) and reads the outcome over the API. What xenopsd does then
follows xenops_server.ml ``VM_check_state`` and xapi_xenops.ml ``on_action_behaviour``.
"""

from __future__ import annotations

import pytest

from models.lifecycle import guest_stops
from tests.xapi.conftest import Api

API_CASES = [
    pytest.param("VM.hard_shutdown", "halted", id="Hard-Shutdown"),
    pytest.param("VM.hard_reboot", "rebooted", id="Hard-Reboot"),
    pytest.param("VM.clean_shutdown", "halted", id="Clean-Shutdown"),
    pytest.param("VM.clean_reboot", "rebooted", id="Clean-Reboot"),
]


def _wait_for_domid(api: Api, vm: str, domid: int, result: str) -> None:
    """The quicktest's wait_for_domid: -1 once halted, another domid once rebooted."""
    if result == "halted":
        assert api.int(vm, "domid") == -1
        assert api.get(vm, "power_state") == "Halted"
    else:
        assert api.int(vm, "domid") not in (domid, -1)
        assert api.get(vm, "power_state") == "Running"


@pytest.mark.parametrize(("call", "result"), API_CASES)
def test_vm_lifecycle_api(api: Api, call: str, result: str) -> None:
    """VM lifecycle tests, Api cases (clean ones need PV drivers: the server has them)."""
    vm = api.new_vm()
    if api.get(vm, "power_state") == "Halted":
        api.ok("VM.start", vm, False, False)
    domid = api.int(vm, "domid")
    api.ok(call, vm)
    _wait_for_domid(api, vm, domid, result)


INTERNAL_CASES = [
    pytest.param("reboot", "rebooted", id="Internal_reboot"),
    pytest.param("poweroff", "halted", id="Internal_halt"),
    pytest.param("crash", "halted", id="Internal_crash"),
]
QUICKTEST_DELAY_S = 15.0
"""The quicktest waits this long after VM.start before the guest stops its domain."""


@pytest.mark.parametrize(("reason", "result"), INTERNAL_CASES)
def test_vm_lifecycle_internal(api: Api, reason: str, result: str) -> None:
    """VM lifecycle tests, Internal_op cases: the domain shuts itself down 15 s after start.

    A crash that soon is shut down, not restarted (VM_check_state: "crashed too quickly").
    """
    vm = api.in_state("Running")
    domid = api.int(vm, "domid")
    assert domid > 0
    api.host_event(lambda world: guest_stops(world, vm, reason, QUICKTEST_DELAY_S))
    _wait_for_domid(api, vm, domid, result)


CRASH_ACTIONS = [
    pytest.param("restart", "rebooted", id="restart"),
    pytest.param("destroy", "halted", id="destroy"),
    pytest.param("coredump_and_restart", "rebooted", id="coredump_and_restart"),
    pytest.param("coredump_and_destroy", "halted", id="coredump_and_destroy"),
    pytest.param("preserve", "paused", id="preserve"),
]


@pytest.mark.parametrize(("action", "result"), CRASH_ACTIONS)
def test_a_crash_after_the_grace_period_takes_the_crash_action(
    api: Api, action: str, result: str
) -> None:
    """xenops_server.ml VM_check_state, Needs_crashdump after 120 s: on_crash as
    on_action_behaviour maps actions_after_crash (preserve pauses the domain). A core dump
    needs a PV guest (xapi_vm_helpers.ml validate_actions_after_crash)."""
    pv = {"HVM_boot_policy": ""} if action.startswith("coredump") else {}
    vm = api.in_state("Running", actions_after_crash=action, **pv)
    domid = api.int(vm, "domid")
    api.host_event(lambda world: guest_stops(world, vm, "crash", 600.0))
    if result == "paused":
        assert api.get(vm, "power_state") == "Paused"
        assert api.int(vm, "domid") == domid
    else:
        _wait_for_domid(api, vm, domid, result)


@pytest.mark.parametrize("reason", ["poweroff", "reboot"])
@pytest.mark.parametrize("action", ["destroy", "restart"])
def test_a_clean_exit_takes_the_vm_action(api: Api, reason: str, action: str) -> None:
    """VM_check_state: Needs_poweroff takes actions_after_shutdown and Needs_reboot
    actions_after_reboot, whatever the guest asked (a halt may restart, a reboot may halt);
    an internal halt keeps ha_always_run (pool ha_reboot_vm_on_internal_shutdown, default
    true; xapi_xenops.ml update_vm)."""
    field = "actions_after_shutdown" if reason == "poweroff" else "actions_after_reboot"
    vm = api.in_state("Running", **{field: action})
    api.ok("VM.set_ha_restart_priority", vm, "best-effort")
    api.ok("VM.set_ha_always_run", vm, True)
    domid = api.int(vm, "domid")
    api.host_event(lambda world: guest_stops(world, vm, reason, QUICKTEST_DELAY_S))
    _wait_for_domid(api, vm, domid, "rebooted" if action == "restart" else "halted")
    assert api.get(vm, "ha_always_run") is True
