"""The remaining VM messages of the model: queries, plugins, BIOS strings, blobs, recovery, import,
migration and pool_migrate, placement (semantics §2.2, §4.2-§4.4, §5.4, §10, §14 test_vm.ml)."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from models.outcome import Failure
from models.world import GENERIC_BIOS_STRINGS, NULL_REF, Facts
from tests.models.helpers import GIB, MIB, Driver, driver

BIG = 40 * GIB
"""Two such VMs do not fit on one model host (64 GiB, 4 GiB and overheads held by dom0)."""


def _hosts(d: Driver) -> tuple[str, str]:
    """(master, the other host) of a two-host pool."""
    master = d.world.pool.master
    other = next(ref for ref in d.world.hosts if ref != master)
    return master, other


def _big_vm(d: Driver, affinity: str) -> str:
    """A VM whose 40 GiB footprint (DMC on: dynamic_min) leaves 20 GiB free on its host."""
    return d.new_vm(
        affinity=affinity,
        memory_static_max=str(BIG),
        memory_dynamic_max=str(BIG),
        memory_dynamic_min=str(BIG),
    )


def _no_room(d: Driver, vm: str, host: str) -> Failure:
    """memory_check.ml's HOST_NOT_ENOUGH_FREE_MEMORY for a ``_big_vm``: it needs its
    dynamic_min plus its overhead; the host has its total less each resident VM's (its dom0's
    included) dynamic_min plus overhead."""
    resident = [r for r, v in d.world.vms.items() if v["resident_on"] == host]
    held = sum(int(d.field(r, "memory_dynamic_min")) for r in resident)
    held += sum(int(d.field(r, "memory_overhead")) for r in resident)
    needed = BIG + int(d.field(vm, "memory_overhead"))
    return Failure("HOST_NOT_ENOUGH_FREE_MEMORY", (str(needed), str(64 * GIB - held)))


def _set_host(d: Driver, ref: str, **changes: object) -> None:
    """Change what the pool's host ``ref`` looks like (liveness, HVM capability)."""
    host = replace(d.world.hosts[ref], **changes)  # type: ignore[arg-type]
    d.world = replace(d.world, hosts=MappingProxyType({**d.world.hosts, ref: host}))


# ---- query_services, query_data_source, call_plugin (§2.2) -----------------------------------


@pytest.mark.parametrize("flag", ["true", "1", "TRUE"])
def test_query_services_on_a_system_domain_is_not_implemented(flag: str) -> None:
    d = driver()
    ref = d.new_vm(other_config={"is_system_domain": flag})
    assert d.fails("VM.query_services", ref) == Failure("NOT_IMPLEMENTED", ("query_services",))


@pytest.mark.parametrize("state", ["Running", "Paused"])
def test_query_data_source_on_a_live_vm_answers_zero(state: str) -> None:
    d = driver()
    ref = d.in_state(state)
    value = d.ok("VM.query_data_source", ref, "memory")
    assert value == 0.0
    assert isinstance(value, float)


@pytest.mark.parametrize(("state", "actual"), [("Halted", "halted"), ("Suspended", "suspended")])
def test_query_data_source_joins_the_expected_states_with_a_semicolon(
    state: str, actual: str
) -> None:
    d = driver()
    ref = d.in_state(state)
    assert d.fails("VM.query_data_source", ref, "memory") == Failure(
        "VM_BAD_POWER_STATE", (ref, "running;paused", actual)
    )


@pytest.mark.unconfirmed
def test_call_plugin_on_a_running_vm_names_the_missing_plugin_unconfirmed() -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.fails("VM.call_plugin", ref, "frob", "fn", {}) == Failure(
        "XENAPI_MISSING_PLUGIN", ("frob",)
    )


def test_call_plugin_needs_a_running_vm() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.call_plugin", ref, "frob", "fn", {}) == Failure(
        "VM_BAD_POWER_STATE", (ref, "running", "halted")
    )


