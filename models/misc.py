"""The remaining VM messages: checks, queries, data sources, plugins, blobs, recovery, import.

Where the model has no counterpart for an object xapi would consult (VDIs, RRDs, WLB, a
conversion service, a remote pool), the answer chosen is written in the handler's docstring.
"""

from __future__ import annotations

from models import accounting
from models.accounting import vm_memory_overhead
from models.checks import guarded, refresh, update_vm
from models.errors import XenAPIError, handle_invalid, vm_bad_power_state
from models.features import assert_enabled
from models.outcome import Value
from models.placement import host_error, possible_hosts
from models.plugins import call_plugin
from models.records import read_record
from models.releases import changed
from models.transition import Ctx, Handler, Result, as_map, done, vm_of
from models.world import GENERIC_BIOS_STRINGS, NULL_REF, Record, World, new_ids

__all__ = ["HANDLERS"]

BIOS_KEYS = frozenset(
    {
        "bios-vendor",
        "bios-version",
        "system-manufacturer",
        "system-product-name",
        "system-version",
        "system-serial-number",
        "enclosure-asset-tag",
        "baseboard-manufacturer",
        "baseboard-product-name",
        "baseboard-version",
        "baseboard-serial-number",
        "baseboard-asset-tag",
        "baseboard-location-in-chassis",
    }
)
"""The keys set_bios_strings accepts (the published reference's list)."""


