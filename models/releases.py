"""The xapi releases the model can follow, and how a host of each release describes itself.

A host's ``software_version`` map and ``API_version_major/minor`` fields are what clients compare
(Ansible's XenServer modules read ``product_version``; the SDKs read the API version), so each
release carries the values a host of that release reports. Behaviours that changed between
releases are keyed by the release's xapi version (``xapi_version``), compared as numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

__all__ = [
    "CHANGES",
    "DATABASE_TABLES",
    "DEFAULT_RELEASE",
    "MESSAGES_SINCE",
    "RELEASES",
    "Release",
    "changed",
    "database_tables",
    "release",
    "release_of_software_version",
    "released",
]


@dataclass(frozen=True)
class Release:
    """One xapi release as its hosts report it (``xapi`` is the ``major.minor`` of xapi)."""

    xapi: str
    xapi_build: str
    product_brand: str
    product_version: str
    platform_version: str
    xen: str
    api_minor: int
    date: str
    api_major: int = 2

    @property
    def key(self) -> tuple[int, ...]:
        """The xapi version as numbers, for ordering releases."""
        return version_key(self.xapi)

    def at_least(self, xapi: str) -> bool:
        """Whether this release is xapi ``xapi`` or newer."""
        return self.key >= version_key(xapi)

    def software_version(self, hostname: str) -> dict[str, str]:
        """The host's ``software_version`` map, with the keys xapi's create_misc writes."""
        return {
            "product_brand": self.product_brand,
            "product_version": self.product_version,
            "product_version_text": _short(self.product_version),
            "product_version_text_short": _short(self.product_version),
            "platform_name": "XCP",
            "platform_version": self.platform_version,
            "xapi": self.xapi,
            "xapi_build": self.xapi_build,
            "xen": self.xen,
            "hostname": hostname,
            "date": self.date,
            "build_number": "release/xapi-conformance",
            "network_backend": "openvswitch",
            "db_schema": "5.786",
        }


@functools.lru_cache(maxsize=256)
def version_key(text: str) -> tuple[int, ...]:
    """``"24.19.2"`` → ``(24, 19, 2)``; non-numeric parts end the key."""
    numbers: list[int] = []
    for part in text.strip().split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def _short(product_version: str) -> str:
    return ".".join(product_version.split(".")[:2])


RELEASES: tuple[Release, ...] = (
    Release("1.249", "1.249.38", "Citrix Hypervisor", "8.2.1", "3.2.1", "4.13.5", 15, "2023-06-01"),
    Release("24.19", "24.19.2", "XCP-ng", "8.3.0", "3.4.0", "4.17.4", 21, "2024-09-19"),
    Release("26.17", "26.17.0", "XenServer", "8.4.0", "3.4.0", "4.17.5", 21, "2026-08-21"),
)
"""Oldest first. The newest is the behaviour of the xapi source the model was checked against."""

DEFAULT_RELEASE = RELEASES[-1]


def release(xapi: str) -> Release:
    """The newest known release not newer than xapi ``xapi`` (the oldest if it predates all).

    Raises ValueError when ``xapi`` is not a version (e.g. ``"latest"``).
    """
    key = version_key(xapi)
    if not key:
        raise ValueError(
            f"xapi version {xapi!r} is not a version; give major.minor such as "
            f"{DEFAULT_RELEASE.xapi} (known: {', '.join(r.xapi for r in RELEASES)})"
        )
    known = [r for r in RELEASES if r.key <= key] or [RELEASES[0]]
    chosen = known[-1]
    if chosen.key == key[: len(chosen.key)]:
        return chosen
    return Release(xapi, xapi, *_fields_after_xapi(chosen))


def _fields_after_xapi(base: Release) -> tuple[str, str, str, str, int, str]:
    return (
        base.product_brand,
        base.product_version,
        base.platform_version,
        base.xen,
        base.api_minor,
        base.date,
    )


def release_of_software_version(software_version: dict[str, str]) -> Release | None:
    """The release a host's ``software_version`` names (its ``xapi`` key), or None if absent."""
    text = software_version.get("xapi_build") or software_version.get("xapi") or ""
    return release(text) if version_key(text) else None