# ---- memory queries, placement queries (§4.4) ------------------------------------------------


def test_maximise_memory_leaves_room_for_the_overhead_of_the_result() -> None:
    d = driver()
    ref = d.new_vm()  # HVM, VCPUs_max 2, multiplier 1.0
    total = 4 * GIB
    # static_max 4059 MiB: 4059 + 2 extra + shadow ceil((512 + 2 * 4059) / 256) = 34
    # + Xen's vCPU pages ceil(76 / 256) = 1 is 4096 MiB; 4060 MiB would need 4097
    assert d.ok("VM.maximise_memory", ref, str(total), False) == 4059 * MIB


def test_maximise_memory_of_nothing_is_nothing() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.ok("VM.maximise_memory", ref, "0", True) == 0


def test_get_possible_hosts_lists_every_host_a_fresh_vm_can_boot_on() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.ok("VM.get_possible_hosts", ref) == tuple(d.world.hosts)


def test_get_possible_hosts_leaves_out_a_host_that_is_not_live() -> None:
    d = driver()
    master, other = _hosts(d)
    _set_host(d, other, live=False)
    ref = d.new_vm()
    assert d.ok("VM.get_possible_hosts", ref) == (master,)


def test_get_possible_hosts_leaves_out_a_host_without_room() -> None:
    d = driver()
    master, other = _hosts(d)
    d.ok("VM.start", _big_vm(d, master), False, False)
    assert d.ok("VM.get_possible_hosts", _big_vm(d, NULL_REF)) == (other,)


def test_get_possible_hosts_of_an_unbootable_vm_is_empty() -> None:
    d = driver()
    ref = d.new_vm(VCPUs_max="0")
    assert d.ok("VM.get_possible_hosts", ref) == ()


def test_assert_can_boot_here_passes_for_a_fresh_vm() -> None:
    d = driver()
    master, _ = _hosts(d)
    assert d.ok("VM.assert_can_boot_here", d.new_vm(), master) == ""


def test_assert_can_boot_here_on_an_unknown_host() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.assert_can_boot_here", ref, "OpaqueRef:nohost") == Failure(
        "HANDLE_INVALID", ("host", "OpaqueRef:nohost")
    )


def test_assert_can_boot_here_propagates_the_validation_error() -> None:
    d = driver()
    master, _ = _hosts(d)
    ref = d.new_vm(VCPUs_max="1", VCPUs_at_startup="3")
    assert d.fails("VM.assert_can_boot_here", ref, master) == Failure(
        "VALUE_NOT_SUPPORTED", ("VCPUs-at-startup", "3", "value greater than VCPUs-max")
    )


def test_start_on_a_host_without_hvm_needs_hvm() -> None:
    d = driver()
    master, _ = _hosts(d)
    _set_host(d, master, hvm=False)
    ref = d.new_vm()  # HVM_boot_policy "BIOS order" -> domain_type hvm
    assert d.fails("VM.start_on", ref, master, False, False) == Failure("VM_HVM_REQUIRED", (ref,))
    assert d.field(ref, "power_state") == "Halted"


def test_a_pv_guest_boots_on_a_host_without_hvm() -> None:
    d = driver()
    master, _ = _hosts(d)
    _set_host(d, master, hvm=False)
    ref = d.new_vm(HVM_boot_policy="")
    d.ok("VM.start_on", ref, master, False, False)
    assert d.field(ref, "resident_on") == master


@pytest.mark.unconfirmed
@pytest.mark.parametrize("action", ["coredump_and_destroy", "coredump_and_restart"])
def test_coredump_crash_action_of_an_hvm_guest_fails_at_boot_unconfirmed_text(
    action: str,
) -> None:
    d = driver()
    master, _ = _hosts(d)
    ref = d.new_vm(actions_after_crash=action)
    assert d.fails("VM.start_on", ref, master, False, False) == Failure(
        "VALUE_NOT_SUPPORTED",
        (
            "VM.actions_after_crash",
            action,
            "cannot invoke a coredump of an HVM, PVH or PV-in-PVH domain",
        ),
    )
    assert d.fails("VM.start", ref, False, False) == Failure("NO_HOSTS_AVAILABLE", ())


