"""Where a VM can boot: boot-time validation, host choice and host memory (semantics §4.4, §6.3)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from models.accounting import start_memory
from models.errors import XenAPIError, invalid_value
from models.memory import MemoryTuple, boot_check, platform_flag
from models.outcome import Value
from models.world import NULL_REF, Host, World

__all__ = [
    "boot_error",
    "choose_host",
    "control_domain_affinity_error",
    "free_memory",
    "host_error",
    "ocaml_float",
    "possible_hosts",
    "resident_host",
    "server_chooses_host",
    "start_memory_needed",
    "used_memory",
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


def used_memory(vm: Mapping[str, Value]) -> int:
    """memory_check.ml ``vm_compute_used_memory`` (Dynamic_min): what a VM resident on, or
    scheduled to, a host holds there: its dynamic_min plus its stored memory_overhead."""
    return _num(vm, "memory_dynamic_min") + _num(vm, "memory_overhead")


def free_memory(world: World, host: Host, ignoring: str = NULL_REF) -> int:
    """memory_check.ml ``host_compute_free_memory_with_maximum_compression``: the host's total
    less its own overhead and what its resident and scheduled VMs hold (the VM ``ignoring``
    not counted as scheduled), at least 0."""
    held = sum(
        used_memory(vm)
        for ref, vm in world.vms.items()
        for field in ("resident_on", "scheduled_to_be_resident_on")
        if vm[field] == host.ref and not (field != "resident_on" and ref == ignoring)
    )
    return max(0, host.memory_total - host.memory_overhead - held)


def start_memory_needed(world: World, vm: Mapping[str, Value]) -> int:
    """memory_check.ml ``vm_compute_start_memory``: host memory (normal plus shadow) to start
    the VM, from its dynamic_min (static_max for a PV-in-PVH guest)."""
    guest = "memory_static_max" if vm["domain_type"] == "pv_in_pvh" else "memory_dynamic_min"
    return start_memory(vm, _num(vm, guest), world.release)


def control_domain_affinity_error(vm: Mapping[str, Value], host: Host) -> XenAPIError | None:
    """xapi_vm_helpers.ml ``assert_matches_control_domain_affinity`` (CA-233580)."""
    if vm["is_control_domain"] is True and vm["affinity"] not in (host.ref, NULL_REF):
        reason = "Cannot boot a control domain on a host different from its affinity"
        return XenAPIError("OPERATION_NOT_ALLOWED", reason)
    return None


def _enabled_error(vm: Mapping[str, Value], host: Host) -> XenAPIError | None:
    """``assert_host_is_enabled``, skipped for a control domain and a local live migration."""
    local_migration = vm["power_state"] == "Running" and vm["resident_on"] == host.ref
    if host.enabled or vm["is_control_domain"] is True or local_migration:
        return None
    return XenAPIError("HOST_DISABLED", host.ref)


def _platform_version_error(vm_ref: str, vm: Mapping[str, Value], host: Host) -> XenAPIError | None:
    """``assert_hardware_platform_support``: the host must offer the VM's version."""
    version = _num(vm, "hardware_platform_version")
    offered = host.virtual_hardware_platform_versions
    if version in offered:
        return None
    listed = "[" + "; ".join(str(v) for v in offered) + "]"
    return XenAPIError(
        "VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION",
        host.ref,
        listed,
        vm_ref,
        str(version),
    )


def _memory_error(
    world: World, vm_ref: str, vm: Mapping[str, Value], host: Host
) -> XenAPIError | None:
    """``assert_enough_memory_available``; skipped where the host's free memory is unknown."""
    if world.facts.host_memory_sufficient is None:
        return None
    needed, available = start_memory_needed(world, vm), free_memory(world, host, vm_ref)
    if available < needed:
        return XenAPIError("HOST_NOT_ENOUGH_FREE_MEMORY", str(needed), str(available))
    return None