MESSAGES_SINCE: dict[str, str] = {
    "VM.restart_device_models": "23.30",  # CP-45571, first in v23.30.0
    "VM.get_secureboot_certificates_state": "26.14",  # a68be09a98, first in v26.14.0
    "VM.update_secureboot_certificates_on_boot": "26.14",  # 87ca912257, first in v26.14.0
}
"""Messages newer than some known release: wire name → the first xapi version that has them.
An older server knows nothing of them: MESSAGE_METHOD_UNKNOWN, as for any unknown name."""


CHANGES: dict[str, str] = {
    "restart_device_models: its own power-state check, capitalised states": "24.10",  # CA-388107
    "get_allowed_VIF_devices: 16 devices, not 7": "25.29",  # 947e4965be, first in v25.29.0
    "memory overhead: 38 more pages per vCPU (CA-423172)": "26.3",  # ec3bd4a887, first in v26.3.0
}
"""Behaviours that changed between known releases: what changed → the first xapi version with
the new behaviour (older releases keep the old one). See also ``MESSAGES_SINCE``."""


def changed(chosen: Release, change: str) -> bool:
    """Whether a server of release ``chosen`` has the new behaviour ``change`` (a key of
    ``CHANGES``)."""
    return chosen.at_least(CHANGES[change])


def released(chosen: Release, wire_name: str) -> bool:
    """Whether a server of release ``chosen`` has message ``wire_name``."""
    since = MESSAGES_SINCE.get(wire_name)
    return since is None or chosen.at_least(since)


DATABASE_TABLES: tuple[str, ...] = (
    *("session", "auth", "subject", "role", "task", "event", "pool", "pool_patch"),
    *("pool_update", "vm", "vm_metrics", "vm_guest_metrics", "vmpp", "vmss", "vm_appliance"),
    *("dr_task", "host", "host_crashdump", "host_patch", "host_metrics", "host_cpu"),
    *("network", "vif", "vif_metrics", "pif", "pif_metrics", "bond", "vlan", "sm", "sr"),
    *("sr_stat", "probe_result", "lvhd", "vdi", "vbd", "vbd_metrics", "pbd", "crashdump"),
    *("vtpm", "console", "user", "data_source", "blob", "message", "secret", "tunnel"),
    *("network_sriov", "pci", "pgpu", "gpu_group", "vgpu", "vgpu_type", "pvs_site"),
    *("pvs_server", "pvs_proxy", "pvs_cache_storage", "feature", "sdn_controller"),
    *("vdi_nbd_server_info", "pusb", "usb_group", "vusb", "cluster", "cluster_host"),
    *("certificate", "diagnostics", "repository", "observer", "vm_group", "host_driver"),
    *("driver_variant", "caller", "rate_limit"),
)
"""The tables of xapi's database, as event.from's ``valid_ref_counts`` names them: one per class
of ``Datamodel.all_system`` (``Datamodel_schema.of_datamodel``), lower-cased
(``Xapi_event.from_inner``), in that order."""

TABLES_SINCE: dict[str, str] = {
    "repository": "1.301",
    "observer": "23.14",
    "vm_group": "24.19",
    "host_driver": "25.3",
    "driver_variant": "25.3",
    "caller": "26.17",
    "rate_limit": "26.17",
}
"""Tables newer than some known release → the first xapi version whose datamodel has them
(read from ``all_system`` at each release tag)."""


def database_tables(chosen: Release) -> tuple[str, ...]:
    """The tables a database of release ``chosen`` has (``DATABASE_TABLES`` it knows)."""
    return tuple(t for t in DATABASE_TABLES if chosen.at_least(TABLES_SINCE.get(t, "0")))
