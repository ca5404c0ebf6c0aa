"""Memory accounting: a VM's memory overhead and the largest static_max that fits in a total.

Sources: xapi-idl ``memory/memory.ml`` (``Memory_model``: ``shadow_mib``, ``overhead_mib``,
``footprint_mib``, and the data of the HVM, Linux (PV) and PVinPVH models),
``ocaml/xapi/memory_check.ml`` (``vm_compute_memory_overhead``, ``vm_compute_required_memory``,
``vm_compute_start_memory``), ``xapi_vm.ml`` ``maximise_memory`` and ``helpers.ml`` ``bisect``.

xapi computes in OCaml's ``Int64`` (wrapping, division truncated toward zero) and reads the VCPU
count through ``Int64.to_int`` (63 bits); the functions here do the same, so a client that sends
extreme values gets xapi's numbers, not Python's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from models.errors import XenAPIError
from models.outcome import Value
from models.releases import Release, changed

__all__ = [
    "HVM",
    "LINUX",
    "PV_IN_PVH",
    "MemoryModel",
    "maximise_memory",
    "memory_model",
    "overhead_mib",
    "shadow_mib",
    "start_memory",
    "vm_memory_overhead",
]

_BYTES_PER_KIB = 1024
_BYTES_PER_MIB = 1024 * 1024
_PAGES_PER_MIB = 256
_VCPU_SHADOW_PAGES = 256
_VCPU_XEN_PAGES = 38
"""CA-423172: Xen uses about 294 pages per vCPU, 256 of which the shadow term already counts."""
PER_VCPU_CHANGE = "memory overhead: 38 more pages per vCPU (CA-423172)"
APPROXIMATE_VCPUS = 64
"""``maximise_memory ~approximate:true`` sizes the VM as if it had 64 vCPUs."""


def _i64(value: int) -> int:
    """``value`` wrapped to a signed 64-bit integer, as OCaml's Int64 arithmetic does."""
    return (value + 2**63) % 2**64 - 2**63


