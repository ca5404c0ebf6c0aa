"""Setters, maps, sets, getters and queries of the model (semantics §6, §8.1, §10)."""

from __future__ import annotations

import pytest

from models import catalogue
from models.catalogue import MessageKind, kind_of
from models.outcome import Failure, Success
from models.schema import Message, XType
from models.world import NULL_REF
from tests.models.helpers import GIB, MIB, Driver, driver

# ---- memory, DMC on and off (§6) -------------------------------------------------------------


def test_dynamic_range_order_violation_with_dmc() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_memory_dynamic_range", ref, str(GIB), str(512 * MIB)) == Failure(
        "MEMORY_CONSTRAINT_VIOLATION_ORDER", ()
    )
    d.ok("VM.set_memory_dynamic_range", ref, str(300 * MIB), str(900 * MIB))
    assert d.field(ref, "memory_target") == 300 * MIB
    assert d.field(ref, "memory_dynamic_max") == 900 * MIB


def test_dynamic_range_without_dmc_must_pin_at_static_max() -> None:
    d = driver(dmc=False)
    ref = d.new_vm()
    assert d.fails("VM.set_memory_dynamic_range", ref, str(300 * MIB), str(900 * MIB)) == Failure(
        "MEMORY_CONSTRAINT_VIOLATION_MAXPIN", ("DMC disabled",)
    )
    d.ok("VM.set_memory_dynamic_range", ref, str(GIB), str(GIB))


def test_set_memory_is_the_practical_setter_without_dmc() -> None:
    d = driver(dmc=False)
    ref = d.new_vm()
    d.ok("VM.set_memory", ref, str(2 * GIB))
    record = d.ok("VM.get_record", ref)
    assert [
        record[f"memory_{n}"]
        for n in ("static_min", "dynamic_min", "target", "dynamic_max", "static_max")
    ] == [256 * MIB, 2 * GIB, 2 * GIB, 2 * GIB, 2 * GIB]


@pytest.mark.parametrize(
    ("method", "value", "field"),
    [
        ("VM.set_memory_dynamic_min", 600 * MIB, "memory_dynamic_min"),
        ("VM.set_memory_dynamic_max", 700 * MIB, "memory_dynamic_max"),
        ("VM.set_memory_static_min", 100 * MIB, "memory_static_min"),
        ("VM.set_memory_static_max", 2 * GIB, "memory_static_max"),
    ],
)
def test_single_bound_setters(method: str, value: int, field: str) -> None:
    d = driver()
    ref = d.new_vm()
    d.ok(method, ref, str(value))
    assert d.field(ref, field) == value


def test_static_range_checks_against_current_dynamic_values() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_memory_static_range", ref, str(600 * MIB), str(GIB)) == Failure(
        "MEMORY_CONSTRAINT_VIOLATION_ORDER", ()
    )


def test_memory_setters_on_a_running_vm() -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.fails("VM.set_memory_static_max", ref, str(GIB)) == Failure(
        "VM_BAD_POWER_STATE", (ref, "halted", "running")
    )
    d.ok("VM.set_memory_dynamic_range", ref, str(600 * MIB), str(GIB))
    assert d.fails("VM.set_memory_dynamic_range", ref, str(63 * GIB), str(63 * GIB)).code in (
        "HOST_NOT_ENOUGH_FREE_MEMORY",
    )


def test_blocked_setter_never_reaches_the_constraint_check() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.add_to_blocked_operations", ref, "changing_static_range", "no")
    assert d.fails("VM.set_memory_static_max", ref, "1") == Failure(
        "OPERATION_BLOCKED", (ref, "no")
    )


def test_shadow_multiplier_validation() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_HVM_shadow_multiplier", ref, 0.5) == Failure(
        "INVALID_VALUE", ("multiplier", "0.5")
    )
    d.ok("VM.set_HVM_shadow_multiplier", ref, 2.0)
    assert d.field(ref, "HVM_shadow_multiplier") == 2.0
    running = d.in_state("Running")
    assert d.fails("VM.set_shadow_multiplier_live", running, 0.25).params == ("multiplier", "0.25")
    d.ok("VM.set_shadow_multiplier_live", running, 1.0)


def test_memory_target_live_is_a_no_op_on_running_vms() -> None:
    d = driver()
    ref = d.in_state("Running")
    before = d.ok("VM.get_record", ref)
    d.ok("VM.set_memory_target_live", ref, "1")
    d.ok("VM.wait_memory_target_live", ref)
    assert d.ok("VM.get_record", ref) == before


