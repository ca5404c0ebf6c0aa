"""Power-state transitions of the VM class (semantics §1, §2.2, §4.2, §4.4, §5.4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from models.accounting import vm_memory_overhead
from models.checks import guarded, merge, update_vm
from models.errors import XenAPIError, handle_invalid
from models.features import assert_enabled
from models.memory import MemoryTuple, are_pinned_at_static_max, nested_virt, platform_flag
from models.outcome import Success, Value
from models.placement import (
    choose_host,
    control_domain_affinity_error,
    host_error,
    resident_host,
)
from models.records import NO_DOMAIN
from models.transition import Ctx, Handler, Result, as_map, attempt, done, failed, vm_of
from models.world import GENERIC_BIOS_STRINGS, NULL_REF, Host, Record, World, new_ids

__all__ = ["CRASH_GRACE_S", "HANDLERS", "guest_stops"]


def _next_domid(world: World) -> int:
    domids = [vm["domid"] for vm in world.vms.values()]
    return 1 + max((d for d in domids if isinstance(d, int)), default=0)


def _halted(world: World, ref: str, extra: Mapping[str, Value] | None = None) -> World:
    changes: dict[str, Value] = {
        "power_state": "Halted",
        **NO_DOMAIN,
        "requires_reboot": False,
        "current_operations": {},
    }
    return update_vm(world, ref, {**changes, **(extra or {})})


def _boot(world: World, ref: str, host: Host, paused: bool) -> World:
    state = "Paused" if paused else "Running"
    changes: dict[str, Value] = {
        "power_state": state,
        "domid": _next_domid(world),
        "resident_on": host.ref,
        "scheduled_to_be_resident_on": NULL_REF,
        "suspend_VDI": NULL_REF,
    }
    return update_vm(_captured(world, ref), ref, changes)


def _captured(world: World, ref: str) -> World:
    """A new domain: xenopsd captures nomigrate and nested-virt from the platform now, and
    reports the domain's type."""
    vm = world.vms[ref]
    flags = (platform_flag(vm, "nomigrate"), nested_virt(vm))
    types = {**world.booted_domain_types, ref: str(vm["domain_type"])}
    return replace(
        world,
        booted_flags=MappingProxyType({**world.booted_flags, ref: flags}),
        booted_domain_types=MappingProxyType(types),
    )


def _chosen(world: World, ref: str) -> Host:
    """message_forwarding.ml start's ``forward_to_suitable_host``: a host that can take the VM,
    every per-host error swallowed."""
    host = choose_host(world, ref, world.vms[ref])
    if host is None:
        raise XenAPIError("NO_HOSTS_AVAILABLE")
    return host


def _check_restricted_flags(world: World, vm: Record) -> None:
    """vm_platform.ml ``check_restricted_flags``: platform:nested-virt must read as a boolean,
    and a true one needs the Nested_virt feature."""
    value = as_map(vm["platform"]).get("nested-virt")
    if value is not None and str(value).lower() not in ("true", "1", "false", "0"):
        raise XenAPIError("INVALID_VALUE", "platform:nested-virt", str(value))
    if nested_virt(vm):
        assert_enabled(world.pool.restrictions, "Nested_virt")


DEVICE_MODEL_BIOS = "qemu-upstream-compat"
DEVICE_MODEL_UEFI = "qemu-upstream-uefi"


def _ha_on_boot(world: World, ref: str, vm: Record) -> World:
    """xapi_vm.ml start/resume: a VM to restart under HA is marked ha_always_run, first thing."""
    if vm["ha_restart_priority"] == "restart":
        return update_vm(world, ref, {"ha_always_run": True})
    return world


def _boot_platform(vm: Record) -> dict[str, Value]:
    """The platform VM.start stores: an HVM guest gets a device model (qemu-trad upgraded),
    ``secureboot=auto`` resolves to "false" (the pool has no UEFI certificates)."""
    platform = {str(k): v for k, v in as_map(vm["platform"]).items()}
    if vm["domain_type"] == "hvm":
        firmware = as_map(vm["HVM_boot_params"]).get("firmware", "bios")
        if firmware not in ("bios", "uefi"):
            raise XenAPIError("INVALID_VALUE", "HVM-boot-params['firmware']", str(firmware))
        default = DEVICE_MODEL_UEFI if firmware == "uefi" else DEVICE_MODEL_BIOS
        if platform.get("device-model", "qemu-trad") == "qemu-trad":
            platform["device-model"] = default
    if platform.get("secureboot") == "auto":
        platform["secureboot"] = "false"
    return platform


