"""Getters of the classes the model does not hold objects of, for refs that name nothing.

xapi answers ``Class.get_record`` and ``Class.get_<field>`` of every class in its datamodel; for a
null or unknown ref its database raises DBCache_NotFound ("missing reference", table, ref), which
exnHelper.ml turns into HANDLE_INVALID [class; ref]; ``get_by_uuid`` of an unknown uuid is
UUID_INVALID [class; uuid]. The model holds no objects of these classes, so it can answer only
those cases; a ref it has seen (a VM's metrics, say) stays unanswered (MESSAGE_METHOD_UNKNOWN).
"""

from __future__ import annotations

from models.errors import XenAPIError, handle_invalid, uuid_invalid
from models.world import NULL_REF, World

__all__ = ["UNMODELLED_CLASSES", "unmodelled_getter"]

UNMODELLED_CLASSES = frozenset(
    [
        "host_metrics",
        "host_crashdump",
        "host_patch",
        "host_cpu",
        "SM",
        "LVHD",
        "VM_metrics",
        "VM_guest_metrics",
        "VM_appliance",
        "VM_group",
        "DR_task",
        "VMPP",
        "VMSS",
        "network",
        "VIF",
        "VIF_metrics",
        "PIF",
        "PIF_metrics",
        "Bond",
        "VLAN",
        "PBD",
        "VDI",
        "VBD",
        "VBD_metrics",
        "VTPM",
        "console",
        "crashdump",
        "pool_patch",
        "pool_update",
        "blob",
        "message",
        "subject",
        "role",
        "secret",
        "tunnel",
        "PCI",
        "PGPU",
        "GPU_group",
        "VGPU",
        "VGPU_type",
        "PVS_site",
        "PVS_server",
        "PVS_proxy",
        "PVS_cache_storage",
        "Feature",
        "SDN_controller",
        "PUSB",
        "USB_group",
        "VUSB",
        "network_sriov",
        "Cluster",
        "Cluster_host",
        "Certificate",
        "Diagnostics",
        "Repository",
        "Observer",
        "Host_driver",
        "Driver_variant",
        "Caller",
        "Rate_limit",
    ]
)
"""The classes of datamodel_common.ml with refs that the model does not hold objects of."""


_NOT_FIELD_READS = frozenset(["get_all", "get_all_records", "get_all_records_where", "get_since"])
"""Messages named get_ that take no ref: every class's queries (get_all_records_where takes an
expression) and message.get_since (a date), which a client polls alerts with."""


def _seen_refs(world: World) -> frozenset[str]:
    """Every ref a VM record names: objects that exist but are not modelled."""
    return frozenset(
        value
        for vm in world.vms.values()
        for value in vm.values()
        if isinstance(value, str) and value.startswith("OpaqueRef:") and value != NULL_REF
    )


def unmodelled_getter(world: World, name: str, args: tuple[object, ...]) -> XenAPIError | None:
    """The error xapi gives ``name(session, arg)`` when ``name`` reads an object of an
    unmodelled class that does not exist; None when the model cannot tell."""
    cls, _, message = name.partition(".")
    if cls not in UNMODELLED_CLASSES or len(args) != 2 or not isinstance(args[1], str):
        return None
    if message == "get_by_uuid":
        return uuid_invalid(cls, args[1])
    if not message.startswith("get_") or message in _NOT_FIELD_READS:
        return None
    if message.startswith("get_by_") or args[1] in _seen_refs(world):
        return None
    return handle_invalid(cls, args[1])