# ---- VCPUs (§6.3) --------------------------------------------------------------------------

VCPU_RULE = "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max"


def test_vcpus_max_must_cover_at_startup() -> None:
    d = driver()
    ref = d.new_vm(VCPUs_max="4", VCPUs_at_startup="3")
    assert d.fails("VM.set_VCPUs_max", ref, "2") == Failure("INVALID_VALUE", (VCPU_RULE, "2"))
    assert d.fails("VM.set_VCPUs_max", ref, "0") == Failure("INVALID_VALUE", (VCPU_RULE, "0"))
    d.ok("VM.set_VCPUs_max", ref, "8")


def test_vcpus_at_startup_has_no_state_or_blocked_check() -> None:
    d = driver()
    ref = d.in_state("Running")
    d.ok("VM.add_to_blocked_operations", ref, "changing_VCPUs", "no")
    d.ok("VM.set_VCPUs_at_startup", ref, "2")
    assert d.fails("VM.set_VCPUs_at_startup", ref, "3") == Failure(
        "INVALID_VALUE", (VCPU_RULE, "3")
    )


def test_vcpus_on_dom0() -> None:
    d = driver()
    dom0 = next(r for r in d.ok("VM.get_all") if d.field(r, "is_control_domain"))
    assert d.fails("VM.set_VCPUs_at_startup", dom0, "1") == Failure(
        "OPERATION_NOT_ALLOWED", ("set_VCPUs_at_startup is not allowed on dom0",)
    )
    assert d.fails("VM.set_VCPUs_max", dom0, "2") == Failure(
        "OPERATION_NOT_ALLOWED", ("This operation is not allowed on dom0",)
    )


def test_vcpus_number_live_sets_at_startup() -> None:
    d = driver()
    ref = d.in_state("Running")
    d.ok("VM.set_VCPUs_number_live", ref, "2")
    assert d.field(ref, "VCPUs_at_startup") == 2
    assert d.field(ref, "VCPUs_max") == 2
    assert d.fails("VM.set_VCPUs_number_live", ref, "3") == Failure(
        "INVALID_VALUE", ("VCPU values must satisfy: 0 < VCPUs ≤ VCPUs_max", "2")
    )  # xenopsd's Invalid_vcpus carries the maximum, not the number asked for


def test_add_to_vcpus_params_live_is_not_implemented() -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.fails("VM.add_to_VCPUs_params_live", ref, "k", "v") == Failure(
        "NOT_IMPLEMENTED", ("add_to_VCPUs_params_live",)
    )


# ---- other validated setters (§10) -------------------------------------------------------------


def test_ha_restart_priority() -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.fails("VM.set_ha_restart_priority", ref, "always") == Failure(
        "INVALID_VALUE", ("ha_restart_priority", "always")
    )
    d.ok("VM.set_ha_restart_priority", ref, "restart")
    assert d.field(ref, "ha_always_run") is True
    d.ok("VM.set_ha_always_run", ref, False)
    assert d.field(ref, "ha_restart_priority") == ""


def test_ha_restart_priority_unchanged_leaves_ha_always_run_as_it_is() -> None:
    # xapi_vm.ml set_ha_restart_priority writes (and turns protection on or off) only when the
    # priority changes: a running VM created with ha_always_run keeps it on the same priority.
    d = driver()
    ref = d.new_vm(ha_always_run=True)
    d.ok("VM.start", ref, False, False)
    d.ok("VM.set_ha_restart_priority", ref, "")
    assert d.field(ref, "ha_always_run") is True
    d.ok("VM.set_ha_always_run", ref, False)
    assert d.field(ref, "ha_always_run") is True


def test_domain_type_and_boot_policy_follow_each_other() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_domain_type", ref, "unspecified") == Failure(
        "INVALID_VALUE", ("domain_type", "unspecified")
    )
    d.ok("VM.set_domain_type", ref, "pv")
    assert d.field(ref, "HVM_boot_policy") == ""
    d.ok("VM.set_HVM_boot_policy", ref, "BIOS order")
    assert d.field(ref, "domain_type") == "hvm"


def test_has_vendor_device_is_halted_only() -> None:
    d = driver()
    ref = d.in_state("Running")
    assert d.fails("VM.set_has_vendor_device", ref, False) == Failure(
        "VM_BAD_POWER_STATE", (ref, "halted", "running")
    )