def _generic_bios_strings(world: World, ref: str) -> World:
    """message_forwarding.ml start/start_on: a VM without BIOS strings gets the generic ones
    (``Xapi_vm_helpers.consider_generic_bios_strings``) before it is placed."""
    if as_map(world.vms[ref]["bios_strings"]):
        return world
    return update_vm(world, ref, {"bios_strings": dict(GENERIC_BIOS_STRINGS)})


def _overhead_refreshed(world: World, ref: str) -> World:
    """message_forwarding.ml start/start_on: ``update_memory_overhead`` before placement, since
    the stored value may be stale (after set_domain_type, for one)."""
    overhead = vm_memory_overhead(world.vms[ref], world.release)
    return update_vm(world, ref, {"memory_overhead": overhead}, recompute=False)


def _prepared(world: World, ref: str) -> World:
    """What message_forwarding.ml start and start_on write before placing the VM (kept if
    placement then fails): the memory overhead refreshed, generic BIOS strings."""
    return _generic_bios_strings(_overhead_refreshed(world, ref), ref)


def _local_start(world: World, ref: str, host: Host, paused: bool, force: bool) -> Result:
    """xapi_vm.ml ``start`` on the host placement chose: the HA flag first, then the platform
    (both kept if a later check fails), the memory constraints (unless ``force``), the
    restricted platform flags, then the domain."""
    world = _ha_on_boot(world, ref, world.vms[ref])
    return attempt(world, lambda: _platform_then_boot(world, ref, host, paused, force))


def _platform_then_boot(world: World, ref: str, host: Host, paused: bool, force: bool) -> Result:
    vm = world.vms[ref]
    platform = _boot_platform(vm)
    if platform != vm["platform"]:
        world = update_vm(world, ref, {"platform": platform})
        vm = world.vms[ref]

    def boot() -> Result:
        if (
            not force
            and nested_virt(vm)
            and not are_pinned_at_static_max(MemoryTuple.from_record(vm))
        ):
            raise XenAPIError("MEMORY_CONSTRAINT_VIOLATION_MAXPIN", "nested virt")
        _check_restricted_flags(world, vm)
        return done(_boot(world, ref, host, paused))

    return attempt(world, boot)