def assert_operation_valid(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.assert_operation_valid: check_operation_error (strict) directly, no retry."""
    return guarded(ctx.world, args[0], str(args[1]), lambda _: done(ctx.world))


def update_allowed_operations(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.update_allowed_operations: recompute the advisory field now."""
    vm_of(ctx.world, args[0])
    return done(refresh(ctx.world, str(args[0])))


def _not_implemented(op: str) -> Handler:
    """The op check, then NOT_IMPLEMENTED [op] as xapi_vm.ml raises it (query_services:
    NOT_SYSTEM_DOMAIN inside the check; send_sysrq, send_trigger: Running only)."""

    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        def body(_: Record) -> Result:
            raise XenAPIError("NOT_IMPLEMENTED", op)

        return guarded(ctx.world, str(args[0]), op, body)

    handler.__doc__ = f"VM.{op}: the operation check, then NOT_IMPLEMENTED."
    return handler


def get_boot_record(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.get_boot_record (deprecated): op check; the model's boot record is the current one."""
    ref = str(args[0])
    return guarded(
        ctx.world, ref, "get_boot_record", lambda _: done(ctx.world, read_record(ctx.world, ref))
    )


def _op_then(op: str, value: Value = "") -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        return guarded(ctx.world, str(args[0]), op, lambda _: done(ctx.world, value))

    handler.__doc__ = f"The {op} operation check, then {value!r}."
    return handler


def query_data_source(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.query_data_source: Running or Paused (";"-joined states), then 0.0 (no RRDs modelled)."""
    ref = str(args[0])
    vm = vm_of(ctx.world, ref)
    if vm["power_state"] not in ("Running", "Paused"):
        raise vm_bad_power_state(ref, "running;paused", str(vm["power_state"]).lower())
    return done(ctx.world, 0.0)


def compute_memory_overhead(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.compute_memory_overhead: the overhead of the VM as its record stands now (xapi_vm_helpers.ml
    ``compute_memory_overhead``), whatever its stored memory_overhead says."""
    return done(ctx.world, vm_memory_overhead(vm_of(ctx.world, args[0]), ctx.world.release))


def maximise_memory(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.maximise_memory(total, approximate): the largest static_max that still starts within
    ``total`` bytes (xapi_vm.ml ``maximise_memory``); no operation or power-state check."""
    vm = vm_of(ctx.world, args[0])
    total = args[1] if isinstance(args[1], int) else 0
    approximate = args[2] is True
    return done(ctx.world, accounting.maximise_memory(vm, total, approximate, ctx.world.release))


def get_possible_hosts(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.get_possible_hosts (xapi_vm.ml): its scheduled host, or the live hosts where
    assert_can_boot_here passes."""
    ref = str(args[0])
    return done(ctx.world, possible_hosts(ctx.world, ref, vm_of(ctx.world, ref)))


VBD_DEVICES = 255
"""xapi_vm_helpers.ml allowed_VBD_devices: disks 0..254 (HVM and PV guests, since 2015)."""
VBD_DEVICES_CONTROL_DOMAIN = 256
VIF_DEVICES = 16
"""allowed_VIF_devices: 0..15 since xapi 25.29 (947e4965be); 0..6 before."""
VIF_DEVICES_BEFORE_25_29 = 7


def get_allowed_VBD_devices(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.get_allowed_VBD_devices: the disk numbers not used by a VBD (the model's VMs have none)
    of the range for the VM's kind (a control domain's goes to 255)."""
    vm = vm_of(ctx.world, args[0])
    count = VBD_DEVICES_CONTROL_DOMAIN if vm["is_control_domain"] else VBD_DEVICES
    return done(ctx.world, tuple(str(n) for n in range(count)))


def get_allowed_VIF_devices(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.get_allowed_VIF_devices: the device numbers not used by a VIF (the model's VMs have
    none); 16 from xapi 25.29, 7 before (the release followed decides)."""
    vm_of(ctx.world, args[0])
    newer = changed(ctx.world.release, "get_allowed_VIF_devices: 16 devices, not 7")
    count = VIF_DEVICES if newer else VIF_DEVICES_BEFORE_25_29
    return done(ctx.world, tuple(str(n) for n in range(count)))


def assert_can_boot_here(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.assert_can_boot_here(host): the host's boot checks, propagated."""
    ref = str(args[0])
    vm = vm_of(ctx.world, ref)
    if vm["power_state"] == "Halted":  # message_forwarding.ml assert_can_boot_here
        assert_enabled(ctx.world.pool.restrictions, "VM_start")
    host = ctx.world.hosts.get(str(args[1]))
    if host is None:
        raise handle_invalid("host", str(args[1]))
    error = host_error(ctx.world, ref, vm, host)
    if error:
        raise error
    return done(ctx.world)


def _checked_vm(value: Value = "") -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        vm_of(ctx.world, args[0])
        return done(ctx.world, value)

    handler.__doc__ = f"Succeeds with {value!r} for any VM: the model has no storage to consult."
    return handler


def _session_to(world: World, value: Value) -> None:
    if str(value) not in world.sessions:
        raise XenAPIError("SESSION_INVALID", str(value))


def get_SRs_required_for_recovery(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.get_SRs_required_for_recovery: no disks, so no SRs; session_to must be live."""
    vm_of(ctx.world, args[0])
    _session_to(ctx.world, args[1])
    return done(ctx.world, ())


def recover(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.recover / assert_can_be_recovered into this same pool: nothing to do (unconfirmed)."""
    vm_of(ctx.world, args[0])
    _session_to(ctx.world, args[1])
    return done(ctx.world)


def create_new_blob(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.create_new_blob(name, mime_type, public): a new blob ref under ``name`` in blobs."""
    ref = str(args[0])
    vm = vm_of(ctx.world, ref)
    blob, _, world = new_ids(ctx.world)
    blobs = {**as_map(vm["blobs"]), str(args[1]): blob}
    return done(update_vm(world, ref, {"blobs": blobs}, recompute=False), blob)


def _bios_error(key: str, value: str) -> XenAPIError | None:
    if key not in BIOS_KEYS:
        return XenAPIError("INVALID_VALUE", key, "Unknown key")
    if value == "":
        return XenAPIError("INVALID_VALUE", key, "Value provided is empty")
    if len(value.encode("utf-8")) > 512:  # OCaml's String.length counts bytes
        return XenAPIError("INVALID_VALUE", key, f"{value} has length more than 512 characters")
    if not all(" " <= c <= "~" for c in value):
        return XenAPIError("INVALID_VALUE", key, f"{value} has non-printable ASCII characters")
    return None


def set_bios_strings(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_bios_strings: once only; each key known, value non-empty, ≤ 512 printable chars."""
    ref = str(args[0])
    vm = vm_of(ctx.world, ref)
    if as_map(vm["bios_strings"]):
        raise XenAPIError("VM_BIOS_STRINGS_ALREADY_SET")
    for key, value in as_map(args[1]).items():
        error = _bios_error(key, str(value))
        if error:
            raise error
    merged = {**GENERIC_BIOS_STRINGS, **as_map(args[1])}
    return done(update_vm(ctx.world, ref, {"bios_strings": merged}, recompute=False))


def copy_bios_strings(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.copy_bios_strings(host) (xapi_vm_helpers.ml): once only, in any power state (no
    operation check); the host's strings are copied and the host becomes the VM's affinity."""
    ref, host = str(args[0]), str(args[1])
    vm = vm_of(ctx.world, ref)
    if as_map(vm["bios_strings"]):
        raise XenAPIError("VM_BIOS_STRINGS_ALREADY_SET")
    if host not in ctx.world.hosts:
        raise handle_invalid("host", host)
    bios_strings = dict(ctx.world.hosts[host].bios_strings)
    changes: dict[str, Value] = {"bios_strings": bios_strings, "affinity": host}
    return done(update_vm(ctx.world, ref, changes, recompute=False))


def restart_device_models(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.restart_device_models: a no-op here on a Running VM (xapi migrates it to its host).

    From xapi 24.10 (CA-388107) a VM not Running fails VM_BAD_POWER_STATE with the states as
    the datamodel spells them ("Running", "Halted": Record_util's capitalised form). Before,
    the only check was the local VM.pool_migrate's (lowercase states). What that older
    pool_migrate did with a Suspended VM and a null host is not modelled (CA-388107 says it did
    not fail VM_BAD_POWER_STATE): the model answers as the operation check does.
    """
    ref = str(args[0])
    vm = vm_of(ctx.world, ref)
    if not changed(
        ctx.world.release, "restart_device_models: its own power-state check, capitalised states"
    ):
        return guarded(ctx.world, ref, "pool_migrate", lambda _: done(ctx.world))
    if vm["power_state"] != "Running":
        raise XenAPIError("VM_BAD_POWER_STATE", ref, "Running", str(vm["power_state"]))
    return done(ctx.world)


def _sr(world: World, value: Value) -> None:
    if str(value) not in world.srs:
        raise handle_invalid("SR", str(value))


def import_(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.import(url, sr, …): the SR must exist; the model fetches nothing, so the import fails.

    Reading: xapi reports an unreachable URL as IMPORT_ERROR; the text is unconfirmed.
    """
    _sr(ctx.world, args[1])
    raise XenAPIError("IMPORT_ERROR", f"Could not fetch {args[0]}")


def import_convert(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.import_convert: the SR must exist; no conversion service is modelled (unconfirmed)."""
    _sr(ctx.world, args[3])
    raise XenAPIError("XENAPI_MISSING_PLUGIN", "conversion")


def retrieve_wlb_recommendations(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.retrieve_wlb_recommendations: no WLB is configured in the model."""
    vm_of(ctx.world, args[0])
    raise XenAPIError("WLB_NOT_INITIALIZED")


def _migrate(op: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        def body(_: Record) -> Result:
            dest = as_map(args[1])
            if "master" not in dest or "session_id" not in dest:
                raise XenAPIError("INTERNAL_ERROR", "Not_found")  # unconfirmed
            raise XenAPIError("VM_MIGRATE_FAILED", str(args[0]), NULL_REF, NULL_REF, "remote pool")

        return guarded(ctx.world, str(args[0]), "migrate_send", body)

    handler.__doc__ = (
        f"VM.{op}: the migrate_send check; the model has no remote pool to reach (unconfirmed)."
    )
    return handler


HANDLERS: dict[str, Handler] = {
    "assert_operation_valid": assert_operation_valid,
    "update_allowed_operations": update_allowed_operations,
    "query_services": _not_implemented("query_services"),
    "get_boot_record": get_boot_record,
    "get_data_sources": _op_then("data_source_op", ()),
    "record_data_source": _op_then("data_source_op"),
    "forget_data_source_archives": _op_then("data_source_op"),
    "query_data_source": query_data_source,
    "send_sysrq": _not_implemented("send_sysrq"),
    "send_trigger": _not_implemented("send_trigger"),
    "call_plugin": call_plugin,
    "get_cooperative": _checked_vm(True),
    "compute_memory_overhead": compute_memory_overhead,
    "maximise_memory": maximise_memory,
    "get_possible_hosts": get_possible_hosts,
    "get_allowed_VBD_devices": get_allowed_VBD_devices,
    "get_allowed_VIF_devices": get_allowed_VIF_devices,
    "assert_agile": _checked_vm(),
    "assert_can_boot_here": assert_can_boot_here,
    "get_SRs_required_for_recovery": get_SRs_required_for_recovery,
    "assert_can_be_recovered": recover,
    "recover": recover,
    "create_new_blob": create_new_blob,
    "set_bios_strings": set_bios_strings,
    "copy_bios_strings": copy_bios_strings,
    "restart_device_models": restart_device_models,
    "import": import_,
    "import_convert": import_convert,
    "retrieve_wlb_recommendations": retrieve_wlb_recommendations,
    "migrate_send": _migrate("migrate_send"),
    "assert_can_migrate": _migrate("assert_can_migrate"),
}
