"""Transitions and record rules of the model (semantics §1, §5, §9)."""

from __future__ import annotations

import pytest

from models import catalogue
from models.outcome import Failure, Success
from models.world import Facts
from tests.models.helpers import GIB, MIB, driver, vm_args

# (call, extra args, from state, to state) — semantics §1.
TRANSITIONS = [
    ("VM.start", (False, False), "Halted", "Running"),
    ("VM.start", (True, False), "Halted", "Paused"),
    ("VM.clean_shutdown", (), "Running", "Halted"),
    ("VM.hard_shutdown", (), "Running", "Halted"),
    ("VM.hard_shutdown", (), "Paused", "Halted"),
    ("VM.hard_shutdown", (), "Suspended", "Halted"),
    ("VM.shutdown", (), "Running", "Halted"),
    ("VM.shutdown", (), "Paused", "Halted"),
    ("VM.shutdown", (), "Suspended", "Halted"),
    ("VM.clean_reboot", (), "Running", "Running"),
    ("VM.hard_reboot", (), "Running", "Running"),
    ("VM.pause", (), "Running", "Paused"),
    ("VM.unpause", (), "Paused", "Running"),
    ("VM.suspend", (), "Running", "Suspended"),
    ("VM.resume", (False, False), "Suspended", "Running"),
    ("VM.resume", (True, False), "Suspended", "Paused"),
    ("VM.power_state_reset", (), "Halted", "Halted"),
    ("VM.power_state_reset", (), "Suspended", "Halted"),
]


@pytest.mark.parametrize(("method", "extra", "before", "after"), TRANSITIONS)
def test_transition(method: str, extra: tuple[object, ...], before: str, after: str) -> None:
    d = driver()
    ref = d.in_state(before)
    d.ok(method, ref, *extra)
    assert d.field(ref, "power_state") == after


@pytest.mark.unconfirmed
def test_hard_reboot_from_paused_ends_running_unconfirmed() -> None:
    d = driver()
    ref = d.in_state("Paused")
    d.ok("VM.hard_reboot", ref)
    assert d.field(ref, "power_state") == "Running"


def test_start_on_and_resume_on_land_on_the_named_host() -> None:
    d = driver()
    hosts = d.ok("host.get_all")
    ref = d.new_vm()
    d.ok("VM.start_on", ref, hosts[1], False, False)
    assert d.field(ref, "resident_on") == hosts[1]
    d.ok("VM.suspend", ref)
    assert d.field(ref, "resident_on") == "OpaqueRef:NULL"
    d.ok("VM.resume_on", ref, hosts[0], False, False)
    assert d.field(ref, "resident_on") == hosts[0]


def test_start_on_unknown_host_is_handle_invalid() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.start_on", ref, "OpaqueRef:NULL", False, False) == Failure(
        "HANDLE_INVALID", ("host", "OpaqueRef:NULL")
    )


def test_halting_clears_domain_and_host() -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.field(ref, "domid") > 0
    d.ok("VM.hard_shutdown", ref)
    assert d.field(ref, "domid") == -1
    assert d.field(ref, "resident_on") == "OpaqueRef:NULL"


def test_hard_shutdown_from_suspended_drops_the_suspend_image() -> None:
    d = driver()
    ref = d.in_state("Suspended")
    assert d.field(ref, "suspend_VDI") != "OpaqueRef:NULL"
    d.ok("VM.hard_shutdown", ref)
    assert d.field(ref, "suspend_VDI") == "OpaqueRef:NULL"


def test_reboot_gives_a_new_domid() -> None:
    d = driver()
    ref = d.in_state("Running")
    before = d.field(ref, "domid")
    d.ok("VM.clean_reboot", ref)
    assert d.field(ref, "domid") != before


def test_clean_shutdown_without_pv_drivers_lacks_feature() -> None:
    d = driver(facts=Facts(guest_has_pv_drivers=False))
    ref = d.in_state("Running")
    assert d.fails("VM.clean_shutdown", ref) == Failure("VM_LACKS_FEATURE", (ref,))
    d.ok("VM.shutdown", ref)  # falls back to a hard shutdown


def test_unknown_guest_drivers_offer_both_branches() -> None:
    d = driver(facts=Facts(guest_has_pv_drivers=None))
    ref = d.new_vm()
    d.world = d.branches("VM.start", d.session, ref, False, False)[0].world
    outcomes = {b.outcome for b in d.branches("VM.clean_shutdown", d.session, ref)}
    assert outcomes == {Success(""), Failure("VM_LACKS_FEATURE", (ref,))}