def test_suspend_vdi_is_suspended_only() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_suspend_VDI", ref, NULL_REF) == Failure(
        "VM_BAD_POWER_STATE", (ref, "suspended", "halted")
    )


def test_query_data_source_uses_semicolon_joined_states() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.query_data_source", ref, "cpu0") == Failure(
        "VM_BAD_POWER_STATE", (ref, "running;paused", "halted")
    )


def test_bios_strings_validation_and_once_only() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_bios_strings", ref, {"nope": "x"}) == Failure(
        "INVALID_VALUE", ("nope", "Unknown key")
    )
    assert d.fails("VM.set_bios_strings", ref, {"bios-vendor": ""}) == Failure(
        "INVALID_VALUE", ("bios-vendor", "Value provided is empty")
    )
    d.ok("VM.set_bios_strings", ref, {"bios-vendor": "ACME"})
    assert (
        d.fails("VM.set_bios_strings", ref, {"bios-vendor": "ACME"}).code
        == "VM_BIOS_STRINGS_ALREADY_SET"
    )


def test_query_services_needs_a_system_domain() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.query_services", ref) == Failure("NOT_SYSTEM_DOMAIN", (ref,))


# ---- maps and sets (§8.1, §10) -------------------------------------------------------------------


def test_map_add_of_an_existing_key_fails_even_with_the_same_value() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.add_to_other_config", ref, "k", "v")
    assert d.fails("VM.add_to_other_config", ref, "k", "v") == Failure(
        "MAP_DUPLICATE_KEY", ("VM", "other_config", ref, "k")
    )
    d.ok("VM.remove_from_other_config", ref, "k")
    d.ok("VM.remove_from_other_config", ref, "k")
    assert "k" not in d.field(ref, "other_config")


def test_blocked_operations_edits_recompute_allowed_operations() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.add_to_blocked_operations", ref, "start", "true")
    assert "start" not in d.field(ref, "allowed_operations")
    assert d.fails("VM.add_to_blocked_operations", ref, "start", "x") == Failure(
        "MAP_DUPLICATE_KEY", ("VM", "blocked_operations", ref, "start")
    )
    d.ok("VM.set_blocked_operations", ref, {})
    assert "start" in d.field(ref, "allowed_operations")


def test_tags_are_a_set() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.add_tags", ref, "a")
    d.ok("VM.add_tags", ref, "a")
    d.ok("VM.add_tags", ref, "b")
    assert d.field(ref, "tags") == ("a", "b")
    d.ok("VM.remove_tags", ref, "a")
    d.ok("VM.remove_tags", ref, "zzz")
    assert d.field(ref, "tags") == ("b",)


# ---- getters and queries for every field --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(catalogue.FIELDS))
def test_every_field_has_a_getter_agreeing_with_get_record(name: str) -> None:
    d = driver()
    ref = d.new_vm()
    message = catalogue.MESSAGES.get(f"get_{name}")
    if message is None or message.removed:
        pytest.skip(f"the reference has no live get_{name}")
    assert d.field(ref, name) == d.ok("VM.get_record", ref)[name]


def test_get_all_records_and_lookups() -> None:
    d = driver()
    ref = d.new_vm(name_label="findme")
    records = d.ok("VM.get_all_records")
    assert records[ref] == d.ok("VM.get_record", ref)
    assert d.ok("VM.get_by_name_label", "findme") == (ref,)
    assert d.ok("VM.get_by_name_label", "nobody") == ()
    assert d.ok("VM.get_by_uuid", records[ref]["uuid"]) == ref
    assert d.fails("VM.get_by_uuid", "nope") == Failure("UUID_INVALID", ("VM", "nope"))


def test_a_pools_records_read_at_once_are_each_records_own() -> None:
    """get_all_records works out the snapshots and children of every VM in one pass: each
    record, key order included, is the one get_record reads (relations in the pool's order)."""
    d = driver()
    parent = d.new_vm(name_label="parent")
    clones = [d.ok("VM.clone", parent, f"clone-{i}") for i in range(2)]
    snapshots = [d.ok("VM.snapshot", parent, f"snap-{i}") for i in range(2)]
    d.ok("VM.snapshot", clones[0], "snap-of-clone")  # its parent: the snapshot
    records = d.ok("VM.get_all_records")
    for ref in records:
        single = d.ok("VM.get_record", ref)
        assert list(records[ref].items()) == list(single.items())
    assert records[parent]["snapshots"] == tuple(snapshots)
    assert any(record["children"] for record in records.values())


