"""Creating and destroying VMs: create, clone, copy, snapshot, checkpoint, revert, destroy (§9)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from xml.etree import ElementTree

from models import catalogue
from models.checks import guarded, refresh, update_vm
from models.errors import XenAPIError
from models.features import assert_enabled
from models.outcome import Failure, Value
from models.records import NO_DOMAIN, derived_copy, fresh_genid, fresh_vm
from models.transition import Ctx, Handler, Result, as_map, done, failed, vm_of
from models.unmarshal import UnmarshalError, unmarshal_record
from models.world import NULL_REF, Record, World, frozen, new_ids, with_vm, without_vm

__all__ = ["HANDLERS"]


def create(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.create: no validation of memory, VCPUs or affinity; only the Suspended data rule."""
    raw = args[0]
    assert isinstance(raw, Mapping)
    try:
        typed = unmarshal_record(raw, catalogue.create_fields(), catalogue.ENUMS)
    except UnmarshalError as error:
        raise XenAPIError("INTERNAL_ERROR", error.text) from error
    ref, record, world = fresh_vm(ctx.world, typed)
    if record["power_state"] == "Suspended" and not _suspend_data(record):
        # xapi draws the ref (and makes the VM's metrics) before it refuses: the ref is spent
        refused = XenAPIError("VM_BAD_POWER_STATE", ref, "halted", "suspended")
        return failed(world, refused.failure())
    return done(refresh(with_vm(world, ref, record), ref), ref)


def _suspend_data(record: Record) -> bool:
    return bool(
        as_map(record["last_boot_CPU_flags"])
        and record["last_booted_record"]
        and record["suspend_VDI"] != NULL_REF
    )


