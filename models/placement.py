"""Where a VM can boot: boot-time validation, host choice and host memory (semantics §4.4, §6.3)."""

from __future__ import annotations

from collections.abc import Mapping

from models.errors import XenAPIError, invalid_value
from models.memory import MemoryTuple, boot_check, dmc_enabled
from models.outcome import Value
from models.world import NULL_REF, Host, World

__all__ = [
    "boot_error",
    "choose_host",
    "footprint",
    "free_memory",
    "host_error",
    "ocaml_float",
    "resident_host",
]

_HVM_TYPES = frozenset({"hvm", "pvh", "pv_in_pvh"})


def ocaml_float(value: float) -> str:
    """OCaml's ``string_of_float``: ``1.`` for whole numbers, shortest round-trip otherwise."""
    return f"{int(value)}." if value.is_integer() else repr(value)


def _num(vm: Mapping[str, Value], name: str) -> int:
    value = vm[name]
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _vcpu_error(vm: Mapping[str, Value]) -> XenAPIError | None:
    vcpus_max, at_startup = _num(vm, "VCPUs_max"), _num(vm, "VCPUs_at_startup")
    if vcpus_max < 1:
        return invalid_value("VCPUs_max", str(vcpus_max))
    if at_startup < 1:
        return invalid_value("VCPUs-at-startup", str(at_startup))
    if at_startup > vcpus_max:
        return XenAPIError(
            "VALUE_NOT_SUPPORTED",
            "VCPUs-at-startup",
            str(at_startup),
            "value greater than VCPUs-max",
        )
    return None


def _crash_action_error(vm: Mapping[str, Value]) -> XenAPIError | None:
    """``validate_actions_after_crash``; texts as xapi_vm_helpers.ml words them.

    The rename_restart text is the same in every xapi version read; the coredump text and the
    domain types it covers changed over time (newest reading used, unconfirmed at e2ee48d6).
    """
    action = str(vm["actions_after_crash"])
    if action == "rename_restart":
        reason = "option would leak a domain; VMs and not domains are managed by this API"
        return XenAPIError("VALUE_NOT_SUPPORTED", "VM.actions_after_crash", action, reason)
    if action.startswith("coredump") and vm["domain_type"] in ("hvm", "pvh", "pv_in_pvh"):
        reason = "cannot invoke a coredump of an HVM, PVH or PV-in-PVH domain"
        return XenAPIError("VALUE_NOT_SUPPORTED", "VM.actions_after_crash", action, reason)
    return None


def boot_error(vm: Mapping[str, Value]) -> XenAPIError | None:
    """``validate_basic_parameters``: VCPUs, memory, shadow multiplier, crash action, in order."""
    vcpu = _vcpu_error(vm)
    if vcpu:
        return vcpu
    memory = boot_check(MemoryTuple.from_record(vm))
    if memory:
        return XenAPIError.of(memory)
    multiplier = vm["HVM_shadow_multiplier"]
    if isinstance(multiplier, float) and multiplier < 1.0:
        return invalid_value("HVM_shadow_multiplier", ocaml_float(multiplier))
    return _crash_action_error(vm)


def footprint(world: World, vm: Mapping[str, Value]) -> int:
    """Host memory a running VM holds: dynamic_min with DMC, static_max without (bytes)."""
    name = "memory_dynamic_min" if dmc_enabled(world.pool.restrictions) else "memory_static_max"
    return max(0, _num(vm, name))


def free_memory(world: World, host: Host) -> int:
    """The host's total memory minus what its resident VMs hold."""
    used = sum(footprint(world, vm) for vm in world.vms.values() if vm["resident_on"] == host.ref)
    return host.memory_total - used


def host_error(
    world: World, vm_ref: str, vm: Mapping[str, Value], host: Host
) -> XenAPIError | None:
    """``assert_can_boot_here`` for one host: validation, HVM support, then free memory."""
    basic = boot_error(vm)
    if basic:
        return basic
    if not host.live:
        return XenAPIError("HOST_NOT_LIVE", host.ref)
    if not host.hvm and vm["domain_type"] in _HVM_TYPES:
        return XenAPIError("VM_HVM_REQUIRED", vm_ref)
    needed, available = footprint(world, vm), free_memory(world, host)
    if world.facts.host_memory_sufficient is not None and needed > available:
        return XenAPIError("HOST_NOT_ENOUGH_FREE_MEMORY", str(needed), str(available))
    return None


def choose_host(world: World, vm_ref: str, vm: Mapping[str, Value]) -> Host | None:
    """The host VM.start picks: its affinity if that host can take it, else the first that can.

    Every per-host error is swallowed (``NO_HOSTS_AVAILABLE``), as xapi's placement does.
    """
    ordered = sorted(world.hosts.values(), key=lambda h: (h.ref != vm["affinity"], h.ref))
    for host in ordered:
        if host_error(world, vm_ref, vm, host) is None:
            return host
    return None


def resident_host(world: World, vm: Mapping[str, Value]) -> Host | None:
    """The host a live VM runs on, if it names one of the pool's hosts."""
    ref = vm["resident_on"]
    return world.hosts.get(str(ref)) if ref != NULL_REF else None
