"""The default templates a pool ships with, as they reach xapi's database.

A host's templates are not written by xapi itself: the guest-templates-json package describes
each one in JSON (``derived_from`` chains deltas onto a base), its loader
(``guesttemplates/blank_template.py``, ``loader.py``) turns one into a VM record, imports it with
``/import_metadata?restore=true`` (xapi's import.ml: the uuid kept, ``version`` + 1, the mac_seed
kept, memory_overhead computed, then VM.create_from_record) and finally calls
``VM.set_is_default_template true`` (xapi_vm_helpers.ml: ``is_default_template`` and
``other_config:default_template=true``). Two templates are modelled, read from
xenserver/guest-templates-json: "Other install media" (BIOS) and "Debian Bookworm 12" (UEFI,
with a 10 GiB disk to provision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_TEMPLATES", "template_fields"]

GIB = 2**30
MIB = 2**20

_SPECS: Mapping[str, Mapping[str, Any]] = {
    "base-hvmlinux": {
        "name_description": "To use this template from the CLI, install your VM using"
        " vm-install, then set other-config-install-repository to the path to your network"
        " repository, e.g. http://<server>/<path> or nfs:server:/<path>",
        "max_memory": 1536 * GIB,
        "vcpus_max": 32,
        "number_of_vbds": 255,
        "number_of_vifs": 7,
        "allow_gpu_passthrough": True,
        "allow_vgpu": True,
        "other_config": {"linux_template": "true", "install-methods": "cdrom,nfs,http,ftp"},
        "platform": {"vga": "std", "videoram": "8", "viridian": "false", "device_id": "0001"},
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cdn"},
    },
    "base-linux-uefi": {
        "derived_from": "base-hvmlinux",
        "platform": {"device-model": None, "secureboot": "auto"},
        "HVM_boot_params": {"firmware": "uefi", "order": "cdn"},
        "supports_uefi": True,
        "supports_secure_boot": True,
    },
    "debian-12": {
        "derived_from": "base-linux-uefi",
        "uuid": "07d91aaa-43f7-430a-bf84-0edb6714df0f",
        "reference_label": "debian-12",
        "name_label": "Debian Bookworm 12",
        "min_memory": GIB,
        "disks": ({"size": 10 * GIB},),
    },
    "other-install-media": {
        "uuid": "552bce37-51b2-445d-84f2-5f33fa112d7e",
        "reference_label": "other-install-media",
        "name_label": "Other install media",
        "name_description": "Template which allows VM installation from install media",
        "min_memory": 128 * MIB,
        "max_memory": 128 * GIB,
        "vcpus_max": 32,
        "number_of_vbds": 255,
        "number_of_vifs": 7,
        "user_version": 2,
        "other_config": {"install-methods": "cdrom"},
        "platform": {"viridian": "true", "device-model": "qemu-upsteam-compat"},
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "dc"},
    },
}
"""The JSON files read (sizes written out in bytes), keyed by file name without ``.json``."""

DEFAULT_TEMPLATES = ("other-install-media", "debian-12")
"""The templates a simulated pool has, in the order they are made."""

_PLATFORM_DEFAULTS = {
    "nx": "true",
    "acpi": "1",
    "apic": "true",
    "pae": "true",
    "hpet": "true",
    "secureboot": "true",
}
"""blank_template.py ``Platform(defaults=True)``: what a base template's platform starts with."""

_RECORD_KEYS = (
    "name_label",
    "name_description",
    "reference_label",
    "user_version",
    "HVM_boot_policy",
    "HVM_boot_params",
    "VCPUs_max",
    "VCPUs_at_startup",
)


def _layers(name: str) -> list[Mapping[str, Any]]:
    """The spec and the bases it derives from, base first."""
    spec = _SPECS[name]
    base = spec.get("derived_from")
    return [*(_layers(str(base)) if base else []), spec]