def start(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.start: op check, overhead and BIOS strings, placement where every host error is
    NO_HOSTS_AVAILABLE, then xapi_vm.ml start on the chosen host. Where the hosts' free memory
    is unknown, NO_HOSTS_AVAILABLE is also an answer."""
    ref, paused, force = str(args[0]), args[1] is True, args[2] is True
    assert_enabled(ctx.world.pool.restrictions, "VM_start")  # message_forwarding.ml, first

    def body(_: Record) -> Result:
        world = _prepared(ctx.world, ref)
        started = attempt(
            world, lambda: _local_start(world, ref, _chosen(world, ref), paused, force)
        )
        if world.facts.host_memory_sufficient is None and any(
            isinstance(b.outcome, Success) for b in started
        ):
            return merge(started, failed(world, XenAPIError("NO_HOSTS_AVAILABLE").failure()))
        return started

    return guarded(ctx.world, ref, "start", body)


def _host(world: World, ref: Value) -> Host:
    host = world.hosts.get(str(ref))
    if host is None:
        raise handle_invalid("host", str(ref))
    return host


def _bootable_on(world: World, ref: str, host: Host) -> Host:
    """message_forwarding.ml ``reserve_memory_for_vm``: assert_can_boot_here, errors propagated."""
    error = host_error(world, ref, world.vms[ref], host)
    if error:
        raise error
    return host


def start_on(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.start_on (message_forwarding.ml ``start_on``): the VM_start feature, a control
    domain's affinity, then the op check, overhead and BIOS strings, assert_can_boot_here on
    ``host`` propagating its error, then xapi_vm.ml start there."""
    ref, paused, force = str(args[0]), args[2] is True, args[3] is True
    assert_enabled(ctx.world.pool.restrictions, "VM_start")
    vm = vm_of(ctx.world, ref)
    host = _host(ctx.world, args[1])
    affinity = control_domain_affinity_error(vm, host)
    if affinity:
        raise affinity

    def body(_: Record) -> Result:
        world = _prepared(ctx.world, ref)
        return attempt(
            world, lambda: _local_start(world, ref, _bootable_on(world, ref, host), paused, force)
        )

    return guarded(ctx.world, ref, "start_on", body)


def _to_halted(op: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref = str(args[0])

        def body(vm: Record) -> Result:
            extra: dict[str, Value] = {"ha_always_run": False}
            if vm["power_state"] == "Suspended":
                extra["suspend_VDI"] = NULL_REF
            return done(_halted(ctx.world, ref, extra))

        return guarded(ctx.world, ref, op, body)

    handler.__doc__ = f"VM.{op}: op check, then Halted (a suspend image is dropped)."
    return handler


def _set_state(op: str, state: str, *, new_domain: bool = False) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref = str(args[0])
        changes: dict[str, Value] = {"power_state": state}
        if new_domain:
            changes["domid"] = _next_domid(ctx.world)

        def body(_: Record) -> Result:
            world = _captured(ctx.world, ref) if new_domain else ctx.world
            return done(update_vm(world, ref, changes))

        return guarded(ctx.world, ref, op, body)

    handler.__doc__ = f"VM.{op}: op check, then {state}."
    return handler


def suspend(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.suspend: Running → Suspended with a suspend image, no domain, no host."""
    ref = str(args[0])

    def body(_: Record) -> Result:
        vdi, _uuid, world = new_ids(ctx.world)
        changes: dict[str, Value] = {
            "power_state": "Suspended",
            **NO_DOMAIN,
            "suspend_VDI": vdi,
            "ha_always_run": False,
        }
        return done(update_vm(world, ref, changes))

    return guarded(ctx.world, ref, "suspend", body)


def _resumed(world: World, ref: str, host: Host | None, paused: bool) -> Result:
    """Placement first (message_forwarding.ml resume: ``forward_to_suitable_host``, every host
    error NO_HOSTS_AVAILABLE; resume_on: ``reserve_memory_for_vm``, the host's error), then
    xapi_vm.ml ``resume`` on that host: the HA flag, then the domain."""
    chosen = _chosen(world, ref) if host is None else _bootable_on(world, ref, host)
    world = _ha_on_boot(world, ref, world.vms[ref])
    return done(_boot(world, ref, chosen, paused))


def resume(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.resume: Suspended → Running or Paused."""
    ref, paused = str(args[0]), args[1] is True
    return guarded(ctx.world, ref, "resume", lambda _: _resumed(ctx.world, ref, None, paused))


def resume_on(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.resume_on: like resume, on the given host, propagating its boot errors."""
    ref, paused = str(args[0]), args[2] is True
    vm_of(ctx.world, ref)

    def body(_: Record) -> Result:  # the host is first read after the op check
        return _resumed(ctx.world, ref, _host(ctx.world, args[1]), paused)

    return guarded(ctx.world, ref, "resume_on", body)


def power_state_reset(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.power_state_reset (§5.4): not wrapped; control domain and live-domain refusals."""
    ref = str(args[0])
    vm = vm_of(ctx.world, ref)
    if vm["is_control_domain"] is True:
        raise XenAPIError("CANNOT_RESET_CONTROL_DOMAIN", ref)
    host = resident_host(ctx.world, vm)
    if vm["power_state"] in ("Running", "Paused") and host is not None:
        if host.ref != ctx.world.pool.master and host.live:
            raise XenAPIError("HOST_IS_LIVE", host.ref)
        # Reading of §5.4: only a domain xenopsd reports Running blocks the reset; Paused does not.
        if host.ref == ctx.world.pool.master and vm["power_state"] == "Running":
            raise XenAPIError("DOMAIN_EXISTS", ref)
    return done(_halted(ctx.world, ref))


def pool_migrate(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.pool_migrate (message_forwarding.ml): unless options force=true, a VM not Halted has
    its CPU checked against ``host`` first (so a bad host is HANDLE_INVALID before any op
    check); the op check (strict unless forced), assert_can_boot_here on ``host`` (a localhost
    migration included), the Xen_motion feature, then resident on ``host``."""
    ref = str(args[0])
    options = args[2] if isinstance(args[2], Mapping) else {}
    strict = str(options.get("force", "false")).lower() != "true"
    if strict and vm_of(ctx.world, ref)["power_state"] != "Halted":
        _host(ctx.world, args[1])  # cpuid_helpers.ml assert_vm_is_compatible reads it first

    def body(vm: Record) -> Result:
        host = _host(ctx.world, args[1])
        _bootable_on(ctx.world, ref, host)  # message_forwarding.ml reserve_memory_for_vm
        assert_enabled(ctx.world.pool.restrictions, "Xen_motion")  # xapi_vm_migrate.ml
        if vm["resident_on"] == host.ref:
            return done(update_vm(ctx.world, ref, {}))  # a localhost migration
        return done(update_vm(ctx.world, ref, {"resident_on": host.ref}))

    return guarded(ctx.world, ref, "pool_migrate", body, strict=strict)


_GUEST_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "poweroff": "actions_after_shutdown",
        "reboot": "actions_after_reboot",
        "crash": "actions_after_crash",
    }
)
"""Why a domain stopped itself → the VM field whose action xenopsd takes (xenops_server.ml
``VM_check_state``: Needs_poweroff → on_shutdown, Needs_reboot → on_reboot, Needs_crashdump
→ on_crash)."""

_GUEST_ACTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "destroy": ("shutdown",),
        "coredump_and_destroy": ("shutdown",),
        "restart": ("start",),
        "rename_restart": ("start",),
        "coredump_and_restart": ("start",),
        "preserve": ("pause",),
    }
)
"""xapi_xenops.ml ``on_action_behaviour``: what xenopsd does for each action (a core dump is
not visible to a client)."""

CRASH_GRACE_S = 120.0
"""A guest that crashes sooner than this after its start is shut down, not restarted."""


def guest_stops(world: World, ref: str, reason: str, uptime_s: float) -> World:
    """The guest of a Running VM stops its own domain (``reason``: poweroff, reboot or crash),
    as the quicktest does with Xenctrl.domain_shutdown; xenopsd takes the VM's action for it.

    Restart gives a new domain (Running, a new domid), destroy leaves the VM Halted (HA's
    ha_always_run kept: the pool's ha_reboot_vm_on_internal_shutdown is true by default),
    preserve pauses the domain. A crash within ``CRASH_GRACE_S`` of the start is shut down
    instead of restarted. Any other VM, or an action xenopsd does not take for that reason
    (soft_reboot), leaves the world as it is (ValueError for an unknown reason).
    """
    field = _GUEST_REASONS.get(reason)
    if field is None:
        raise ValueError(f"unknown reason {reason!r}: one of {', '.join(_GUEST_REASONS)}")
    vm = vm_of(world, ref)
    if vm["power_state"] != "Running":
        return world
    steps = _GUEST_ACTIONS.get(str(vm[field]), ())
    if reason == "crash" and uptime_s < CRASH_GRACE_S:
        steps = tuple("shutdown" if step == "start" else step for step in steps)
    for step in steps:
        if step == "shutdown":
            world = _halted(world, ref)
        elif step == "start":
            world = update_vm(_captured(world, ref), ref, {"domid": _next_domid(world)})
        else:
            world = update_vm(world, ref, {"power_state": "Paused"})
    return world


HANDLERS: dict[str, Handler] = {
    "start": start,
    "start_on": start_on,
    "clean_shutdown": _to_halted("clean_shutdown"),
    "hard_shutdown": _to_halted("hard_shutdown"),
    "shutdown": _to_halted("shutdown"),
    "clean_reboot": _set_state("clean_reboot", "Running", new_domain=True),
    "hard_reboot": _set_state("hard_reboot", "Running", new_domain=True),
    "pause": _set_state("pause", "Paused"),
    "unpause": _set_state("unpause", "Running"),
    "suspend": suspend,
    "resume": resume,
    "resume_on": resume_on,
    "power_state_reset": power_state_reset,
    "pool_migrate": pool_migrate,
}