def test_coredump_crash_action_of_a_pv_guest_boots() -> None:
    d = driver()
    master, _ = _hosts(d)
    ref = d.new_vm(actions_after_crash="coredump_and_restart", HVM_boot_policy="")
    d.ok("VM.start_on", ref, master, False, False)
    assert d.field(ref, "power_state") == "Running"


# ---- recovery, blobs -------------------------------------------------------------------------


def test_get_SRs_required_for_recovery_of_a_diskless_vm_is_empty() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.ok("VM.get_SRs_required_for_recovery", ref, d.session) == ()


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("VM.get_SRs_required_for_recovery", ()),
        ("VM.assert_can_be_recovered", ()),
        ("VM.recover", (False,)),
    ],
)
def test_recovery_needs_a_live_session_to(method: str, extra: tuple[object, ...]) -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails(method, ref, "OpaqueRef:gone", *extra) == Failure(
        "SESSION_INVALID", ("OpaqueRef:gone",)
    )


@pytest.mark.unconfirmed
@pytest.mark.parametrize(
    ("method", "extra"), [("VM.assert_can_be_recovered", ()), ("VM.recover", (True,))]
)
def test_recovery_into_the_same_pool_is_a_no_op_unconfirmed(
    method: str, extra: tuple[object, ...]
) -> None:
    d = driver()
    ref = d.new_vm()
    before = d.ok("VM.get_record", ref)
    assert d.ok(method, ref, d.session, *extra) == ""
    assert d.ok("VM.get_record", ref) == before


def test_create_new_blob_files_a_fresh_ref_under_its_name() -> None:
    d = driver()
    ref = d.new_vm()
    first = d.ok("VM.create_new_blob", ref, "notes", "text/plain")
    second = d.ok("VM.create_new_blob", ref, "logo", "image/png", True)
    assert first != second
    assert str(first).startswith("OpaqueRef:")
    assert first not in d.world.vms
    assert d.field(ref, "blobs") == {"notes": first, "logo": second}


def test_create_new_blob_on_an_unknown_vm() -> None:
    d = driver()
    assert d.fails("VM.create_new_blob", "OpaqueRef:nope", "n", "t") == Failure(
        "HANDLE_INVALID", ("VM", "OpaqueRef:nope")
    )


# ---- BIOS strings (§10; ocaml/tests/test_vm.ml, §14) -----------------------------------------


def test_set_bios_strings_fills_in_the_host_defaults() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_bios_strings", ref, {"bios-vendor": "Test", "bios-version": "Test Inc. A08"})
    assert d.field(ref, "bios_strings") == {
        **GENERIC_BIOS_STRINGS,
        "bios-vendor": "Test",
        "bios-version": "Test Inc. A08",
    }


def test_set_bios_strings_accepts_exactly_512_characters() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_bios_strings", ref, {"enclosure-asset-tag": "x" * 512})
    assert d.field(ref, "bios_strings")["enclosure-asset-tag"] == "x" * 512


def test_set_bios_strings_refuses_more_than_512_characters() -> None:
    d = driver()
    ref = d.new_vm()
    big = "x" * 513
    assert d.fails("VM.set_bios_strings", ref, {"enclosure-asset-tag": big}) == Failure(
        "INVALID_VALUE", ("enclosure-asset-tag", f"{big} has length more than 512 characters")
    )
    assert d.field(ref, "bios_strings") == {}


def test_set_bios_strings_counts_the_length_in_bytes() -> None:
    d = driver()
    ref = d.new_vm()
    value = "é" * 300  # 300 characters, 600 UTF-8 bytes: OCaml's String.length is 600
    assert d.fails("VM.set_bios_strings", ref, {"bios-vendor": value}) == Failure(
        "INVALID_VALUE", ("bios-vendor", f"{value} has length more than 512 characters")
    )