def test_unknown_host_memory_offers_no_hosts_available() -> None:
    d = driver(facts=Facts(host_memory_sufficient=None))
    ref = d.new_vm()
    outcomes = {b.outcome for b in d.branches("VM.start", d.session, ref, False, False)}
    assert outcomes == {Success(""), Failure("NO_HOSTS_AVAILABLE", ())}


# ---- start: host placement swallows every boot error (§4.4) --------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"VCPUs_max": "0", "VCPUs_at_startup": "0"},
        {"VCPUs_at_startup": "4"},
        {"memory_static_max": "1", "memory_static_min": str(GIB)},
        {"actions_after_crash": "rename_restart"},
        {
            "memory_static_max": str(1024 * GIB),
            "memory_dynamic_min": str(1024 * GIB),
            "memory_dynamic_max": str(1024 * GIB),
        },
    ],
)
def test_start_swallows_boot_errors(overrides: dict[str, object]) -> None:
    d = driver()
    ref = d.new_vm(**overrides)
    assert d.fails("VM.start", ref, False, False) == Failure("NO_HOSTS_AVAILABLE", ())


@pytest.mark.parametrize(
    ("overrides", "code", "params"),
    [
        ({"VCPUs_max": "0", "VCPUs_at_startup": "0"}, "INVALID_VALUE", ("VCPUs_max", "0")),
        ({"VCPUs_at_startup": "0"}, "INVALID_VALUE", ("VCPUs-at-startup", "0")),
        (
            {"VCPUs_at_startup": "4"},
            "VALUE_NOT_SUPPORTED",
            ("VCPUs-at-startup", "4", "value greater than VCPUs-max"),
        ),
        (
            {"memory_static_max": "1", "memory_static_min": str(GIB)},
            "MEMORY_CONSTRAINT_VIOLATION",
            (),
        ),
        ({"HVM_shadow_multiplier": 0.5}, "INVALID_VALUE", ("HVM_shadow_multiplier", "0.5")),
    ],
)
def test_start_on_propagates_boot_errors(
    overrides: dict[str, object], code: str, params: tuple[str, ...]
) -> None:
    d = driver()
    ref = d.new_vm(**overrides)
    host = d.ok("host.get_all")[0]
    assert d.fails("VM.start_on", ref, host, False, False) == Failure(code, params)


def test_start_on_reports_free_memory_in_bytes() -> None:
    d = driver()
    big = str(100 * GIB)
    ref = d.new_vm(memory_static_max=big, memory_dynamic_max=big, memory_dynamic_min=big)
    host = d.ok("host.get_all")[0]
    failure = d.fails("VM.start_on", ref, host, False, False)
    assert failure.code == "HOST_NOT_ENOUGH_FREE_MEMORY"
    assert failure.params[0] == str(100 * GIB + int(d.field(ref, "memory_overhead")))


def test_start_of_nested_virt_vm_needs_memory_pinned_unless_forced() -> None:
    d = driver()
    ref = d.new_vm(platform={"nested-virt": "true"})
    failure = d.fails("VM.start", ref, False, False)
    assert failure == Failure("MEMORY_CONSTRAINT_VIOLATION_MAXPIN", ("nested virt",))
    d.ok("VM.start", ref, False, True)


# ---- create (§9.1) -------------------------------------------------------------------------


@pytest.mark.parametrize("name", catalogue.required_create_fields())
@pytest.mark.unconfirmed
def test_create_requires_each_field_unconfirmed_text(name: str) -> None:
    d = driver()
    args = vm_args()
    del args[name]
    assert d.fails("VM.create", args) == Failure(
        "INTERNAL_ERROR", (f'Server_helpers.Dispatcher_FieldNotFound("{name}")',)
    )


def test_create_fills_defaults_and_runtime_fields() -> None:
    d = driver()
    ref = d.new_vm(blocked_operations={"start": "x"}, name_label="n")
    record = d.ok("VM.get_record", ref)
    assert record["blocked_operations"] == {}
    assert record["power_state"] == "Halted"
    assert record["domid"] == -1
    assert record["is_a_snapshot"] is False
    assert record["has_vendor_device"] is True
    assert record["hardware_platform_version"] >= 2
    assert record["domain_type"] == "hvm"
    assert "mac_seed" in record["other_config"]
    assert record["metrics"] != "OpaqueRef:NULL"
    assert record["HVM_shadow_multiplier"] == 1.0
    assert record["generation_id"] == "0:0"
    # the catalogue's fields and one newer than its reference (xapi 26.14)
    assert set(record) == {*catalogue.FIELDS, "secureboot_certificates_state"}
    assert record["secureboot_certificates_state"] == "ok"


def test_create_derives_pv_domain_type_from_empty_boot_policy() -> None:
    d = driver()
    assert d.field(d.new_vm(HVM_boot_policy=""), "domain_type") == "pv"