def _restrictions(layers: list[Mapping[str, Any]]) -> str:
    """blank_template.py ``Recommendations.toxml``: the recommendations XML, attributes in the
    order the loader writes them."""
    merged: dict[str, Any] = {"has_vendor_device": False}
    for layer in layers:
        merged.update(layer)
    rows = []
    for field, key, attr in (
        ("memory-static-max", "max_memory", "max"),
        ("vcpus-min", "vcpus_min", "min"),
        ("vcpus-max", "vcpus_max", "max"),
        ("has-vendor-device", "has_vendor_device", "value"),
        ("allow-gpu-passthrough", "allow_gpu_passthrough", "value"),
        ("allow-vgpu", "allow_vgpu", "value"),
        ("supports-bios", "supports_bios", "value"),
        ("supports-uefi", "supports_uefi", "value"),
        ("supports-secure-boot", "supports_secure_boot", "value"),
    ):
        if key in merged:
            rows.append(f'<restriction field="{field}" {attr}="{_text(key, merged[key])}"/>')
    for prop, key in (("number-of-vbds", "number_of_vbds"), ("number-of-vifs", "number_of_vifs")):
        rows.append(f'<restriction property="{prop}" max="{merged.get(key, "")}"/>')
    return "<restrictions>" + "".join(rows) + "</restrictions>"


def _text(key: str, value: Any) -> str:
    if key in ("supports_bios", "supports_uefi", "supports_secure_boot"):
        return "yes" if value else "no"
    if key in ("allow_gpu_passthrough", "allow_vgpu"):
        return "1" if value else "0"
    if key == "has_vendor_device":
        return "true" if value else "false"
    return str(value)


def _disks(disks: tuple[Mapping[str, Any], ...]) -> str:
    """blank_template.py ``DiskDevices.toxml``: the provision spec VM.provision reads."""
    rows = [
        f'<disk size="{d["size"]}" sr="{d.get("sr", "")}" bootable="true" type="system"'
        f' device="{position}"/>'
        for position, d in enumerate(disks)
    ]
    return "<provision>" + "".join(rows) + "</provision>"


def template_fields(name: str, mac_seed: str) -> tuple[str, dict[str, Any]]:
    """The uuid and the VM.create fields of default template ``name`` as its import writes
    them (``mac_seed``: the one the loader drew); blank_template.py's defaults, each layer
    applied in turn, null and empty map values dropped as its XML writer drops them."""
    layers = _layers(name)
    record: dict[str, Any] = {"user_version": 1, "VCPUs_max": 1, "VCPUs_at_startup": 1}
    record.update(HVM_boot_params={}, HVM_boot_policy="", HVM_shadow_multiplier=1.0)
    platform, other = dict(_PLATFORM_DEFAULTS), {"mac_seed": mac_seed}
    for layer in layers:
        record.update({k: layer[k] for k in _RECORD_KEYS if k in layer})
        platform.update(layer.get("platform", {}))
        other.update(layer.get("other_config", {}))
        if "disks" in layer:
            other["disks"] = _disks(layer["disks"])
        if "min_memory" in layer:
            low = int(layer["min_memory"])
            record.update(memory_static_min=low, memory_dynamic_min=2 * low)
            record.update(memory_dynamic_max=2 * low, memory_static_max=2 * low)
    record.update(
        is_a_template=True,
        platform={k: v for k, v in platform.items() if v},
        other_config={**{k: v for k, v in other.items() if v}, "default_template": "true"},
        recommendations=_restrictions(layers),
        PV_bootloader="",
        PV_kernel="",
        PV_ramdisk="",
        PV_args="",
        PV_bootloader_args="",
        PV_legacy_args="",
        actions_after_shutdown="destroy",
        actions_after_reboot="restart",
        actions_after_crash="restart",
        version=1,  # import.ml: a full restore counts one more restore
    )
    return str(_SPECS[name]["uuid"]), record
