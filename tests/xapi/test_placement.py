"""Placement: where a VM may boot, from xapi_vm_helpers.ml ``assert_can_boot_here`` and
``get_possible_hosts_for_vm`` and message_forwarding.ml ``start_on`` (xapi-project/xen-api).

Each expectation runs against the model and the embedded server over XML-RPC and JSON-RPC.
The simulated hosts offer virtual hardware platform versions 0, 1 and 2 and have 16 CPUs and
64 GiB, as their records say.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from models.outcome import Failure
from models.world import World
from tests.xapi.conftest import BACKENDS, Api, make_api

GIB = 2**30


def _hosts(api: Api) -> tuple[str, str]:
    """(the pool master, the other host)."""
    pool = api.ok("pool.get_all")[0]
    master = str(api.ok("pool.get_master", pool))
    other = next(str(h) for h in api.ok("host.get_all") if h != master)
    return master, other


def _not_live(host: str) -> object:
    def change(world: World) -> World:
        hosts = {**world.hosts, host: replace(world.hosts[host], live=False)}
        return replace(world, hosts=MappingProxyType(hosts))

    return change


def test_hardware_platform_version_no_host_offers(api: Api) -> None:
    """xapi_vm_helpers.ml ``assert_hardware_platform_support``: the host's versions listed as
    OCaml prints an int list; start_on propagates it, start swallows it, no host is possible."""
    master, other = _hosts(api)
    vm = api.new_vm()
    api.ok("VM.set_hardware_platform_version", vm, 3)
    for host in (master, other):
        expected = Failure(
            "VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION", (host, "[0; 1; 2]", vm, "3")
        )
        assert api.fails("VM.assert_can_boot_here", vm, host) == expected
        assert api.fails("VM.start_on", vm, host, False, False) == expected
    assert api.fails("VM.start", vm, False, False) == Failure("NO_HOSTS_AVAILABLE", ())
    assert tuple(api.ok("VM.get_possible_hosts", vm)) == ()
    assert api.get(vm, "power_state") == "Halted"
    api.ok("VM.set_hardware_platform_version", vm, 2)
    api.ok("VM.start_on", vm, other, False, False)
    assert api.get(vm, "resident_on") == other


def test_host_disabled(api: Api) -> None:
    """xapi_vm_helpers.ml ``assert_host_is_enabled`` after host.disable (xapi_host.ml
    ``disable``): HOST_DISABLED [host] for a Halted VM; a VM running there passes (a local
    live migration); host.enable lifts it."""
    master, other = _hosts(api)
    running = api.new_vm(affinity=other)
    api.ok("VM.start_on", running, other, False, False)
    api.ok("host.disable", other)
    assert api.ok("host.get_enabled", other) is False
    vm = api.new_vm()
    assert api.fails("VM.assert_can_boot_here", vm, other) == Failure("HOST_DISABLED", (other,))
    assert api.fails("VM.start_on", vm, other, False, False) == Failure("HOST_DISABLED", (other,))
    assert tuple(api.ok("VM.get_possible_hosts", vm)) == (master,)
    assert api.ok("VM.assert_can_boot_here", running, other) == ""
    api.ok("VM.start", vm, False, False)
    assert api.get(vm, "resident_on") == master
    api.ok("host.enable", other)
    assert set(api.ok("VM.get_possible_hosts", api.new_vm())) == {master, other}


def test_host_disabled_is_checked_before_the_platform_version(api: Api) -> None:
    """``assert_can_boot_here``'s order: the host enabled, then the hardware platform."""
    _, other = _hosts(api)
    vm = api.new_vm()
    api.ok("VM.set_hardware_platform_version", vm, 3)
    api.ok("host.disable", other)
    assert api.fails("VM.assert_can_boot_here", vm, other) == Failure("HOST_DISABLED", (other,))


def test_host_not_live_has_no_parameters(api: Api) -> None:
    """xapi_vm_helpers.ml ``assert_host_is_live``: HOST_NOT_LIVE [] (the host is not named);
    get_possible_hosts leaves the host out."""
    master, other = _hosts(api)
    api.host_event(_not_live(other))  # type: ignore[arg-type]
    vm = api.new_vm()
    assert api.fails("VM.assert_can_boot_here", vm, other) == Failure("HOST_NOT_LIVE", ())
    assert tuple(api.ok("VM.get_possible_hosts", vm)) == (master,)


