"""Licensing: the pool's feature flags, as ``pool.restrictions`` lists them, and their checks.

Source: xapi-types ``features.ml`` (every feature with its flag and orientation, ``to_assoc_list``,
``of_assoc_list``, ``enabled_when_unknown``), ``pool_features.ml`` (``assert_enabled`` raises
LICENSE_RESTRICTION [feature name]) and ``license_init.ml`` (without a licensing daemon xapi runs
as edition "free/libre" with every feature enabled).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from models.errors import XenAPIError

__all__ = [
    "ALL_FEATURES",
    "EDITIONS",
    "FEATURES",
    "Feature",
    "assert_enabled",
    "enabled_features",
    "feature_named",
    "is_enabled",
    "restrictions",
]


@dataclass(frozen=True)
class Feature:
    """One feature: its name (``name_of_feature``), its flag in pool.restrictions and whether
    the flag says "enabled" (Positive, ``enable_xha``) or "restricted" (Negative, ``restrict_*``)."""

    name: str
    flag: str
    positive: bool = False


def _negative(pairs: str) -> tuple[Feature, ...]:
    named = (pair.partition(":") for pair in pairs.split())
    return tuple(Feature(name, flag) for name, _, flag in named)


FEATURES: tuple[Feature, ...] = (
    *_negative(
        "VLAN:restrict_vlan QoS:restrict_qos Shared_storage:restrict_pool_attached_storage"
        " Netapp:restrict_netapp Equalogic:restrict_equalogic Pooling:restrict_pooling"
    ),
    Feature("HA", "enable_xha", positive=True),
    *_negative(
        "Marathon:restrict_marathon Email:restrict_email_alerting"
        " Performance:restrict_historical_performance WLB:restrict_wlb RBAC:restrict_rbac"
        " DMC:restrict_dmc Checkpoint:restrict_checkpoint CPU_masking:restrict_cpu_masking"
        " Connection:restrict_connection No_platform_filter:platform_filter"
        " No_nag_dialog:regular_nag_dialog VMPR:restrict_vmpr VMSS:restrict_vmss"
        " IntelliCache:restrict_intellicache GPU:restrict_gpu DR:restrict_dr"
        " VIF_locking:restrict_vif_locking Storage_motion:restrict_storage_xen_motion"
        " VGPU:restrict_vgpu Integrated_GPU:restrict_integrated_gpu_passthrough VSS:restrict_vss"
        " Guest_agent_auto_update:restrict_guest_agent_auto_update"
        " PCI_device_for_auto_update:restrict_pci_device_for_auto_update"
        " Xen_motion:restrict_xen_motion Guest_ip_setting:restrict_guest_ip_setting"
        " AD:restrict_ad Nested_virt:restrict_nested_virt Live_patching:restrict_live_patching"
        " Live_set_vcpus:restrict_set_vcpus_number_live PVS_proxy:restrict_pvs_proxy"
        " IGMP_snooping:restrict_igmp_snooping RPU:restrict_rpu Pool_size:restrict_pool_size"
        " CBT:restrict_cbt USB_passthrough:restrict_usb_passthrough"
        " Network_sriov:restrict_network_sriov Corosync:restrict_corosync"
        " Cluster_address:restrict_cluster_address Zstd_export:restrict_zstd_export"
        " Pool_secret_rotation:restrict_pool_secret_rotation"
        " Certificate_verification:restrict_certificate_verification Updates:restrict_updates"
        " Internal_repo_access:restrict_internal_repo_access VTPM:restrict_vtpm"
        " VM_groups:restrict_vm_groups VM_start:restrict_vm_start"
        " VM_appliance_start:restrict_vm_appliance_start"
    ),
)
"""Every feature in features.ml's order (the order of pool.restrictions' keys)."""

ALL_FEATURES: frozenset[str] = frozenset(f.name for f in FEATURES)

ENABLED_WHEN_UNKNOWN = frozenset({"Xen_motion", "AD", "Updates", "VM_start", "VM_appliance_start"})
"""Features ``of_assoc_list`` counts as enabled when their flag is missing or unreadable."""

EDITIONS: Mapping[str, frozenset[str]] = {"free/libre": ALL_FEATURES}
"""Editions whose features xapi's own source fixes: without a licensing daemon, "free/libre"
with every feature (license_init.ml). Other editions come from the closed licensing daemon."""


def feature_named(name: str) -> Feature:
    """The feature called ``name`` (as in LICENSE_RESTRICTION), case-insensitively; KeyError."""
    for feature in FEATURES:
        if feature.name.lower() == name.lower():
            return feature
    raise KeyError(name)


def restrictions(enabled: Iterable[str]) -> dict[str, str]:
    """``to_assoc_list``: every flag, "true"/"false", of a pool whose enabled features are
    ``enabled`` (what ``pool.restrictions`` lists)."""
    on = frozenset(enabled)
    return {f.flag: str((f.name in on) == f.positive).lower() for f in FEATURES}


def _enabled(feature: Feature, flags: Mapping[str, str]) -> bool:
    value = flags.get(feature.flag)
    if value not in ("true", "false"):  # OCaml's bool_of_string accepts only these
        return feature.name in ENABLED_WHEN_UNKNOWN
    return (value == "true") == feature.positive


def enabled_features(flags: Mapping[str, str]) -> frozenset[str]:
    """``of_assoc_list``: the features a pool.restrictions map enables."""
    return frozenset(f.name for f in FEATURES if _enabled(f, flags))


def is_enabled(flags: Mapping[str, str], name: str) -> bool:
    """``Pool_features.is_enabled``: whether the pool's restrictions enable feature ``name``."""
    return _enabled(feature_named(name), flags)


def assert_enabled(flags: Mapping[str, str], name: str) -> None:
    """``Pool_features.assert_enabled``: LICENSE_RESTRICTION [name] unless enabled."""
    if not is_enabled(flags, name):
        raise XenAPIError("LICENSE_RESTRICTION", feature_named(name).name)