def _placeholder(xtype: XType, d: Driver) -> object:
    values: dict[str, object] = {
        "string": "x",
        "int": "1",
        "float": 1.5,
        "bool": False,
        "ref": NULL_REF,
        "set": [],
        "map": {},
        "record": {},
        "datetime": "19700101T00:00:00Z",
    }
    if xtype.kind == "enum":
        return catalogue.ENUMS[xtype.name][0]
    if xtype == XType("ref", name="session"):
        return d.session
    return values[xtype.kind]


def _vm_ref_messages() -> list[Message]:
    return [
        m
        for m in catalogue.MESSAGES.values()
        if m.params and m.params[0].type == XType("ref", name="VM") and not m.removed
    ]


@pytest.mark.parametrize("message", _vm_ref_messages(), ids=lambda m: m.name)
def test_every_vm_message_refuses_a_null_vm_ref(message: Message) -> None:
    d = driver()
    args = [_placeholder(p.type, d) for p in message.params[1:]]
    assert d.call(message.wire_name, NULL_REF, *args) == Failure("HANDLE_INVALID", ("VM", NULL_REF))


@pytest.mark.parametrize("message", list(catalogue.MESSAGES.values()), ids=lambda m: m.name)
def test_every_message_answers_something_other_than_method_unknown(message: Message) -> None:
    d = driver()
    ref = d.new_vm()
    args = [_placeholder(p.type, d) for p in message.params]
    if message.params and message.params[0].type == XType("ref", name="VM"):
        args[0] = ref
    outcome = d.call(message.wire_name, *args)
    if isinstance(outcome, Failure):
        assert outcome.code not in ("MESSAGE_METHOD_UNKNOWN", "MESSAGE_PARAMETER_COUNT_MISMATCH")
    else:
        assert isinstance(outcome, Success)


def test_kinds_cover_the_generic_messages() -> None:
    kinds = {kind_of(m)[0] for m in catalogue.MESSAGES.values()}
    assert MessageKind.GET_FIELD in kinds and MessageKind.MAP_ADD in kinds


# ---- validation read from xapi_vm.ml ------------------------------------------------------------


@pytest.mark.parametrize("field_name", ["start_delay", "shutdown_delay", "order"])
def test_negative_delays_and_order_are_refused(field_name: str) -> None:
    d = driver()
    vm = d.new_vm()
    assert d.fails(f"VM.set_{field_name}", vm, "-1") == Failure(
        "INVALID_VALUE", (f"{field_name} must be non-negative", "-1")
    )
    d.ok(f"VM.set_{field_name}", vm, "5")
    assert d.field(vm, field_name) == 5


@pytest.mark.parametrize("kind", ["template", "snapshot", "control domain"])
def test_appliance_is_refused_on_templates_snapshots_and_control_domains(kind: str) -> None:
    d = driver()
    if kind == "template":
        vm = d.new_vm(is_a_template=True)
    elif kind == "snapshot":
        vm = d.ok("VM.snapshot", d.new_vm(), "s")
    else:
        vm = next(r for r, v in d.world.vms.items() if v["is_control_domain"])
    assert d.fails("VM.set_appliance", vm, "OpaqueRef:NULL") == Failure(
        "OPERATION_NOT_ALLOWED",
        ("Control domains, templates and snapshots cannot be assigned to appliances.",),
    )


def test_shadow_multiplier_live_on_a_pv_domain_changes_nothing() -> None:
    # xenops_server_xen.ml refuses set_shadow_multiplier on a PV domain (Unimplemented) and
    # xapi_xenops.ml ignores that: the field and the overhead stay; an HVM domain takes it.
    d = driver()
    pv = d.new_vm(HVM_boot_policy="")
    d.ok("VM.start", pv, False, False)
    overhead = d.field(pv, "memory_overhead")
    d.ok("VM.set_shadow_multiplier_live", pv, 2.0)
    assert d.field(pv, "HVM_shadow_multiplier") == 1.0
    assert d.field(pv, "memory_overhead") == overhead
    hvm = d.in_state("Running")
    d.ok("VM.set_shadow_multiplier_live", hvm, 2.0)
    assert d.field(hvm, "HVM_shadow_multiplier") == 2.0