def destroy(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.destroy: op check, default-template guard, children re-parented, record gone."""
    ref = str(args[0])

    def body(vm: Record) -> Result:
        if as_map(vm["other_config"]).get("default_template") == "true":
            raise XenAPIError("VM_CANNOT_DELETE_DEFAULT_TEMPLATE")
        world = ctx.world
        for child, record in world.vms.items():
            if record["parent"] == ref:
                world = with_vm(world, child, {**record, "parent": vm["parent"]})
        sources = {k: v for k, v in world.snapshot_sources.items() if k != ref}
        world = replace(world, snapshot_sources=MappingProxyType(sources))
        return done(without_vm(world, ref))

    return guarded(ctx.world, ref, "destroy", body)


def _metrics_copied(world: World, source: str, new: str) -> World:
    """xapi_vm_helpers.ml ``copy_metrics``: the new VM's VM_metrics are a copy of the source's,
    with the nomigrate and nested-virt flags and the domain type its last boot captured (none
    captured: none)."""
    flags, types = dict(world.booted_flags), dict(world.booted_domain_types)
    for captured in (flags, types):
        captured.pop(new, None)
    if source in world.booted_flags:
        flags[new] = world.booted_flags[source]
    if source in world.booted_domain_types:
        types[new] = world.booted_domain_types[source]
    return replace(
        world, booted_flags=MappingProxyType(flags), booted_domain_types=MappingProxyType(types)
    )


def _add_copy(world: World, ref: str, record: dict[str, Value], source: Record, op: str) -> World:
    """A copy of a Suspended VM is Suspended; a clone of a snapshot is hard-shut at once
    (xapi_vm.ml clone calls hard_shutdown itself), a copy of one only through the API
    (``_snapshot_copy_shut``)."""
    record.update(power_state="Halted", suspend_VDI=NULL_REF)
    if source["power_state"] == "Suspended" and (
        op == "copy" or source["is_a_snapshot"] is not True
    ):
        vdi, _, world = new_ids(world)
        record.update(power_state="Suspended", suspend_VDI=vdi)
    return refresh(with_vm(world, ref, record), ref)


def _snapshot_copy_shut(world: World, source: Record, new_ref: str) -> Result:
    """xapi_vm.ml copy: a snapshot's copy not Halted is shut down through the API
    (Client.VM.hard_shutdown), whose op check refuses it, a template (VM_IS_TEMPLATE): the call
    fails and the Suspended copy stays."""
    if source["is_a_snapshot"] is not True or world.vms[new_ref]["power_state"] == "Halted":
        return done(world, new_ref)
    halted = {"power_state": "Halted", "suspend_VDI": NULL_REF}
    return guarded(
        world, new_ref, "hard_shutdown", lambda _: done(update_vm(world, new_ref, halted), new_ref)
    )


def _copier(op: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref, name = str(args[0]), str(args[1])

        def body(vm: Record) -> Result:
            # VM.copy's SR need not exist: an invalid reference copies each disk within its
            # own SR (xapi_vm.ml copy; datamodel_vm.ml: "it uses the existing SRs")
            new_ref, record, world = derived_copy(
                ctx.world, vm, name, as_snapshot_of=None, now=ctx.now
            )
            world = _metrics_copied(world, ref, new_ref)
            world = refresh(_add_copy(world, new_ref, record, vm, op), ref)
            return _snapshot_copy_shut(world, vm, new_ref) if op == "copy" else done(world, new_ref)

        return guarded(ctx.world, ref, op, body)

    handler.__doc__ = f"VM.{op}: op check, then a new Halted (or Suspended) VM (§9.3)."
    return handler


def _snapshotter(op: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref, name = str(args[0]), str(args[1])

        def body(vm: Record) -> Result:
            if op == "checkpoint":
                assert_enabled(ctx.world.pool.restrictions, "Checkpoint")  # xapi_vm.ml checkpoint
            new_ref, record, world = derived_copy(
                ctx.world, vm, name, as_snapshot_of=ref, now=ctx.now
            )
            world = _metrics_copied(world, ref, new_ref)
            if op == "checkpoint" and vm["power_state"] != "Running":
                record["snapshot_info"] = {}  # xapi_vm_snapshot.ml: filled in only live
            state = "Halted"
            if op == "checkpoint" and vm["power_state"] in ("Running", "Suspended"):
                state = "Suspended"
                vdi, _, world = new_ids(world)
                record["suspend_VDI"] = vdi
            record["power_state"] = state
            world = refresh(with_vm(world, new_ref, record), new_ref)
            sources = {**world.snapshot_sources, new_ref: frozen(vm)}
            world = replace(world, snapshot_sources=MappingProxyType(sources))
            return done(update_vm(world, ref, {"parent": new_ref}), new_ref)

        return guarded(ctx.world, ref, op, body)

    handler.__doc__ = f"VM.{op}: op check, then a snapshot VM; the source's parent becomes it."
    return handler


_DO_NOT_COPY = frozenset(
    {
        "uuid",
        "suspend_VDI",
        "power_state",
        "parent",
        "current_operations",
        "allowed_operations",
        "metrics",
        "guest_metrics",
        "resident_on",
        "domid",
        "protection_policy",
        "snapshot_schedule",
        "scheduled_to_be_resident_on",
        "snapshots",
        "tags",
        "affinity",
        "groups",
        "consoles",
        "VBDs",
        "VIFs",
        "VGPUs",
        "VUSBs",
        "VTPMs",
        "attached_PCIs",
        "is_snapshot_from_vmpp",
    }
)
"""What VM.revert keeps of the VM (xapi_vm_snapshot.ml ``do_not_copy``): identity, state,
relations and devices; every other field comes back from the snapshot's metadata."""

_EXTENDED_DO_NOT_COPY = _DO_NOT_COPY | {
    "name_label",
    "is_a_snapshot",
    "is_a_template",
    "is_default_template",
    "snapshot_of",
    "snapshot_time",
    "transportable_snapshot_id",
    "children",
}
"""Without metadata (a snapshot older than the model's world), xapi restores from the snapshot
record itself and also keeps these (``extended_do_not_copy``)."""


def revert(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.revert(snapshot): the VM gets back every field of its record at snapshot time.

    A snapshot whose VM was destroyed first recreates that VM (``_recreated``), before any
    check, so the new VM stays even if a check then fails; a VM that is not a snapshot (no
    metadata) fails VM_REVERT_FAILED [snapshot; snapshot_of] (message_forwarding.ml
    ``VM.revert``). Then the op checks (``revert`` on the snapshot, ``reverting`` on the VM),
    a fresh generation id, and the snapshot's power state (xapi_vm.ml and xapi_vm_snapshot.ml
    ``revert``).
    """
    snap_ref = str(args[0])
    snap = vm_of(ctx.world, snap_ref)
    world, target = ctx.world, str(snap["snapshot_of"])
    if target not in world.vms:
        world, target = _recreated(world, snap_ref, target)

    def revert_target(_: Record) -> Result:
        return guarded(world, target, "reverting", shut_then_reverted)

    def shut_then_reverted(vm: Record) -> Result:
        # message_forwarding.ml VM.revert: a VM not Halted is first shut down through the API
        # (Client.VM.hard_shutdown), whose operation check (blocked operations included) runs
        if vm["power_state"] == "Halted":
            return _reverted(world, snap_ref, vm, target)
        return guarded(
            world, target, "hard_shutdown", lambda live: _reverted(world, snap_ref, live, target)
        )

    return guarded(world, snap_ref, "revert", revert_target)


def _recreated(world: World, snap_ref: str, old: str) -> tuple[World, str]:
    """xapi_vm_snapshot.ml ``create_vm_from_snapshot``: the destroyed VM made again.

    VM.create_from_record of the snapshot's record (Halted, no suspend VDI) gives a new ref;
    the VM then takes the uuid and every field of its record at snapshot time except
    ``do_not_copy`` (so tags and affinity are the snapshot's; ha_always_run is false), and
    every snapshot of the old VM names the new one in snapshot_of. Without metadata (not a
    snapshot) it fails VM_REVERT_FAILED [snapshot; old VM].
    """
    snap = world.vms[snap_ref]
    source = world.snapshot_sources.get(snap_ref)
    if source is None or snap["snapshot_metadata"] == "":
        raise XenAPIError("VM_REVERT_FAILED", snap_ref, old)
    constructor = {f.name: snap[f.name] for f in catalogue.create_fields() if f.name in snap}
    constructor.update(power_state="Halted", suspend_VDI=NULL_REF)
    ref, record, world = fresh_vm(world, constructor)
    world = refresh(with_vm(world, ref, record), ref)
    # copy_vm_fields writes the database directly: allowed_operations stay those VM.create
    # computed for the snapshot's record (a template's) until the revert recomputes them.
    restored = {**world.vms[ref], **{k: v for k, v in source.items() if k not in _DO_NOT_COPY}}
    restored.update(uuid=source["uuid"], ha_always_run=False)
    world = with_vm(world, ref, restored)
    for other, vm in world.vms.items():
        if vm["snapshot_of"] == old:
            world = update_vm(world, other, {"snapshot_of": ref}, recompute=False)
    return world, ref


def _reverted(world: World, snap_ref: str, vm: Record, target: str) -> Result:
    snap = world.vms[snap_ref]
    source = world.snapshot_sources.get(snap_ref)
    if source is not None:
        changes = {k: v for k, v in source.items() if k not in _DO_NOT_COPY}
    else:
        changes = {k: v for k, v in snap.items() if k not in _EXTENDED_DO_NOT_COPY}
    seed, _, world = new_ids(world)
    suspend_vdi = NULL_REF
    if snap["suspend_VDI"] != NULL_REF:
        suspend_vdi, _, world = new_ids(world)
    # The fields are copied first, then the generation id refreshed (message_forwarding.ml).
    genid = str(changes.get("generation_id", vm["generation_id"]))
    changes.update(
        NO_DOMAIN,
        ha_always_run=False,
        parent=snap_ref,
        generation_id=fresh_genid(genid, seed),
        power_state=snap["power_state"],
        suspend_VDI=suspend_vdi,
    )
    if changes.get("domain_type") == "unspecified":
        changes["domain_type"] = "hvm" if changes.get("HVM_boot_policy") else "pv"
    world = _metrics_copied(world, snap_ref, target)  # xapi_vm_snapshot.ml update_metrics
    return done(update_vm(world, target, changes))


def provision(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.provision (templates only): the VM stops being a template, then its disks are made.

    xapi reads the spec in other_config:disks first (a malformed one fails with the VM still a
    template), then clears ``is_a_template`` (kept even if a later step fails), creates the
    disks the spec lists (each SR named by uuid), and drops the ``disks`` and ``postinstall``
    keys. The model has no VDIs: it checks the SRs and drops the keys.
    """
    ref = str(args[0])
    return guarded(ctx.world, ref, "provision", lambda vm: _provisioned(ctx.world, ref, vm))


def _provisioned(world: World, ref: str, vm: Record) -> Result:
    other_config = dict(as_map(vm["other_config"]))
    try:  # message_forwarding.ml reads the spec before xapi_vm.ml clears is_a_template
        sr_uuids = _disk_srs(str(other_config.get("disks", "")))
    except ValueError:
        return failed(world, Failure("INTERNAL_ERROR", ("Xapi_templates.Parse_failure",)))
    world = update_vm(world, ref, {"is_a_template": False})
    if "disks" not in other_config and "postinstall" not in other_config:
        return done(world)
    known = {str(sr.get("uuid", "")) for sr in world.srs.values()}
    for sr_uuid in sr_uuids:
        if sr_uuid not in known:
            return failed(world, Failure("UUID_INVALID", ("sr", sr_uuid)))
    for key in ("disks", "postinstall"):
        other_config.pop(key, None)
    return done(update_vm(world, ref, {"other_config": other_config}))


def _disk_srs(spec: str) -> list[str]:
    """The SR uuid of each ``<disk>`` of a ``<provision>`` spec; ValueError if malformed."""
    if not spec:
        return []
    try:
        root = ElementTree.fromstring(spec)
    except ElementTree.ParseError as error:
        raise ValueError(spec) from error
    required = {"device", "size", "sr", "bootable"}
    if root.tag != "provision" or root.attrib:
        raise ValueError(spec)
    disks = list(root)
    if any(d.tag != "disk" or not required <= set(d.attrib) or len(d) for d in disks):
        raise ValueError(spec)
    for disk in disks:
        int(disk.attrib["size"])
    return [d.attrib["sr"] for d in disks]


HANDLERS: dict[str, Handler] = {
    "create": create,
    "destroy": destroy,
    "clone": _copier("clone"),
    "copy": _copier("copy"),
    "snapshot": _snapshotter("snapshot"),
    "checkpoint": _snapshotter("checkpoint"),
    "revert": revert,
    "provision": provision,
}
