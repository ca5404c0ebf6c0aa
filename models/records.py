"""VM records: what VM.create stores, what clone/copy/snapshot derive, what reads compute."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from types import MappingProxyType

from models.accounting import vm_memory_overhead
from models.catalogue import ENUMS, FIELDS
from models.outcome import Value
from models.schema import XType
from models.world import NULL_REF, Record, World, frozen, new_ids

__all__ = [
    "EPOCH",
    "NO_DOMAIN",
    "RELATION_FIELDS",
    "clear_residence",
    "derived_copy",
    "fresh_genid",
    "fresh_vm",
    "read_record",
    "read_records",
    "type_default",
]

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

RELATION_FIELDS: frozenset[str] = frozenset({"snapshots", "children"})
"""Fields computed from other VMs at read time, as xapi's DB computes set-valued relations."""

_IGNORED_BY_CREATE: Mapping[str, Value] = MappingProxyType(
    {
        "blocked_operations": MappingProxyType({}),
        "protection_policy": NULL_REF,
        "is_snapshot_from_vmpp": False,
        "snapshot_schedule": NULL_REF,
        "is_vmss_snapshot": False,
    }
)

_CREATE_RUNTIME: Mapping[str, Value] = MappingProxyType(
    {
        "is_default_template": False,
        "is_a_snapshot": False,
        "is_control_domain": False,
        "snapshot_of": NULL_REF,
        "parent": NULL_REF,
        "resident_on": NULL_REF,
        "scheduled_to_be_resident_on": NULL_REF,
        "domid": -1,
        "domarch": "",
        "guest_metrics": NULL_REF,
        "requires_reboot": False,
    }
)


def type_default(xtype: XType) -> Value:
    """The empty value of a type, as a fresh DB row holds it."""
    empties: dict[str, Value] = {
        "string": "",
        "int": 0,
        "float": 0.0,
        "bool": False,
        "ref": NULL_REF,
        "set": (),
        "map": MappingProxyType({}),
        "datetime": EPOCH,
        "void": "",
    }
    if xtype.kind == "enum":
        first: str = ENUMS[xtype.name][0]
        return first
    return empties.get(xtype.kind, "")


def _int(value: Value | None) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _domain_type(typed: Mapping[str, Value]) -> str:
    if typed.get("domain_type", "unspecified") != "unspecified":
        return str(typed["domain_type"])
    return "pv" if typed.get("HVM_boot_policy", "") == "" else "hvm"


def fresh_vm(world: World, typed: Mapping[str, Value]) -> tuple[str, Record, World]:
    """The ref, record and world after ``VM.create`` of a constructor record (semantics §9.1)."""
    ref, vm_uuid, world = new_ids(world)
    metrics, _, world = new_ids(world)
    record: dict[str, Value] = {f.name: type_default(f.type) for f in FIELDS.values()}
    record.update(typed)
    record.update(_IGNORED_BY_CREATE)
    record.update(_CREATE_RUNTIME)
    other_config = dict(_map(typed.get("other_config")))
    mac_seed, _, world = new_ids(world)
    other_config.setdefault("mac_seed", mac_seed.removeprefix("OpaqueRef:"))
    record.update(
        uuid=vm_uuid,
        metrics=metrics,
        other_config=other_config,
        domain_type=_domain_type(typed),
        power_state="Suspended" if typed.get("power_state") == "Suspended" else "Halted",
    )
    if record["power_state"] != "Suspended":  # xapi_vm.ml create keeps them only then
        record.update(last_booted_record="", last_boot_CPU_flags={}, suspend_VDI=NULL_REF)
    if record["has_vendor_device"] is True:
        record["hardware_platform_version"] = max(2, _int(record["hardware_platform_version"]))
    record["memory_overhead"] = vm_memory_overhead(record, world.release)
    if world.release.at_least("26.14"):  # datamodel_vm.ml: a field since 26.14, default ok
        record["secureboot_certificates_state"] = "ok"
    return ref, frozen(record), world


def _map(value: Value | None) -> Mapping[str, Value]:
    return value if isinstance(value, Mapping) else {}


NO_DOMAIN: Mapping[str, Value] = MappingProxyType(
    {"domid": -1, "resident_on": NULL_REF, "scheduled_to_be_resident_on": NULL_REF}
)
"""A VM with no running domain: what Halted, and Suspended outside a checkpoint, leave behind."""


def clear_residence(record: dict[str, Value]) -> None:
    """What force_state_reset does on entering Halted: no domain, no host."""
    record.update(NO_DOMAIN)