@pytest.mark.parametrize("value", ["xyz\x1f", "xyz\x7f", "caf\u00e9"])
def test_set_bios_strings_refuses_non_printable_ascii(value: str) -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_bios_strings", ref, {"enclosure-asset-tag": value}) == Failure(
        "INVALID_VALUE", ("enclosure-asset-tag", f"{value} has non-printable ASCII characters")
    )


def test_set_bios_strings_accepts_the_printable_bounds() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_bios_strings", ref, {"system-version": " ~"})
    assert d.field(ref, "bios_strings")["system-version"] == " ~"


def test_copy_bios_strings_copies_the_hosts_strings() -> None:
    """xapi_vm_helpers.ml copy_bios_strings: the host's own ``bios_strings``, as its record
    shows them (a real host's differ from the generic strings a first start gives)."""
    d = driver()
    master, other = _hosts(d)
    own = {"bios-vendor": "Dell Inc.", "system-product-name": "PowerEdge R650"}
    hosts = {**d.world.hosts, other: replace(d.world.hosts[other], bios_strings=own)}
    d.world = replace(d.world, hosts=MappingProxyType(hosts))
    ref, second = d.new_vm(), d.new_vm()
    assert d.ok("VM.copy_bios_strings", ref, master) == ""
    assert d.field(ref, "bios_strings") == GENERIC_BIOS_STRINGS
    d.ok("VM.copy_bios_strings", second, other)
    assert d.field(second, "bios_strings") == own


def test_copy_bios_strings_only_once() -> None:
    d = driver()
    master, _ = _hosts(d)
    ref = d.new_vm()
    d.ok("VM.set_bios_strings", ref, {"bios-vendor": "ACME"})
    assert d.fails("VM.copy_bios_strings", ref, master) == Failure(
        "VM_BIOS_STRINGS_ALREADY_SET", ()
    )
    assert d.field(ref, "bios_strings")["bios-vendor"] == "ACME"


def test_copy_bios_strings_from_an_unknown_host() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.copy_bios_strings", ref, "OpaqueRef:nohost") == Failure(
        "HANDLE_INVALID", ("host", "OpaqueRef:nohost")
    )


def test_a_started_vm_has_its_bios_strings_already() -> None:
    """VM.start fills in the generic strings (consider_generic_bios_strings), so copying the
    host's fails as for any VM whose strings are set; copy_bios_strings has no power check."""
    d = driver()
    master, _ = _hosts(d)
    ref = d.in_state("Running")
    assert d.field(ref, "bios_strings") == GENERIC_BIOS_STRINGS
    assert d.fails("VM.copy_bios_strings", ref, master) == Failure("VM_BIOS_STRINGS_ALREADY_SET")


# ---- restart_device_models, WLB, import -------------------------------------------------------


def test_restart_device_models_of_a_running_vm_changes_nothing() -> None:
    d = driver()
    ref = d.in_state("Running")
    before = d.ok("VM.get_record", ref)
    assert d.ok("VM.restart_device_models", ref) == ""
    assert d.ok("VM.get_record", ref) == before


@pytest.mark.parametrize("state", ["Halted", "Paused", "Suspended"])
def test_restart_device_models_needs_a_running_vm(state: str) -> None:
    """xapi_vm.ml restart_device_models: the states as Record_util spells them (capitalised)."""
    d = driver()
    ref = d.in_state(state)
    assert d.fails("VM.restart_device_models", ref) == Failure(
        "VM_BAD_POWER_STATE", (ref, "Running", state)
    )


def test_retrieve_wlb_recommendations_without_wlb() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.retrieve_wlb_recommendations", ref) == Failure("WLB_NOT_INITIALIZED", ())
    assert d.fails("VM.retrieve_wlb_recommendations", "OpaqueRef:x") == Failure(
        "HANDLE_INVALID", ("VM", "OpaqueRef:x")
    )


