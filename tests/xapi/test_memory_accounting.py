"""Memory accounting as xapi does it, on the model and the embedded server over both protocols.

Expectations worked out by hand from xapi-idl ``memory/memory.ml`` (``Memory_model``:
``shadow_mib`` is 256 pages per vCPU plus two pages per MiB of static_max, times the
multiplier; ``overhead_mib`` adds the model's extras, Xen's 38 pages per vCPU (CA-423172, since
26.3) and the PV-in-PVH shim, 23 MiB + static_max / 90), ``memory_check.ml``
(``vm_compute_memory_overhead``: hvm and pvh use the HVM model, pv_in_pvh PVinPVH, pv Linux),
``xapi_vm.ml`` (``maximise_memory``, and every setter that calls ``update_memory_overhead``),
``message_forwarding.ml`` (VM.start refreshes it) and ``xapi_vm_lifecycle.ml`` (``nested_virt``
reads VM_metrics first).
"""

from __future__ import annotations

import pytest

from models.outcome import Failure
from tests.xapi.conftest import Api, make_api

MIB = 2**20
GIB = 2**30

OVERHEADS = [  # (domain_type, VCPUs_max, multiplier, overhead MiB) for static_max 1 GiB
    ("hvm", 2, 1.0, 1 + 1 + 10 + 1),  # shadow: (512 + 2048) pages = 10 MiB
    ("pvh", 2, 1.0, 13),  # pvh uses the HVM model
    ("pv", 2, 1.0, 0 + 1 + 10 + 1),  # Linux: no internal extra
    ("pv_in_pvh", 2, 1.0, 1 + 1 + 10 + 1 + 23 + 1024 // 90),  # the shim
    ("hvm", 2, 2.5, 1 + 1 + 25 + 1),  # 10 MiB * 2.5
    ("hvm", 4, 1.0, 1 + 1 + 12 + 1),  # (1024 + 2048) pages = 12 MiB; 152 pages = 1 MiB
    ("hvm", 64, 1.0, 1 + 1 + 72 + 10),  # (16384 + 2048) pages; 2432 pages = 9.5 -> 10 MiB
]


def _vm(api: Api, domain_type: str, vcpus: int = 2, multiplier: float = 1.0) -> str:
    return api.new_vm(
        domain_type=domain_type,
        HVM_boot_policy="" if domain_type != "hvm" else "BIOS order",
        VCPUs_max=str(vcpus),
        HVM_shadow_multiplier=multiplier,
    )


@pytest.mark.parametrize(("domain_type", "vcpus", "multiplier", "mib"), OVERHEADS)
def test_compute_memory_overhead_follows_the_domain_types_model(
    api: Api, domain_type: str, vcpus: int, multiplier: float, mib: int
) -> None:
    """memory_check.ml vm_compute_memory_overhead; VM.create stores the same value
    (xapi_vm.ml create ends with update_memory_overhead)."""
    vm = _vm(api, domain_type, vcpus, multiplier)
    assert int(api.ok("VM.compute_memory_overhead", vm)) == mib * MIB
    assert api.int(vm, "memory_overhead") == mib * MIB


@pytest.mark.parametrize("kind", ["model", "xmlrpc", "jsonrpc"])
def test_releases_before_26_3_have_no_per_vcpu_term(kind: str) -> None:
    """CA-423172 (ec3bd4a887, first in v26.3.0) added Xen's 38 pages per vCPU."""
    api = make_api(kind, xapi_version="24.19")
    vm = _vm(api, "hvm", vcpus=64)
    assert int(api.ok("VM.compute_memory_overhead", vm)) == (1 + 1 + 72) * MIB


def test_setters_refresh_the_stored_overhead(api: Api) -> None:
    """update_memory_overhead after set_VCPUs_max, set_HVM_shadow_multiplier and
    set_memory_static_range (xapi_vm.ml, xapi_vm_helpers.ml)."""
    vm = _vm(api, "hvm")
    api.ok("VM.set_VCPUs_max", vm, "4")
    assert api.int(vm, "memory_overhead") == 15 * MIB
    api.ok("VM.set_HVM_shadow_multiplier", vm, 2.0)
    assert api.int(vm, "memory_overhead") == (1 + 1 + 24 + 1) * MIB
    api.ok("VM.set_memory_static_range", vm, str(256 * MIB), str(2 * GIB))
    # (1024 + 4096) pages = 20 MiB, times 2
    assert api.int(vm, "memory_overhead") == (1 + 1 + 40 + 1) * MIB


def test_set_domain_type_leaves_the_overhead_stale_until_start(api: Api) -> None:
    """set_domain_type does not call update_memory_overhead; VM.start does, before placement
    (message_forwarding.ml start), and compute_memory_overhead reads the record as it is."""
    vm = _vm(api, "hvm")
    api.ok("VM.set_domain_type", vm, "pv_in_pvh")
    shim = (1 + 1 + 10 + 1 + 23 + 1024 // 90) * MIB
    assert api.int(vm, "memory_overhead") == 13 * MIB
    assert int(api.ok("VM.compute_memory_overhead", vm)) == shim
    api.ok("VM.start", vm, False, False)
    assert api.int(vm, "memory_overhead") == shim


def test_copies_keep_the_stored_overhead(api: Api) -> None:
    """copy_vm_record copies memory_overhead as it is stored, stale or not."""
    vm = _vm(api, "hvm")
    api.ok("VM.set_domain_type", vm, "pv")
    clone = str(api.ok("VM.clone", vm, "copy"))
    assert api.int(clone, "memory_overhead") == 13 * MIB


@pytest.mark.parametrize(
    ("total", "approximate", "mib"),
    [
        (4 * GIB, False, 4059),  # 4059 + 2 + ceil((512 + 8118) / 256) = 34 + 1 = 4096
        (4 * GIB, True, 3988),  # 64 vCPUs: 3988 + 2 + ceil((16384 + 7976) / 256) = 96 + 10
        (0, False, 0),  # even static_max 0 needs 5 MiB
        (10 * MIB, False, 4),  # 4 + 2 + ceil(520 / 256) = 3 + 1 = 10
    ],
)
def test_maximise_memory_bisects_the_start_memory(
    api: Api, total: int, approximate: bool, mib: int
) -> None:
    """xapi_vm.ml maximise_memory: helpers.ml bisect over static_max of the start memory
    (Static_max policy), rounded down to a MiB; ``approximate`` sizes for 64 vCPUs."""
    vm = _vm(api, "hvm")
    assert int(api.ok("VM.maximise_memory", vm, str(total), approximate)) == mib * MIB


def test_maximise_memory_of_a_negative_total_fails_bisects_assert(api: Api) -> None:
    """bisect asserts lower <= upper: an OCaml Assert_failure, INTERNAL_ERROR with Printexc's
    text (helpers.ml line 1425 at v26.17.0)."""
    vm = _vm(api, "hvm")
    text = 'File "ocaml/xapi/helpers.ml", line 1425, characters 2-8: Assertion failed'
    assert api.fails("VM.maximise_memory", vm, "-1", False) == Failure("INTERNAL_ERROR", (text,))


def _unpinned_limits(api: Api, vm: str) -> Failure | None:
    limits = (str(256 * MIB), str(GIB), str(512 * MIB), str(GIB))
    outcome = api.call("VM.set_memory_limits", vm, *limits)
    return outcome if isinstance(outcome, Failure) else None


def test_nested_virt_is_read_from_the_metrics_first(api: Api) -> None:
    """xapi_vm_lifecycle.ml nested_virt: VM_metrics.nested_virt, false from VM.create until a
    boot sets it from the platform; kept after shutdown and copied by clone (copy_metrics).
    Both the memory rule (xapi_vm_memory_constraints.ml) and the operation check read it."""
    vm = api.new_vm(platform={"nested-virt": "true"}, memory_dynamic_min=str(GIB))
    assert _unpinned_limits(api, vm) is None  # never booted: the metrics say false
    assert api.ok("VM.assert_operation_valid", vm, "changing_dynamic_range") == ""
    api.ok("VM.set_memory_limits", vm, str(GIB), str(GIB), str(GIB), str(GIB))
    api.ok("VM.start", vm, False, False)
    api.ok("VM.hard_shutdown", vm)
    pinned = Failure("MEMORY_CONSTRAINT_VIOLATION_MAXPIN", ("nested virt",))
    assert _unpinned_limits(api, vm) == pinned  # captured at boot, kept when halted
    refused = Failure("VM_IS_USING_NESTED_VIRT", (vm,))
    assert api.fails("VM.assert_operation_valid", vm, "changing_dynamic_range") == refused
    clone = str(api.ok("VM.clone", vm, "clone"))
    assert _unpinned_limits(api, clone) == pinned