_COPY_RESETS: Mapping[str, Value] = MappingProxyType(
    {
        "blocked_operations": MappingProxyType({}),
        "is_default_template": False,
        "ha_always_run": False,
        "appliance": NULL_REF,
        "protection_policy": NULL_REF,
        "snapshot_schedule": NULL_REF,
        "start_delay": 0,
        "shutdown_delay": 0,
        "order": 0,
        "current_operations": MappingProxyType({}),
        "is_control_domain": False,
        "requires_reboot": False,
        "blobs": MappingProxyType({}),
        "is_snapshot_from_vmpp": False,
        "is_vmss_snapshot": False,
        "transportable_snapshot_id": "",
        "domarch": "",
        "suspend_SR": NULL_REF,
        "version": 0,
        "pending_guidances": (),
        "pending_guidances_recommended": (),
        "pending_guidances_full": (),
    }
)


def derived_copy(
    world: World,
    source: Mapping[str, Value],
    name: str,
    *,
    as_snapshot_of: str | None,
    now: datetime.datetime,
) -> tuple[str, dict[str, Value], World]:
    """The record of a clone, copy or snapshot of ``source`` (semantics §9.3, copy_vm_record)."""
    ref, new_uuid, world = new_ids(world)
    generation, _, world = new_ids(world)
    record = dict(source)
    record.update(_COPY_RESETS)
    genid = fresh_genid(str(source["generation_id"]), generation)
    record.update(uuid=new_uuid, name_label=name, generation_id=genid)
    snapshot = as_snapshot_of is not None
    record["is_a_snapshot"] = snapshot
    record["is_a_template"] = snapshot or source["is_a_template"] is True
    other = {
        k: v
        for k, v in _map(source["other_config"]).items()
        if k not in {"default_template", "xensource_internal"}
    }
    if source["is_a_template"] is True and "base_template_name" not in other:
        other["base_template_name"] = source["name_label"]
    record["snapshot_info"] = (
        {
            "disk-snapshot-type": "crash_consistent",
            "power-state-at-snapshot": str(source["power_state"]),
        }
        if snapshot
        else {}
    )
    record["snapshot_metadata"] = f"(snapshot of VM {source['uuid']})" if snapshot else ""
    if as_snapshot_of is not None:
        record.update(snapshot_of=as_snapshot_of, snapshot_time=now, parent=source["parent"])
    else:
        record.update(snapshot_of=NULL_REF, snapshot_time=EPOCH, parent=NULL_REF)
        seed, _, world = new_ids(world)
        other["mac_seed"] = seed.removeprefix("OpaqueRef:")
    record["other_config"] = other
    clear_residence(record)
    metrics, _, world = new_ids(world)
    record["metrics"] = metrics
    return ref, record, world


def fresh_genid(current: str, seed: str) -> str:
    """xapi's fresh_genid: an empty generation id stays empty, else two fresh int64s "a:b"."""
    if current == "":
        return ""
    digits = seed.removeprefix("OpaqueRef:").replace("-", "")
    return f"{int(digits[:15], 16)}:{int(digits[15:30], 16)}"


def read_record(world: World, ref: str) -> dict[str, Value]:
    """The record as a client reads it: stored fields plus the relations computed now."""
    return _as_read(world.vms[ref], ref, _relations(world))


def read_records(world: World) -> dict[str, dict[str, Value]]:
    """Every VM's record as ``read_record`` reads it, the relations worked out once for all
    (a pool's records read at once)."""
    relations = _relations(world)
    return {ref: _as_read(vm, ref, relations) for ref, vm in world.vms.items()}


_Relations = tuple[dict[Value, list[str]], dict[Value, list[str]]]
"""The VMs whose ``snapshot_of`` is a ref, and those whose ``parent`` is, by that ref."""


def _relations(world: World) -> _Relations:
    snapshots: dict[Value, list[str]] = {}
    children: dict[Value, list[str]] = {}
    for ref, vm in world.vms.items():
        snapshots.setdefault(vm["snapshot_of"], []).append(ref)
        children.setdefault(vm["parent"], []).append(ref)
    return snapshots, children


def _as_read(vm: Mapping[str, Value], ref: str, relations: _Relations) -> dict[str, Value]:
    snapshots, children = relations
    return {
        **vm,
        "snapshots": tuple(snapshots.get(ref, ())),
        "children": tuple(children.get(ref, ())),
    }