def test_import_into_an_unknown_sr() -> None:
    d = driver()
    assert d.fails("VM.import", "http://example/vm.xva", "OpaqueRef:nosr", False, False) == Failure(
        "HANDLE_INVALID", ("SR", "OpaqueRef:nosr")
    )


@pytest.mark.unconfirmed
def test_import_from_a_url_the_model_cannot_fetch_unconfirmed_text() -> None:
    d = driver()
    sr = next(iter(d.world.srs))
    url = "http://example/vm.xva"
    assert d.fails("VM.import", url, sr, False, False) == Failure(
        "IMPORT_ERROR", (f"Could not fetch {url}",)
    )
    assert len(d.world.vms) == 2  # the two control domains, nothing imported


def test_import_convert_into_an_unknown_sr() -> None:
    d = driver()
    assert d.fails("VM.import_convert", "ovf", "u", "p", "OpaqueRef:nosr", {}) == Failure(
        "HANDLE_INVALID", ("SR", "OpaqueRef:nosr")
    )


@pytest.mark.unconfirmed
def test_import_convert_has_no_conversion_service_unconfirmed() -> None:
    d = driver()
    sr = next(iter(d.world.srs))
    assert d.fails("VM.import_convert", "ovf", "u", "p", sr, {}) == Failure(
        "XENAPI_MISSING_PLUGIN", ("conversion",)
    )


# ---- migrate_send, assert_can_migrate --------------------------------------------------------

DEST = {"master": "https://10.0.0.9/", "session_id": "OpaqueRef:remote"}


@pytest.mark.unconfirmed
@pytest.mark.parametrize("method", ["VM.migrate_send", "VM.assert_can_migrate"])
def test_cross_pool_migration_has_no_remote_pool_unconfirmed(method: str) -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.fails(method, ref, DEST, True, {}, {}, {}) == Failure(
        "VM_MIGRATE_FAILED", (ref, NULL_REF, NULL_REF, "remote pool")
    )
    assert d.field(ref, "power_state") == "Running"


@pytest.mark.unconfirmed
@pytest.mark.parametrize("dest", [{}, {"master": "https://10.0.0.9/"}, {"session_id": "x"}])
@pytest.mark.parametrize("method", ["VM.migrate_send", "VM.assert_can_migrate"])
def test_cross_pool_migration_with_an_incomplete_dest_unconfirmed_text(
    method: str, dest: dict[str, str]
) -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails(method, ref, dest, False, {}, {}, {}) == Failure(
        "INTERNAL_ERROR", ("Not_found",)
    )


@pytest.mark.parametrize("method", ["VM.migrate_send", "VM.assert_can_migrate"])
def test_cross_pool_migration_runs_the_migrate_send_check(method: str) -> None:
    d = driver()
    ref = d.in_state("Paused")
    assert d.fails(method, ref, DEST, True, {}, {}, {}) == Failure(
        "VM_BAD_POWER_STATE", (ref, "halted, suspended, running", "paused")
    )


# ---- pool_migrate (§2.2, §4.2, §4.3) ---------------------------------------------------------


def test_pool_migrate_moves_a_running_vm_to_the_host() -> None:
    d = driver()
    master, other = _hosts(d)
    ref = d.new_vm(affinity=master)
    d.ok("VM.start", ref, False, False)
    assert d.field(ref, "resident_on") == master
    assert d.ok("VM.pool_migrate", ref, other, {}) == ""
    assert d.field(ref, "resident_on") == other
    assert d.field(ref, "power_state") == "Running"
    assert ref in d.ok("host.get_resident_VMs", other)
    assert ref not in d.ok("host.get_resident_VMs", master)


def test_pool_migrate_to_the_host_it_runs_on_is_a_localhost_migration() -> None:
    d = driver()
    master, _ = _hosts(d)
    ref = d.new_vm(affinity=master)
    d.ok("VM.start", ref, False, False)
    before = d.ok("VM.get_record", ref)
    assert d.ok("VM.pool_migrate", ref, master, {}) == ""
    assert d.ok("VM.get_record", ref) == before