def test_create_keeps_a_given_mac_seed() -> None:
    d = driver()
    ref = d.new_vm(other_config={"mac_seed": "mine"})
    assert d.field(ref, "other_config")["mac_seed"] == "mine"


def test_create_does_not_validate_memory() -> None:
    d = driver()
    ref = d.new_vm(memory_static_min=str(4 * GIB))
    assert d.field(ref, "memory_static_min") == 4 * GIB


def test_create_suspended_without_data_fails_with_the_new_ref() -> None:
    d = driver()
    failure = d.fails("VM.create", vm_args(power_state="Suspended"))
    assert failure.code == "VM_BAD_POWER_STATE"
    assert failure.params[1:] == ("halted", "suspended")
    assert failure.params[0] not in d.ok("VM.get_all")


def test_create_ignores_other_power_states() -> None:
    d = driver()
    assert d.field(d.new_vm(power_state="Running"), "power_state") == "Halted"


def test_create_suspended_with_data_is_suspended() -> None:
    d = driver()
    ref = d.new_vm(
        power_state="Suspended",
        last_boot_CPU_flags={"vendor": "x"},
        last_booted_record="r",
        suspend_VDI="OpaqueRef:vdi",
    )
    assert d.field(ref, "power_state") == "Suspended"


# ---- destroy (§9.2) ------------------------------------------------------------------------


def test_destroy_suspended_vm_is_allowed() -> None:
    d = driver()
    ref = d.in_state("Suspended")
    d.ok("VM.destroy", ref)
    assert ref not in d.ok("VM.get_all")


def test_destroy_non_template_marked_default_template() -> None:
    d = driver()
    ref = d.new_vm(other_config={"default_template": "true"})
    assert d.fails("VM.destroy", ref) == Failure("VM_CANNOT_DELETE_DEFAULT_TEMPLATE", ())


def test_destroy_reparents_children() -> None:
    d = driver()
    ref = d.new_vm()
    first = d.ok("VM.snapshot", ref, "one")
    second = d.ok("VM.snapshot", ref, "two")
    assert d.field(second, "parent") == first
    d.ok("VM.destroy", first)
    assert d.field(second, "parent") == "OpaqueRef:NULL"


# ---- clone, copy, snapshot, checkpoint, revert (§9.3, §5.3) ------------------------------------


def test_clone_record_rules() -> None:
    d = driver()
    ref = d.new_vm(other_config={"default_template": "true", "keep": "1"})
    d.ok("VM.add_to_blocked_operations", ref, "start", "x")
    d.ok("VM.set_start_delay", ref, "5")
    clone = d.ok("VM.clone", ref, "the clone")
    record = d.ok("VM.get_record", clone)
    assert record["name_label"] == "the clone"
    assert record["blocked_operations"] == {}
    assert record["start_delay"] == 0
    assert "default_template" not in record["other_config"]
    assert record["other_config"]["keep"] == "1"
    assert record["other_config"]["mac_seed"] != d.field(ref, "other_config")["mac_seed"]
    assert record["is_a_template"] is False
    assert record["memory_static_max"] == GIB


def test_clone_of_template_is_a_template_with_base_name() -> None:
    d = driver()
    ref = d.new_vm(is_a_template=True, name_label="base")
    clone = d.ok("VM.clone", ref, "c")
    assert d.field(clone, "is_a_template") is True
    assert d.field(clone, "other_config")["base_template_name"] == "base"


def test_copy_to_an_sr_that_does_not_exist_copies_within_the_disks_own_srs() -> None:
    # xapi_vm.ml copy: "It's not an error to not exist at all" (datamodel_vm.ml: an invalid
    # reference uses the existing SRs)
    d = driver()
    ref = d.new_vm()
    for sr in ("OpaqueRef:NULL-sr", "OpaqueRef:NULL"):
        copy = d.ok("VM.copy", ref, "c", sr)
        assert d.field(copy, "name_label") == "c"


def test_snapshot_record_rules() -> None:
    d = driver()
    ref = d.in_state("Running")
    snap = d.ok("VM.snapshot", ref, "s")
    record = d.ok("VM.get_record", snap)
    assert record["is_a_snapshot"] is True
    assert record["is_a_template"] is True
    assert record["snapshot_of"] == ref
    assert record["power_state"] == "Halted"
    assert d.field(ref, "snapshots") == (snap,)
    assert d.field(ref, "parent") == snap
    assert d.field(ref, "power_state") == "Running"


