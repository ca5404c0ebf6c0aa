"""models.lifecycle.guest_stops: a guest stopping its own domain (xenops_server.ml
``VM_check_state``), beyond the quicktest cases of tests/xapi/test_quicktest_vm_lifecycle.py."""

from __future__ import annotations

import pytest

from models.lifecycle import CRASH_GRACE_S, guest_stops
from tests.models.helpers import driver


def test_only_a_running_guest_can_stop_its_domain() -> None:
    d = driver()
    for state in ("Halted", "Paused", "Suspended"):
        vm = d.in_state(state)
        assert guest_stops(d.world, vm, "poweroff", CRASH_GRACE_S) is d.world


def test_a_restart_is_a_new_domain_on_the_same_host() -> None:
    d = driver()
    vm = d.in_state("Running", actions_after_reboot="restart")
    before = d.world.vms[vm]
    after = guest_stops(d.world, vm, "reboot", 1.0).vms[vm]
    assert after["power_state"] == "Running"
    assert after["domid"] != before["domid"]
    assert after["resident_on"] == before["resident_on"]


def test_an_unknown_reason_is_refused() -> None:
    d = driver()
    vm = d.in_state("Running")
    with pytest.raises(ValueError, match="unknown reason 'suspend'"):
        guest_stops(d.world, vm, "suspend", 1.0)