def test_a_localhost_migration_counts_the_vm_memory_twice() -> None:
    """message_forwarding.ml pool_migrate: reserve_memory_for_vm runs assert_can_boot_here on
    the VM's own host, where memory_check.ml counts the VM as resident and asks for its start
    memory again (only a scheduled VM is left out)."""
    d = driver()
    master, _ = _hosts(d)
    ref = _big_vm(d, master)
    d.ok("VM.start", ref, False, False)
    assert d.fails("VM.pool_migrate", ref, master, {}) == _no_room(d, ref, master)


def test_pool_migrate_to_an_unknown_host() -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.fails("VM.pool_migrate", ref, "OpaqueRef:nohost", {}) == Failure(
        "HANDLE_INVALID", ("host", "OpaqueRef:nohost")
    )


def test_an_unknown_host_is_read_after_the_power_state_check_where_nothing_reads_it_before() -> (
    None
):
    # message_forwarding.ml: pool_migrate's CPU check (cpuid_helpers.ml) reads the host only for
    # a VM that is not Halted, and resume_on reads it only once its op check passed.
    d = driver()
    halted, running, suspended = (d.in_state(s) for s in ("Halted", "Running", "Suspended"))
    assert d.fails("VM.pool_migrate", halted, "OpaqueRef:nohost", {}) == Failure(
        "VM_BAD_POWER_STATE", (halted, "running", "halted")
    )
    assert d.fails("VM.resume_on", running, "OpaqueRef:nohost", False, False) == Failure(
        "VM_BAD_POWER_STATE", (running, "suspended", "running")
    )
    assert d.fails("VM.resume_on", suspended, "OpaqueRef:nohost", False, False) == Failure(
        "HANDLE_INVALID", ("host", "OpaqueRef:nohost")
    )


@pytest.mark.parametrize(("state", "actual"), [("Halted", "halted"), ("Suspended", "suspended")])
def test_pool_migrate_needs_a_running_vm(state: str, actual: str) -> None:
    d = driver()
    _, other = _hosts(d)
    ref = d.in_state(state)
    assert d.fails("VM.pool_migrate", ref, other, {}) == Failure(
        "VM_BAD_POWER_STATE", (ref, "running", actual)
    )


def test_pool_migrate_to_a_host_without_room_reports_bytes() -> None:
    """memory_check.ml: the VM needs its dynamic_min plus its overhead; the host has its total
    less each resident VM's (its dom0's included) dynamic_min plus overhead."""
    d = driver()
    master, other = _hosts(d)
    moving = _big_vm(d, master)
    d.ok("VM.start", moving, False, False)
    d.ok("VM.start", _big_vm(d, other), False, False)
    assert d.fails("VM.pool_migrate", moving, other, {}) == _no_room(d, moving, other)
    assert d.field(moving, "resident_on") == master


def test_pool_migrate_of_an_immobile_vm_is_refused_unless_forced() -> None:
    d = driver()
    master, other = _hosts(d)
    ref = d.new_vm(affinity=master, platform={"nomigrate": "true"})
    d.ok("VM.start", ref, False, False)
    assert d.fails("VM.pool_migrate", ref, other, {}) == Failure("VM_IS_IMMOBILE", (ref,))
    assert d.fails("VM.pool_migrate", ref, other, {"force": "false"}) == Failure(
        "VM_IS_IMMOBILE", (ref,)
    )
    d.ok("VM.pool_migrate", ref, other, {"force": "true"})
    assert d.field(ref, "resident_on") == other


def test_pool_migrate_force_also_skips_the_guest_feature_check() -> None:
    d = driver(facts=Facts(guest_has_pv_drivers=False))
    master, other = _hosts(d)
    ref = d.new_vm(affinity=master)  # an HVM guest without PV drivers
    d.ok("VM.start", ref, False, False)
    assert d.fails("VM.pool_migrate", ref, other, {}) == Failure("VM_LACKS_FEATURE", (ref,))
    d.ok("VM.pool_migrate", ref, other, {"force": "true"})
    assert d.field(ref, "resident_on") == other


