"""Building a starting world: a pool of hosts with their control domains, an SR, accounts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from types import MappingProxyType

from models.accounting import vm_memory_overhead
from models.checks import refresh
from models.features import ALL_FEATURES
from models.features import restrictions as feature_flags
from models.others import SR_DEFAULTS
from models.outcome import Value
from models.records import fresh_vm
from models.releases import DEFAULT_RELEASE, Release
from models.templates import DEFAULT_TEMPLATES, template_fields
from models.world import NULL_REF, Account, Facts, Host, Pool, World, new_ids, with_vm

__all__ = ["DOM0_MEMORY", "initial_world"]

DOM0_MEMORY = 4 * 2**30
GIB = 2**30


def _dom0_record(host: Host) -> dict[str, Value]:
    """The fields create_misc.ml ``create_domain_zero_record`` gives a host's control domain
    (written to the database directly, so no mac_seed; memory fixed at ``DOM0_MEMORY``)."""
    return {
        "name_label": f"Control domain on host: {host.name_label}",
        "name_description": "The domain which manages physical devices and manages other domains",
        "is_control_domain": True,
        "power_state": "Running",
        "domid": 0,
        "domarch": "x64",
        "resident_on": host.ref,
        "affinity": host.ref,
        "memory_static_min": DOM0_MEMORY,
        "memory_dynamic_min": DOM0_MEMORY,
        "memory_target": DOM0_MEMORY,
        "memory_dynamic_max": DOM0_MEMORY,
        "memory_static_max": DOM0_MEMORY,
        "VCPUs_max": 4,
        "VCPUs_at_startup": 4,
        "HVM_boot_policy": "",
        "HVM_shadow_multiplier": 1.0,
        "actions_after_softreboot": "soft_reboot",
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "destroy",
        "actions_after_crash": "destroy",
        "domain_type": "pv",
        "user_version": 1,
        "generation_id": "",
        "hardware_platform_version": 0,
        "other_config": {},
        "platform": {},
    }


def _add_dom0(world: World, host: Host) -> World:
    ref, record, world = fresh_vm(world, {})
    dom0 = {**record, **_dom0_record(host)}
    dom0["memory_overhead"] = vm_memory_overhead(dom0, world.release)  # update_memory_overhead
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
    features: Iterable[str] = ALL_FEATURES,
    templates: bool = False,
    facts: Facts = Facts(),
    salt: str = "xapi-conformance",
    release: Release = DEFAULT_RELEASE,
) -> World:
    """A pool of ``hosts`` hosts (each with a dom0), one SR, the given accounts, no guest VMs,
    behaving as xapi ``release``, licensed for ``features`` (less DMC unless ``dmc_enabled``),
    with the default templates when ``templates``."""
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
    licensed = set(features) - (set() if dmc_enabled else {"DMC"})
    restrictions = feature_flags(licensed)
    pool = Pool(pool_ref, pool_uuid, host_list[0].ref, MappingProxyType(restrictions))
    world, sr_ref, sr = _sr(world)
    world = replace(
        world,
        pool=pool,
        hosts=MappingProxyType({h.ref: h for h in host_list}),
        srs=MappingProxyType({sr_ref: MappingProxyType(sr)}),
    )
    for host in host_list:
        world = _add_dom0(world, host)
    for name in DEFAULT_TEMPLATES if templates else ():
        world = _add_template(world, name)
    return world


def _add_template(world: World, name: str) -> World:
    """A default template as its import and VM.set_is_default_template leave it."""
    seed, _, world = new_ids(world)
    template_uuid, fields = template_fields(name, seed.removeprefix("OpaqueRef:"))
    ref, record, world = fresh_vm(world, fields)
    record = {**record, "uuid": template_uuid, "is_default_template": True}
    return refresh(with_vm(world, ref, record), ref)
