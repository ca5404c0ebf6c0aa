"""Building a starting world: a pool of hosts with their control domains, an SR, accounts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from types import MappingProxyType

from models.checks import refresh
from models.others import SR_DEFAULTS
from models.outcome import Value
from models.records import fresh_vm
from models.releases import DEFAULT_RELEASE, Release
from models.world import NULL_REF, Account, Facts, Host, Pool, World, new_ids, with_vm

__all__ = ["DOM0_MEMORY", "initial_world"]

DOM0_MEMORY = 4 * 2**30
GIB = 2**30


def _dom0_record(host: Host, host_index: int) -> dict[str, Value]:
    return {
        "name_label": f"Control domain on host: {host.name_label}",
        "is_control_domain": True,
        "power_state": "Running",
        "domid": 0,
        "resident_on": host.ref,
        "affinity": host.ref,
        "memory_static_min": DOM0_MEMORY,
        "memory_dynamic_min": DOM0_MEMORY,
        "memory_target": DOM0_MEMORY,
        "memory_dynamic_max": DOM0_MEMORY,
        "memory_static_max": DOM0_MEMORY,
        "VCPUs_max": 4,
        "VCPUs_at_startup": 4,
        "domain_type": "pv",
        "user_version": 1,
        "other_config": {"storage_driver_domain": f"dom0-{host_index}"},
    }


def _add_dom0(world: World, host: Host, index: int) -> World:
    ref, record, world = fresh_vm(world, {})
    dom0 = {**record, **_dom0_record(host, index)}
    world = refresh(with_vm(world, ref, dom0), ref)
    hosts = {**world.hosts, host.ref: replace(host, control_domain=ref)}
    return replace(world, hosts=MappingProxyType(hosts))


def _hosts(world: World, count: int) -> tuple[World, list[Host]]:
    hosts = []
    for index in range(count):
        ref, host_uuid, world = new_ids(world)
        hosts.append(Host(ref, host_uuid, f"host{index}", f"10.0.0.{index + 1}", 64 * GIB))
    return world, hosts


def _sr(world: World) -> tuple[World, str, dict[str, Value]]:
    ref, sr_uuid, world = new_ids(world)
    record: dict[str, Value] = {
        **SR_DEFAULTS,
        "uuid": sr_uuid,
        "name_label": "Local storage",
        "physical_size": 500 * GIB,
        "other_config": {"i18n-key": "local-storage"},
        "allowed_operations": ("scan", "plug", "unplug", "vdi_create", "vdi_destroy"),
    }
    return world, ref, record


def initial_world(
    *,
    hosts: int = 2,
    accounts: Iterable[Account] = (Account("root", "", "pool-admin", superuser=True),),
    dmc_enabled: bool = True,
    facts: Facts = Facts(),
    salt: str = "xapi-conformance",
    release: Release = DEFAULT_RELEASE,
) -> World:
    """A pool of ``hosts`` hosts (each with a dom0), one SR, the given accounts, no guest VMs,
    behaving as xapi ``release``."""
    seed = World(
        pool=Pool(NULL_REF, "", NULL_REF),
        hosts=MappingProxyType({}),
        srs=MappingProxyType({}),
        vms=MappingProxyType({}),
        accounts=MappingProxyType({a.name: a for a in accounts}),
        facts=facts,
        salt=salt,
        release=release,
    )
    world, host_list = _hosts(seed, max(1, hosts))
    pool_ref, pool_uuid, world = new_ids(world)
    restrictions = {"restrict_dmc": "false" if dmc_enabled else "true"}
    pool = Pool(pool_ref, pool_uuid, host_list[0].ref, MappingProxyType(restrictions))
    world, sr_ref, sr = _sr(world)
    world = replace(
        world,
        pool=pool,
        hosts=MappingProxyType({h.ref: h for h in host_list}),
        srs=MappingProxyType({sr_ref: MappingProxyType(sr)}),
    )
    for index, host in enumerate(host_list):
        world = _add_dom0(world, host, index)
    return world