def test_pool_migrate_force_keeps_the_power_state_check() -> None:
    d = driver()
    _, other = _hosts(d)
    ref = d.new_vm()
    assert d.fails("VM.pool_migrate", ref, other, {"force": "true"}) == Failure(
        "VM_BAD_POWER_STATE", (ref, "running", "halted")
    )


# ---- start_on pre-checks, resume placement, power_state_reset (§4.2, §4.4, §5.4) -------------


def test_start_on_refuses_a_control_domain_away_from_its_affinity_before_the_op_check() -> None:
    d = driver()
    master, other = _hosts(d)
    dom0 = d.world.hosts[master].control_domain
    assert d.fails("VM.start_on", dom0, other, False, False) == Failure(
        "OPERATION_NOT_ALLOWED",
        ("Cannot boot a control domain on a host different from its affinity",),
    )


def test_start_on_a_control_domain_at_its_affinity_reaches_the_op_check() -> None:
    d = driver()
    master, _ = _hosts(d)
    dom0 = d.world.hosts[master].control_domain
    assert d.fails("VM.start_on", dom0, master, False, False) == Failure(
        "VM_BAD_POWER_STATE", (dom0, "halted", "running")
    )


def test_resume_with_no_host_that_can_take_the_vm() -> None:
    d = driver()
    master, other = _hosts(d)
    ref = _big_vm(d, master)
    d.ok("VM.start", ref, False, False)
    d.ok("VM.suspend", ref)
    d.ok("VM.start", _big_vm(d, master), False, False)
    d.ok("VM.start", _big_vm(d, other), False, False)
    assert d.fails("VM.resume", ref, False, False) == Failure("NO_HOSTS_AVAILABLE", ())
    assert d.field(ref, "power_state") == "Suspended"
    assert d.fails("VM.resume_on", ref, master, False, False) == _no_room(d, ref, master)


def test_resume_places_the_vm_on_a_host_with_room() -> None:
    d = driver()
    master, other = _hosts(d)
    ref = _big_vm(d, master)
    d.ok("VM.start", ref, False, False)
    d.ok("VM.suspend", ref)
    d.ok("VM.start", _big_vm(d, master), False, False)
    d.ok("VM.resume", ref, True, False)
    assert d.field(ref, "power_state") == "Paused"
    assert d.field(ref, "resident_on") == other


def test_power_state_reset_of_a_paused_vm_on_the_master_halts_it() -> None:
    d = driver()
    master, _ = _hosts(d)
    ref = d.new_vm(affinity=master)
    d.ok("VM.start", ref, True, False)
    assert d.field(ref, "resident_on") == master
    assert d.ok("VM.power_state_reset", ref) == ""
    assert d.field(ref, "power_state") == "Halted"
    assert d.field(ref, "resident_on") == NULL_REF
    assert d.field(ref, "domid") == -1


def test_the_guest_feature_check_reads_the_domain_type_of_the_last_boot() -> None:
    # xapi_vm_lifecycle.ml has_definitely_booted_pv reads VM_metrics.current_domain_type, which
    # xenopsd reports at boot: a live VM.set_domain_type does not change it.
    d = driver(facts=Facts(guest_has_pv_drivers=False))
    hvm = d.new_vm()  # HVM_boot_policy set: an HVM guest, here without PV drivers
    d.ok("VM.start", hvm, False, False)
    d.ok("VM.set_domain_type", hvm, "pv")
    assert d.fails("VM.clean_shutdown", hvm) == Failure("VM_LACKS_FEATURE", (hvm,))
    pv = d.new_vm(HVM_boot_policy="")
    d.ok("VM.start", pv, False, False)
    d.ok("VM.set_domain_type", pv, "hvm")
    d.ok("VM.clean_shutdown", pv)