def _pcpus_error(vm: Mapping[str, Value], host: Host) -> XenAPIError | None:
    """``assert_enough_pcpus``: VCPUs_max above the host's CPUs needs platform
    ``vcpu-unrestricted``."""
    vcpus = _num(vm, "VCPUs_max")
    if vcpus <= host.cpu_count or platform_flag(vm, "vcpu-unrestricted"):
        return None
    return XenAPIError("HOST_NOT_ENOUGH_PCPUS", str(vcpus), str(host.cpu_count))


def host_error(
    world: World, vm_ref: str, vm: Mapping[str, Value], host: Host
) -> XenAPIError | None:
    """xapi_vm_helpers.ml ``assert_can_boot_here`` for one host, in xapi's order: the VM's own
    parameters, the host live, a control domain's affinity, the host enabled, the virtual
    hardware platform version, HVM support, free memory, physical CPUs.

    The device checks between (SRs, networks, IOMMU, GPUs, USB, SR-IOV) pass: the model's VMs
    have no devices. The CPUID check passes: it reads only a live VM's last-boot CPU flags,
    and every host of the model has the same CPU.
    """
    checks: tuple[Callable[[], XenAPIError | None], ...] = (
        lambda: boot_error(vm),
        lambda: None if host.live else XenAPIError("HOST_NOT_LIVE"),
        lambda: control_domain_affinity_error(vm, host),
        lambda: _enabled_error(vm, host),
        lambda: _platform_version_error(vm_ref, vm, host),
        lambda: _hvm_error(vm_ref, vm, host),
        lambda: _memory_error(world, vm_ref, vm, host),
        lambda: _pcpus_error(vm, host),
    )
    return next((error for check in checks if (error := check()) is not None), None)


def _hvm_error(vm_ref: str, vm: Mapping[str, Value], host: Host) -> XenAPIError | None:
    """``assert_host_supports_hvm`` for an HVM, PVH or PV-in-PVH guest."""
    if not host.hvm and vm["domain_type"] in _HVM_TYPES:
        return XenAPIError("VM_HVM_REQUIRED", vm_ref)
    return None


def possible_hosts(world: World, vm_ref: str, vm: Mapping[str, Value]) -> tuple[str, ...]:
    """xapi_vm_helpers.ml ``get_possible_hosts_for_vm``: the host the VM is scheduled to, if
    any; else every live host where ``assert_can_boot_here`` passes (errors swallowed)."""
    scheduled = str(vm["scheduled_to_be_resident_on"])
    if scheduled != NULL_REF:
        return (scheduled,)
    return tuple(
        h.ref for h in world.hosts.values() if h.live and host_error(world, vm_ref, vm, h) is None
    )


def choose_host(world: World, vm_ref: str, vm: Mapping[str, Value]) -> Host | None:
    """The host VM.start picks: its affinity if that host can take it, else the first that can.

    Every per-host error is swallowed (``NO_HOSTS_AVAILABLE``), as xapi's placement does.
    """
    ordered = sorted(world.hosts.values(), key=lambda h: (h.ref != vm["affinity"], h.ref))
    for host in ordered:
        if host_error(world, vm_ref, vm, host) is None:
            return host
    return None


def server_chooses_host(world: World, vm_ref: str) -> bool:
    """Whether VM.start or VM.resume, naming no host, leaves the host to the server's choice.

    xapi_vm_helpers.ml ``rank_hosts_by_placement`` ranks the VM's affinity host first, so a
    VM whose affinity host can take it goes there; otherwise xapi picks among the hosts that
    can by its own measures (free memory, VMs of a group), which the model does not follow:
    the host is predictable only when one host can take the VM.
    """
    vm = world.vms[vm_ref]
    affinity = world.hosts.get(str(vm["affinity"]))
    if affinity is not None and host_error(world, vm_ref, vm, affinity) is None:
        return False
    able = [h for h in world.hosts.values() if host_error(world, vm_ref, vm, h) is None]
    return len(able) > 1


def resident_host(world: World, vm: Mapping[str, Value]) -> Host | None:
    """The host a live VM runs on, if it names one of the pool's hosts."""
    ref = vm["resident_on"]
    return world.hosts.get(str(ref)) if ref != NULL_REF else None