@pytest.mark.parametrize(
    ("source", "expected"),
    [("Running", "Suspended"), ("Paused", "Halted"), ("Suspended", "Suspended")],
)
def test_checkpoint_power_state(source: str, expected: str) -> None:
    d = driver()
    ref = d.in_state(source)
    snap = d.ok("VM.checkpoint", ref, "cp")
    assert d.field(snap, "power_state") == expected
    assert d.field(ref, "power_state") == source


def test_clone_of_a_checkpoint_is_halted() -> None:
    d = driver()
    snap = d.ok("VM.checkpoint", d.in_state("Running"), "cp")
    assert d.field(d.ok("VM.clone", snap, "c"), "power_state") == "Halted"


def test_clone_of_suspended_vm_when_allowed_stays_suspended() -> None:
    d = driver(facts=Facts(clone_suspended_allowed=True))
    ref = d.in_state("Suspended")
    assert d.field(d.ok("VM.clone", ref, "c"), "power_state") == "Suspended"


@pytest.mark.unconfirmed
def test_revert_of_a_non_snapshot_fails_before_checks_unconfirmed() -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.fails("VM.revert", ref) == Failure("VM_REVERT_FAILED", (ref, "OpaqueRef:NULL"))


def test_revert_takes_the_snapshots_state_and_config() -> None:
    d = driver()
    ref = d.in_state("Running")
    checkpoint = d.ok("VM.checkpoint", ref, "cp")
    d.ok("VM.hard_shutdown", ref)
    d.ok("VM.set_memory_limits", ref, str(MIB), str(GIB), str(GIB), str(GIB))
    d.ok("VM.revert", checkpoint)
    assert d.field(ref, "power_state") == "Suspended"
    assert d.field(ref, "memory_static_min") == 256 * MIB


def test_revert_honours_blocked_reverting_on_the_target() -> None:
    d = driver()
    ref = d.new_vm()
    snap = d.ok("VM.snapshot", ref, "s")
    d.ok("VM.add_to_blocked_operations", ref, "reverting", "no")
    assert d.fails("VM.revert", snap) == Failure("OPERATION_BLOCKED", (ref, "no"))


# ---- power_state_reset (§5.4), set_is_a_template (§5.5) -----------------------------------------


def test_power_state_reset_refuses_control_domains() -> None:
    d = driver()
    dom0 = next(r for r in d.ok("VM.get_all") if d.field(r, "is_control_domain"))
    assert d.fails("VM.power_state_reset", dom0) == Failure("CANNOT_RESET_CONTROL_DOMAIN", (dom0,))


def test_power_state_reset_of_a_running_domain() -> None:
    d = driver()
    hosts = d.ok("host.get_all")
    master = d.ok("pool.get_master", d.ok("pool.get_all")[0])
    other = next(h for h in hosts if h != master)
    here = d.new_vm()
    d.ok("VM.start_on", here, master, False, False)
    assert d.fails("VM.power_state_reset", here) == Failure("DOMAIN_EXISTS", (here,))
    there = d.new_vm()
    d.ok("VM.start_on", there, other, False, False)
    assert d.fails("VM.power_state_reset", there) == Failure("HOST_IS_LIVE", (other,))


def test_power_state_reset_ignores_blocked_operations() -> None:
    d = driver()
    ref = d.in_state("Suspended")
    d.ok("VM.add_to_blocked_operations", ref, "power_state_reset", "no")
    d.ok("VM.power_state_reset", ref)
    assert d.field(ref, "power_state") == "Halted"


def test_make_into_template_clears_metrics() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_is_a_template", ref, True)
    assert d.field(ref, "metrics") == "OpaqueRef:NULL"
    assert "start" not in d.field(ref, "allowed_operations")
    assert d.fails("VM.set_is_a_template", ref, True) == Failure(
        "VM_IS_TEMPLATE", (ref, "make_into_template")
    )


@pytest.mark.unconfirmed
def test_set_is_a_template_false_leaves_allowed_operations_stale_unconfirmed() -> None:
    d = driver()
    ref = d.new_vm(is_a_template=True)
    d.ok("VM.set_is_a_template", ref, False)
    assert "start" not in d.field(ref, "allowed_operations")
    d.ok("VM.update_allowed_operations", ref)
    assert "start" in d.field(ref, "allowed_operations")


def test_start_on_refuses_rename_restart_with_xapis_text() -> None:
    d = driver()
    ref = d.new_vm(actions_after_crash="rename_restart")
    host = d.ok("host.get_all")[0]
    assert d.fails("VM.start_on", ref, host, False, False) == Failure(
        "VALUE_NOT_SUPPORTED",
        (
            "VM.actions_after_crash",
            "rename_restart",
            "option would leak a domain; VMs and not domains are managed by this API",
        ),
    )