def _div(numerator: int, denominator: int) -> int:
    """OCaml's ``Int64.div``: the quotient truncated toward zero."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator >= 0) else -quotient


def _used(value: int, unit: int) -> int:
    """memory.ml ``divide_rounding_up``: ``(value + unit - 1) / unit`` in Int64."""
    return _div(_i64(value + unit - 1), unit)


def _to_int(value: int) -> int:
    """``Int64.to_int`` on a 64-bit host: the low 63 bits, sign-extended."""
    low = value % 2**63
    return low - 2**63 if low >= 2**62 else low


def _of_float(value: float) -> int:
    """``Int64.of_float``: truncation; NaN and out-of-range values give min_int, as on x86-64."""
    if not math.isfinite(value) or not -(2.0**63) <= value < 2.0**63:
        return -(2**63)
    return int(value)


@dataclass(frozen=True)
class MemoryModel:
    """One ``MEMORY_MODEL_DATA`` of memory.ml: the fixed extras and whether a shim runs."""

    name: str
    extra_internal_mib: int
    extra_external_mib: int
    has_shim: bool = False

    def shim_mib(self, static_max_mib: int) -> int:
        """``shim_mib``: 23 MiB plus static_max / 90 for PV-in-PVH guests, nothing otherwise."""
        return _i64(23 + _div(static_max_mib, 90)) if self.has_shim else 0


HVM = MemoryModel("HVM", extra_internal_mib=1, extra_external_mib=1)
LINUX = MemoryModel("Linux", extra_internal_mib=0, extra_external_mib=1)
PV_IN_PVH = MemoryModel("PVinPVH", extra_internal_mib=1, extra_external_mib=1, has_shim=True)

_MODELS = {"hvm": HVM, "pvh": HVM, "pv_in_pvh": PV_IN_PVH, "pv": LINUX}


def memory_model(domain_type: str) -> MemoryModel:
    """memory_check.ml's choice of model by domain type (``Helpers.check_domain_type``).

    An unspecified domain type is xapi's ``internal_error "unspecified domain type"``.
    """
    model = _MODELS.get(domain_type)
    if model is None:
        raise XenAPIError("INTERNAL_ERROR", "unspecified domain type")
    return model


def shadow_mib(static_max_mib: int, vcpus: int, multiplier: float) -> int:
    """memory.ml ``shadow_mib``: 256 pages per vCPU plus two pages per MiB, times the
    multiplier (truncated), at least 1 MiB."""
    pages = _i64(_VCPU_SHADOW_PAGES * vcpus + 2 * static_max_mib)
    total_mib = _used(pages, _PAGES_PER_MIB)
    return max(1, _of_float(float(total_mib) * multiplier))


def overhead_mib(
    model: MemoryModel, static_max_mib: int, vcpus: int, multiplier: float, per_vcpu: bool
) -> int:
    """memory.ml ``overhead_mib``: the extras, the shadow, Xen's per-vCPU pages (since the
    CA-423172 fix, ``per_vcpu``) and the shim."""
    xen_pages = _used(_i64(_VCPU_XEN_PAGES * vcpus), _PAGES_PER_MIB) if per_vcpu else 0
    return _i64(
        model.extra_internal_mib
        + model.extra_external_mib
        + shadow_mib(static_max_mib, vcpus, multiplier)
        + xen_pages
        + model.shim_mib(static_max_mib)
    )


@dataclass(frozen=True)
class _Sizing:
    """The fields of a VM record that memory accounting reads."""

    model: MemoryModel
    static_max: int
    vcpus: int
    multiplier: float

    @classmethod
    def of(cls, vm: Mapping[str, Value]) -> _Sizing:
        multiplier = vm.get("HVM_shadow_multiplier", 1.0)
        return cls(
            model=memory_model(str(vm.get("domain_type", "unspecified"))),
            static_max=_int(vm.get("memory_static_max", 0)),
            vcpus=_to_int(_int(vm.get("VCPUs_max", 0))),
            multiplier=float(multiplier) if isinstance(multiplier, (int, float)) else 1.0,
        )


def _int(value: Value | None) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def vm_memory_overhead(vm: Mapping[str, Value], release: Release) -> int:
    """memory_check.ml ``vm_compute_memory_overhead``: the ``memory_overhead`` xapi stores and
    ``VM.compute_memory_overhead`` returns, in bytes (the VM's own multiplier for every model)."""
    sizing = _Sizing.of(vm)
    static_max_mib = _used(sizing.static_max, _BYTES_PER_MIB)
    mib = overhead_mib(
        sizing.model, static_max_mib, sizing.vcpus, sizing.multiplier, _per_vcpu(release)
    )
    return _i64(mib * _BYTES_PER_MIB)


def _per_vcpu(release: Release) -> bool:
    return changed(release, PER_VCPU_CHANGE)


def start_memory(vm: Mapping[str, Value], guest_bytes: int, release: Release) -> int:
    """memory_check.ml ``vm_compute_required_memory``: normal plus shadow host memory, in bytes,
    to run the VM with ``guest_bytes`` of guest memory (``footprint_mib``; a PV guest's shadow
    uses the default multiplier 1.0)."""
    sizing = _Sizing.of(vm)
    multiplier = 1.0 if sizing.model is LINUX else sizing.multiplier
    target_mib = _used(_used(guest_bytes, _BYTES_PER_KIB), 1024)
    static_max_mib = _used(sizing.static_max, _BYTES_PER_MIB)
    overhead = overhead_mib(
        sizing.model, static_max_mib, sizing.vcpus, multiplier, _per_vcpu(release)
    )
    return _i64(_i64(target_mib + overhead) * _BYTES_PER_MIB)


_BISECT_ASSERTS: tuple[tuple[str, int, int], ...] = (
    ("26.17", 1425, 1433),
    ("24.19", 1255, 1260),
    ("1.249", 1151, 1156),
)
"""helpers.ml lines of ``bisect``'s two asserts, by release (read at v26.17.0, v24.19.2 and
v1.249.38): a failed assert reaches the client as INTERNAL_ERROR with Printexc's text."""


def _assert_failed(release: Release, second: bool) -> XenAPIError:
    lines = next((a for a in _BISECT_ASSERTS if release.at_least(a[0])), _BISECT_ASSERTS[-1])
    line, column = (lines[2], 4) if second else (lines[1], 2)
    text = (
        f'File "ocaml/xapi/helpers.ml", line {line}, characters {column}-{column + 6}:'
        " Assertion failed"
    )
    return XenAPIError("INTERNAL_ERROR", text)


def _bisect(fits: _Fits, lower: int, upper: int, release: Release) -> int:
    """helpers.ml ``bisect``: the largest value in [lower, upper] that fits, ``fits`` monotonic."""
    if lower > upper:
        raise _assert_failed(release, second=False)
    while _i64(upper - lower) >= 2:
        middle = _div(_i64(upper + lower), 2)
        if not lower < middle < upper:
            raise _assert_failed(release, second=True)
        lower, upper = (middle, upper) if fits(middle) else (lower, middle)
    return upper if fits(upper) else lower


class _Fits:
    """``will_fit``: the VM with static_max ``s`` starts (Static_max policy) within ``total``."""

    def __init__(self, vm: Mapping[str, Value], total: int, release: Release) -> None:
        self.vm, self.total, self.release = vm, total, release

    def __call__(self, static_max: int) -> bool:
        sized = {**self.vm, "memory_static_max": static_max}
        return start_memory(sized, static_max, self.release) <= self.total


def maximise_memory(
    vm: Mapping[str, Value], total: int, approximate: bool, release: Release
) -> int:
    """xapi_vm.ml ``maximise_memory``: the largest static_max whose start memory fits in
    ``total`` (as if the VM had 64 vCPUs when ``approximate``), rounded down to a MiB.

    A negative total fails bisect's first assert (INTERNAL_ERROR), as it does in xapi.
    """
    sized = {**vm, "VCPUs_max": APPROXIMATE_VCPUS} if approximate else dict(vm)
    best = _bisect(_Fits(sized, total, release), 0, total, release)
    return _i64(_div(_div(best, 1024), 1024) * _BYTES_PER_MIB)