@pytest.mark.parametrize("flag", ["true", "1"])
def test_more_vcpus_than_the_host_has_cpus(api: Api, flag: str) -> None:
    """xapi_vm_helpers.ml ``assert_enough_pcpus``: VCPUs_max above the host's cpu_count is
    HOST_NOT_ENOUGH_PCPUS [vcpus, pcpus] unless platform vcpu-unrestricted is true."""
    master, _ = _hosts(api)
    cpus = int(api.ok("host.get_cpu_info", master)["cpu_count"])
    vm = api.new_vm()
    api.ok("VM.set_VCPUs_max", vm, cpus + 1)
    expected = Failure("HOST_NOT_ENOUGH_PCPUS", (str(cpus + 1), str(cpus)))
    assert api.fails("VM.assert_can_boot_here", vm, master) == expected
    assert api.fails("VM.start_on", vm, master, False, False) == expected
    assert tuple(api.ok("VM.get_possible_hosts", vm)) == ()
    api.ok("VM.add_to_platform", vm, "vcpu-unrestricted", flag)
    api.ok("VM.start_on", vm, master, False, False)


def _held(api: Api, host: str) -> int:
    """memory_check.ml ``vm_compute_used_memory`` summed over the host's resident VMs."""
    resident = api.ok("host.get_resident_VMs", host)
    return sum(
        api.int(vm, "memory_dynamic_min") + api.int(vm, "memory_overhead") for vm in resident
    )


def test_not_enough_free_memory_counts_overheads(api: Api) -> None:
    """xapi_vm_helpers.ml ``assert_enough_memory_available`` with memory_check.ml: the VM needs
    its dynamic_min plus overhead (``vm_compute_start_memory``); the host has its total less
    each resident VM's dynamic_min plus overhead, its control domain's included
    (``host_compute_free_memory_with_maximum_compression``)."""
    master, _ = _hosts(api)
    size = str(40 * GIB)
    first = api.new_vm(memory_static_max=size, memory_dynamic_max=size, memory_dynamic_min=size)
    api.ok("VM.start_on", first, master, False, False)
    vm = api.new_vm(memory_static_max=size, memory_dynamic_max=size, memory_dynamic_min=size)
    needed = 40 * GIB + api.int(vm, "memory_overhead")
    free = 64 * GIB - _held(api, master)
    expected = Failure("HOST_NOT_ENOUGH_FREE_MEMORY", (str(needed), str(free)))
    assert api.fails("VM.assert_can_boot_here", vm, master) == expected
    assert api.fails("VM.start_on", vm, master, False, False) == expected


def test_a_placement_failure_leaves_the_ha_flag_and_platform_unwritten(api: Api) -> None:
    """message_forwarding.ml ``start_on``: placement (``reserve_memory_for_vm``) runs before
    xapi_vm.ml ``start``, which sets ha_always_run and the device model; a VM refused by the
    host keeps neither."""
    master, _ = _hosts(api)
    vm = api.new_vm(ha_restart_priority="restart")
    api.ok("VM.set_hardware_platform_version", vm, 3)
    api.fails("VM.start_on", vm, master, False, False)
    assert api.get(vm, "ha_always_run") is False
    assert "device-model" not in api.get(vm, "platform")


def test_resume_places_before_it_writes_the_ha_flag(api: Api) -> None:
    """message_forwarding.ml ``resume`` and ``resume_on``: placement first (every host error
    swallowed, or the named host's propagated), then xapi_vm.ml ``resume`` sets ha_always_run;
    with every host disabled the Suspended VM keeps it false."""
    master, other = _hosts(api)
    vm = api.in_state("Suspended", ha_restart_priority="restart")
    assert api.get(vm, "ha_always_run") is False
    for host in (master, other):
        api.ok("host.disable", host)
    assert api.fails("VM.resume", vm, False, False) == Failure("NO_HOSTS_AVAILABLE", ())
    assert api.fails("VM.resume_on", vm, other, False, False) == Failure("HOST_DISABLED", (other,))
    assert api.get(vm, "ha_always_run") is False
    api.ok("host.enable", other)
    api.ok("VM.resume", vm, False, False)
    assert (api.get(vm, "resident_on"), api.get(vm, "ha_always_run")) == (other, True)


@pytest.mark.parametrize("kind", BACKENDS)
def test_pool_migrate_checks_the_host_before_the_licence(kind: str) -> None:
    """message_forwarding.ml ``pool_migrate``: ``reserve_memory_for_vm`` (assert_can_boot_here)
    runs before xapi_vm_migrate.ml checks Xen_motion, a localhost migration included (which
    the disabled check lets through)."""
    api = make_api(kind, restricted=("Xen_motion",))
    master, other = _hosts(api)
    vm = api.in_state("Running", affinity=master)
    api.ok("host.disable", other)
    api.ok("host.disable", master)
    assert api.fails("VM.pool_migrate", vm, other, {}) == Failure("HOST_DISABLED", (other,))
    assert api.fails("VM.pool_migrate", vm, master, {}) == Failure(
        "LICENSE_RESTRICTION", ("Xen_motion",)
    )
