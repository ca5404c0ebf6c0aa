"""The operation rules (spec §2, §3.1, §4.3, §5.1, §5.2, §8, §14)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.operations import (
    IGNORED_OPS,
    POWER_STATES,
    RPU_ALLOWED_VM_OPERATIONS,
    VM_OPERATIONS,
    OpContext,
    allowed_operations,
    allowed_power_states,
    check_operation_error,
    is_allowed_concurrently,
    is_default_template,
    op_to_string,
)
from models.outcome import Failure, Value

REF = "OpaqueRef:5a1b7c6e-0d7e-4c35-9f0a-4d1c2f3e4b5a"
CTX = OpContext()
HALTED, PAUSED, SUSPENDED, RUNNING = "Halted", "Paused", "Suspended", "Running"
MATRIX_STATES = (HALTED, PAUSED, RUNNING, SUSPENDED)  # the column order of §2.2


def vm(power_state: str = HALTED, **fields: Value) -> dict[str, Value]:
    """A plain VM record: not a template, snapshot or control domain; other fields as given."""
    record: dict[str, Value] = {
        "power_state": power_state,
        "is_a_template": False,
        "is_a_snapshot": False,
        "is_default_template": False,
        "is_control_domain": False,
        "domid": -1,
        "blocked_operations": {},
        "current_operations": {},
        "other_config": {},
        "platform": {},
        "domain_type": "hvm",
    }
    record.update(fields)
    return record


def template(power_state: str = HALTED, **fields: Value) -> dict[str, Value]:
    return vm(power_state, is_a_template=True, **fields)


def snapshot(power_state: str = HALTED, **fields: Value) -> dict[str, Value]:
    return vm(power_state, is_a_template=True, is_a_snapshot=True, **fields)


def dom0(power_state: str = RUNNING, **fields: Value) -> dict[str, Value]:
    return vm(power_state, is_control_domain=True, domid=0, **fields)


def bps(expected: str, actual: str, ref: str = REF) -> Failure:
    return Failure("VM_BAD_POWER_STATE", (ref, expected, actual))


# --- the enum and its renderings ---------------------------------------------------------------


def test_vm_operations_is_the_enum_in_datamodel_order() -> None:
    assert len(VM_OPERATIONS) == 50
    assert len(set(VM_OPERATIONS)) == 50
    assert VM_OPERATIONS[:4] == ("snapshot", "clone", "copy", "create_template")
    assert VM_OPERATIONS.index("changing_VCPUs_live") + 1 == VM_OPERATIONS.index("changing_NVRAM")
    assert VM_OPERATIONS[-3:] == ("destroy", "create_vtpm", "sysprep")


def test_ignored_ops_are_the_nineteen_of_spec_8_2() -> None:
    assert len(IGNORED_OPS) == 19
    assert set(VM_OPERATIONS) >= IGNORED_OPS
    assert set(VM_OPERATIONS) >= RPU_ALLOWED_VM_OPERATIONS


@pytest.mark.parametrize(
    ("op", "text"),
    [
        ("changing_VCPUs", "(unknown operation)"),
        ("changing_memory_limits", "(unknown operation)"),
        ("query_services", "(unknown operation)"),
        ("create_template", "(unknown operation)"),
        ("data_source_op", "data_sources_op"),
        ("assert_operation_valid", "assertoperationvalid"),
        ("clean_shutdown", "clean_shutdown"),
        ("changing_dynamic_range", "changing_dynamic_range"),
        ("make_into_template", "make_into_template"),
        ("changing_VCPUs_live", "changing_VCPUs_live"),
        ("create_vtpm", "create_vtpm"),
    ],
)
def test_op_to_string_quirks(op: str, text: str) -> None:
    assert op_to_string(op) == text


# --- §2.1 allowed power states -----------------------------------------------------------------

ALL = (HALTED, PAUSED, SUSPENDED, RUNNING)
SPEC_2_1: dict[str, tuple[str, ...]] = {
    "import": (),
    **dict.fromkeys(
        ["changing_VCPUs", "changing_static_range", "changing_memory_limits"], (HALTED,)
    ),
    **dict.fromkeys(
        [
            "changing_shadow_memory",
            "changing_NVRAM",
            "make_into_template",
            "provision",
            "start",
            "start_on",
            "create_vtpm",
        ],
        (HALTED,),
    ),
    "unpause": (PAUSED,),
    **dict.fromkeys(["csvm", "resume", "resume_on"], (SUSPENDED,)),
    **dict.fromkeys(
        [
            "awaiting_memory_live",
            "call_plugin",
            "clean_reboot",
            "clean_shutdown",
            "changing_memory_live",
            "changing_shadow_memory_live",
            "changing_VCPUs_live",
            "data_source_op",
            "pause",
            "pool_migrate",
            "send_sysrq",
            "send_trigger",
            "snapshot_with_quiesce",
            "sysprep",
            "suspend",
        ],
        (RUNNING,),
    ),
    "changing_dynamic_range": (HALTED, RUNNING),
    **dict.fromkeys(["clone", "copy"], (HALTED,)),
    **dict.fromkeys(["create_template", "destroy", "export"], (HALTED, SUSPENDED)),
    "hard_reboot": (PAUSED, RUNNING),
    **dict.fromkeys(
        ["checkpoint", "get_boot_record", "shutdown", "hard_shutdown"], (PAUSED, SUSPENDED, RUNNING)
    ),
    "migrate_send": (HALTED, SUSPENDED, RUNNING),
    **dict.fromkeys(
        [
            "assert_operation_valid",
            "metadata_export",
            "power_state_reset",
            "revert",
            "reverting",
            "snapshot",
            "update_allowed_operations",
            "query_services",
        ],
        ALL,
    ),
}


def test_spec_2_1_covers_every_operation() -> None:
    assert set(SPEC_2_1) == set(VM_OPERATIONS)
    assert POWER_STATES == ALL


@pytest.mark.parametrize("op", VM_OPERATIONS)
def test_allowed_power_states_plain_vm(op: str) -> None:
    assert allowed_power_states(op, vm(), CTX) == SPEC_2_1[op]


@pytest.mark.parametrize(
    "op", ["changing_VCPUs", "changing_static_range", "changing_memory_limits"]
)
def test_control_domains_may_change_limits_while_running(op: str) -> None:
    assert allowed_power_states(op, dom0(), CTX) == (HALTED, RUNNING)
    assert allowed_power_states(op, vm(is_control_domain=True, domid=3), CTX) == (HALTED, RUNNING)


@pytest.mark.parametrize("op", ["clone", "copy"])
def test_clone_and_copy_accept_suspended_snapshots_or_when_the_pool_allows(op: str) -> None:
    assert allowed_power_states(op, snapshot(), CTX) == (HALTED, SUSPENDED)
    assert allowed_power_states(op, vm(), OpContext(clone_suspended_allowed=True)) == (
        HALTED,
        SUSPENDED,
    )
    assert allowed_power_states(op, template(), CTX) == (HALTED,)


def test_unknown_operation_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown VM operation"):
        allowed_power_states("reboot", vm(), CTX)
    with pytest.raises(ValueError, match="unknown VM operation"):
        check_operation_error(REF, vm(), "reboot", CTX)


# --- §2.2 the API-call matrix on a plain VM -----------------------------------------------------

OK = None
# (API call, internal op, [Halted, Paused, Running, Suspended]): None is ✓, a string is BPS(e).
MATRIX: list[tuple[str, str, list[str | None]]] = [
    ("VM.start", "start", [OK, "halted", "halted", "halted"]),
    ("VM.start_on", "start_on", [OK, "halted", "halted", "halted"]),
    ("VM.clean_shutdown", "clean_shutdown", ["running", "running", OK, "running"]),
    ("VM.hard_shutdown", "hard_shutdown", ["paused, suspended, running", OK, OK, OK]),
    ("VM.shutdown", "shutdown", ["paused, suspended, running", OK, OK, OK]),
    ("VM.clean_reboot", "clean_reboot", ["running", "running", OK, "running"]),
    ("VM.hard_reboot", "hard_reboot", ["paused, running", OK, OK, "paused, running"]),
    ("VM.pause", "pause", ["running", "running", OK, "running"]),
    ("VM.unpause", "unpause", ["paused", OK, "paused", "paused"]),
    ("VM.suspend", "suspend", ["running", "running", OK, "running"]),
    ("VM.resume", "resume", ["suspended", "suspended", "suspended", OK]),
    ("VM.resume_on", "resume_on", ["suspended", "suspended", "suspended", OK]),
    ("VM.checkpoint", "checkpoint", ["paused, suspended, running", OK, OK, OK]),
    ("VM.snapshot", "snapshot", [OK, OK, OK, OK]),
    ("VM.clone", "clone", [OK, "halted", "halted", "halted"]),
    ("VM.copy", "copy", [OK, "halted", "halted", "halted"]),
    ("VM.destroy", "destroy", [OK, "halted, suspended", "halted, suspended", OK]),
    ("VM.provision", "provision", [OK, "halted", "halted", "halted"]),
    ("VM.pool_migrate", "pool_migrate", ["running", "running", OK, "running"]),
    ("VM.migrate_send", "migrate_send", [OK, "halted, suspended, running", OK, OK]),
    ("VM.set_VCPUs_number_live", "changing_VCPUs_live", ["running", "running", OK, "running"]),
    ("VM.add_to_VCPUs_params_live", "changing_VCPUs_live", ["running", "running", OK, "running"]),
    ("VM.set_VCPUs_max", "changing_VCPUs", [OK, "halted", "halted", "halted"]),
    (
        "VM.set_memory_dynamic_range",
        "changing_dynamic_range",
        [OK, "halted, running", OK, "halted, running"],
    ),
    ("VM.set_memory_static_range", "changing_static_range", [OK, "halted", "halted", "halted"]),
    ("VM.set_memory_limits", "changing_memory_limits", [OK, "halted", "halted", "halted"]),
    ("VM.set_memory_target_live", "changing_memory_live", ["running", "running", OK, "running"]),
    ("VM.wait_memory_target_live", "awaiting_memory_live", ["running", "running", OK, "running"]),
    ("VM.set_HVM_shadow_multiplier", "changing_shadow_memory", [OK, "halted", "halted", "halted"]),
    (
        "VM.set_shadow_multiplier_live",
        "changing_shadow_memory_live",
        ["running", "running", OK, "running"],
    ),
    ("VM.set_NVRAM", "changing_NVRAM", [OK, "halted", "halted", "halted"]),
    ("VM.set_is_a_template(true)", "make_into_template", [OK, "halted", "halted", "halted"]),
    ("VM.set_is_default_template(true)", "make_into_template", [OK, "halted", "halted", "halted"]),
    ("VM.get_boot_record", "get_boot_record", ["paused, suspended, running", OK, OK, OK]),
    ("VM.get_data_sources", "data_source_op", ["running", "running", OK, "running"]),
    ("VM.send_sysrq", "send_sysrq", ["running", "running", OK, "running"]),
    ("VM.send_trigger", "send_trigger", ["running", "running", OK, "running"]),
    ("VM.call_plugin", "call_plugin", ["running", "running", OK, "running"]),
    ("VM.csvm", "csvm", ["suspended", "suspended", "suspended", OK]),
    ("VM.sysprep", "sysprep", ["running", "running", OK, "running"]),
    ("VM.query_services", "query_services", [OK, OK, OK, OK]),
    ("VTPM.create", "create_vtpm", [OK, "halted", "halted", "halted"]),
    ("HTTP /export", "export", [OK, "halted, suspended", "halted, suspended", OK]),
    ("HTTP metadata export", "metadata_export", [OK, OK, OK, OK]),
]

# What a plain VM gets after the power-state check passes (§4.3 steps 6 and 20).
LATER_ERRORS: dict[str, Failure] = {
    "provision": Failure("PROVISION_ONLY_ALLOWED_ON_TEMPLATE"),
    "query_services": Failure("NOT_SYSTEM_DOMAIN", (REF,)),
}


def _matrix_cases() -> list[tuple[str, str, str, str | None]]:
    return [
        (call, op, state, cell)
        for call, op, cells in MATRIX
        for state, cell in zip(MATRIX_STATES, cells, strict=True)
    ]


@pytest.mark.parametrize(
    ("call", "op", "state", "cell"),
    _matrix_cases(),
    ids=[f"{call}-{state}" for call, _, state, _ in _matrix_cases()],
)
def test_spec_2_2_matrix(call: str, op: str, state: str, cell: str | None) -> None:
    result = check_operation_error(REF, vm(state, domain_type="pv"), op, CTX)
    if cell is None:
        assert result == LATER_ERRORS.get(op)
    else:
        assert result == bps(cell, state.lower())


def test_set_nvram_running_is_bad_power_state() -> None:
    """xapi's ``test_vm_set_nvram_running``."""
    assert check_operation_error(REF, vm(RUNNING), "changing_NVRAM", CTX) == bps(
        "halted", "running"
    )


@pytest.mark.parametrize("op", ["clone", "copy"])
def test_clone_suspended_when_the_pool_allows(op: str) -> None:
    allow = OpContext(clone_suspended_allowed=True)
    assert check_operation_error(REF, vm(SUSPENDED), op, allow) is None
    assert check_operation_error(REF, vm(PAUSED), op, allow) == bps("halted, suspended", "paused")


# --- §4.3 worked examples ----------------------------------------------------------------------

DOM0 = "OpaqueRef:dom0"


@pytest.mark.parametrize(
    ("ref", "record", "op", "expected"),
    [
        (REF, template(HALTED), "start", Failure("VM_IS_TEMPLATE", (REF, "start"))),
        (REF, template(HALTED), "clean_shutdown", bps("running", "halted")),
        (
            REF,
            vm(RUNNING, blocked_operations={"start": "x"}),
            "start",
            Failure("OPERATION_BLOCKED", (REF, "x")),
        ),
        (REF, snapshot(HALTED), "start", Failure("VM_IS_SNAPSHOT", (REF, "start"))),
        (DOM0, dom0(), "destroy", bps("halted, suspended", "running", DOM0)),
        (
            DOM0,
            dom0(),
            "changing_VCPUs",
            Failure("OPERATION_NOT_ALLOWED", ("This operation is not allowed on dom0",)),
        ),
        (
            DOM0,
            dom0(),
            "clean_shutdown",
            Failure(
                "OPERATION_NOT_ALLOWED", ("This operation is not allowed on a control domain",)
            ),
        ),
    ],
    ids=[
        "template-start",
        "template-clean_shutdown",
        "blocked-start-on-running",
        "snapshot-start",
        "dom0-destroy",
        "dom0-set_VCPUs_max",
        "dom0-clean_shutdown",
    ],
)
def test_spec_4_3_worked_examples(
    ref: str, record: dict[str, Value], op: str, expected: Failure
) -> None:
    assert check_operation_error(ref, record, op, CTX) == expected


# --- §4.3 each step, and the order between steps -----------------------------------------------


@pytest.mark.parametrize("value", ["true", "", "Blocked by the administrator"])
def test_blocked_echoes_the_value_verbatim(value: str) -> None:
    record = vm(HALTED, blocked_operations={"start": value})
    assert check_operation_error(REF, record, "start", CTX) == Failure(
        "OPERATION_BLOCKED", (REF, value)
    )


@pytest.mark.parametrize("op", ["shutdown", "changing_VCPUs", "reverting", "export"])
def test_blocked_applies_to_ops_outside_allowed_operations(op: str) -> None:
    record = vm(HALTED, blocked_operations={op: "true"})
    assert check_operation_error(REF, record, op, CTX) == Failure(
        "OPERATION_BLOCKED", (REF, "true")
    )


def test_blocked_beats_every_later_check() -> None:
    record = dom0(blocked_operations={"destroy": "no"}, current_operations={"t": "clone"})
    assert check_operation_error(DOM0, record, "destroy", CTX) == Failure(
        "OPERATION_BLOCKED", (DOM0, "no")
    )


def test_other_operation_in_progress_single() -> None:
    record = vm(RUNNING, current_operations={"OpaqueRef:task1": "clean_shutdown"})
    assert check_operation_error(REF, record, "pause", CTX) == Failure(
        "OTHER_OPERATION_IN_PROGRESS", ("VM", REF, "clean_shutdown", "OpaqueRef:task1")
    )


def test_other_operation_in_progress_several_uses_braces_and_op_quirks() -> None:
    record = vm(
        HALTED,
        current_operations={"OpaqueRef:t1": "data_source_op", "OpaqueRef:t2": "changing_VCPUs"},
    )
    assert check_operation_error(REF, record, "start", CTX) == Failure(
        "OTHER_OPERATION_IN_PROGRESS",
        ("VM", REF, "{data_sources_op,(unknown operation)}", "{OpaqueRef:t1,OpaqueRef:t2}"),
    )


def test_concurrent_op_allowed_passes() -> None:
    record = vm(HALTED, current_operations={"t1": "clone", "t2": "export"})
    assert check_operation_error(REF, record, "copy", CTX) is None


def test_power_state_comes_before_concurrency() -> None:
    record = vm(RUNNING, current_operations={"t": "clean_shutdown"})
    assert check_operation_error(REF, record, "start", CTX) == bps("halted", "running")


def test_concurrency_comes_before_template() -> None:
    record = template(HALTED, current_operations={"t": "clone"})
    assert check_operation_error(REF, record, "start", CTX) == Failure(
        "OTHER_OPERATION_IN_PROGRESS", ("VM", REF, "clone", "t")
    )


@pytest.mark.parametrize(
    "op",
    [
        "changing_dynamic_range",
        "changing_static_range",
        "changing_memory_limits",
        "changing_shadow_memory",
        "changing_VCPUs",
        "changing_NVRAM",
        "clone",
        "copy",
        "export",
        "metadata_export",
        "provision",
        "destroy",
        "migrate_send",
    ],
)
def test_template_allows(op: str) -> None:
    assert check_operation_error(REF, template(HALTED), op, CTX) is None


@pytest.mark.parametrize(
    ("op", "text"),
    [
        ("start", "start"),
        ("snapshot", "snapshot"),
        ("make_into_template", "make_into_template"),
        ("create_vtpm", "create_vtpm"),
        ("create_template", "(unknown operation)"),
        ("assert_operation_valid", "assertoperationvalid"),
    ],
)
def test_template_rejects_with_op_string(op: str, text: str) -> None:
    assert check_operation_error(REF, template(HALTED), op, CTX) == Failure(
        "VM_IS_TEMPLATE", (REF, text)
    )


DEFAULT_TEMPLATE_MARKS: list[dict[str, Value]] = [
    {"is_default_template": True},
    {"other_config": {"default_template": "true"}},
    {"other_config": {"default_template": "TRUE"}},
    {"other_config": {"default_template": "1"}},
]


@pytest.mark.parametrize("mark", DEFAULT_TEMPLATE_MARKS)
@pytest.mark.parametrize("op", ["destroy", "migrate_send"])
def test_default_template_refuses_destroy_and_migrate_send(mark: dict[str, Value], op: str) -> None:
    record = template(HALTED, **mark)
    assert is_default_template(record)
    assert check_operation_error(REF, record, op, CTX) == Failure("VM_IS_TEMPLATE", (REF, op))


@pytest.mark.parametrize("value", ["false", "yes", "0", ""])
def test_other_default_template_values_are_not_default(value: str) -> None:
    record = template(HALTED, other_config={"default_template": value})
    assert not is_default_template(record)
    assert check_operation_error(REF, record, "destroy", CTX) is None


def test_is_default_template_defaults_to_false_on_a_bare_record() -> None:
    assert not is_default_template({})


@pytest.mark.parametrize(
    "op", ["revert", "clone", "copy", "export", "destroy", "hard_shutdown", "metadata_export"]
)
def test_snapshot_allows(op: str) -> None:
    state = RUNNING if op == "hard_shutdown" else HALTED
    assert check_operation_error(REF, snapshot(state), op, CTX) is None


def test_snapshot_set_memory_renders_unknown_operation() -> None:
    """§3.1: ``VM.set_memory(snapshot, …)`` → ``VM_IS_SNAPSHOT [ref; "(unknown operation)"]``."""
    assert check_operation_error(REF, snapshot(HALTED), "changing_memory_limits", CTX) == Failure(
        "VM_IS_SNAPSHOT", (REF, "(unknown operation)")
    )


def test_snapshot_skips_the_template_check() -> None:
    """A default-template mark on a snapshot does not stop destroy in check_operation_error."""
    record = snapshot(HALTED, other_config={"default_template": "true"})
    assert check_operation_error(REF, record, "destroy", CTX) is None
    assert check_operation_error(REF, record, "provision", CTX) == Failure(
        "VM_IS_SNAPSHOT", (REF, "provision")
    )


def test_provision_only_on_templates() -> None:
    assert check_operation_error(REF, vm(HALTED), "provision", CTX) == Failure(
        "PROVISION_ONLY_ALLOWED_ON_TEMPLATE"
    )
    assert check_operation_error(REF, template(HALTED), "provision", CTX) is None


def test_revert_only_on_snapshots() -> None:
    assert check_operation_error(REF, vm(RUNNING), "revert", CTX) == Failure(
        "REVERT_ONLY_ALLOWED_ON_SNAPSHOT"
    )
    assert check_operation_error(REF, template(HALTED), "revert", CTX) == Failure(
        "VM_IS_TEMPLATE", (REF, "revert")
    )
    assert check_operation_error(REF, snapshot(SUSPENDED), "revert", CTX) is None


@pytest.mark.parametrize("op", ["suspend", "checkpoint", "pool_migrate", "migrate_send"])
@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("nomigrate", [False, True])
@pytest.mark.parametrize("force", [False, True])
def test_no_migrate(op: str, nested: bool, nomigrate: bool, force: bool) -> None:
    """xapi's ``test_no_migrate.ml``: permitted iff force (not strict) or neither flag is set."""
    platform: dict[str, Value] = {}
    if nested:
        platform["nested-virt"] = "true"
    if nomigrate:
        platform["nomigrate"] = "1"
    record = vm(RUNNING, domain_type="pv", platform=platform)
    result = check_operation_error(REF, record, op, OpContext(strict=not force))
    if force or not (nested or nomigrate):
        assert result is None
    else:
        assert result == Failure("VM_IS_IMMOBILE", (REF,))


@pytest.mark.parametrize("state", [HALTED, RUNNING])
def test_nested_virt_blocks_dynamic_range_when_strict(state: str) -> None:
    record = vm(state, domain_type="pv", platform={"nested-virt": "1"})
    assert check_operation_error(REF, record, "changing_dynamic_range", CTX) == Failure(
        "VM_IS_USING_NESTED_VIRT", (REF,)
    )
    lax = OpContext(strict=False)
    assert check_operation_error(REF, record, "changing_dynamic_range", lax) is None


def test_immobile_comes_before_control_domain() -> None:
    record = vm(RUNNING, is_control_domain=True, domid=4, platform={"nomigrate": "true"})
    assert check_operation_error(REF, record, "suspend", CTX) == Failure("VM_IS_IMMOBILE", (REF,))


CONTROL_DOMAIN_OPS = [
    "data_source_op",
    "changing_memory_live",
    "awaiting_memory_live",
    "metadata_export",
    "changing_dynamic_range",
    "changing_memory_limits",
    "changing_static_range",
    "changing_VCPUs",
]


@pytest.mark.parametrize("op", CONTROL_DOMAIN_OPS)
def test_running_control_domain_allows(op: str) -> None:
    record = vm(RUNNING, is_control_domain=True, domid=7)
    assert check_operation_error(REF, record, op, CTX) is None


@pytest.mark.parametrize("op", ["start", "start_on", "destroy", "changing_VCPUs"])
def test_halted_driver_domain_allows(op: str) -> None:
    record = vm(HALTED, is_control_domain=True, domid=-1)
    assert check_operation_error(REF, record, op, CTX) is None


@pytest.mark.parametrize("op", ["clean_shutdown", "snapshot", "pause", "hard_shutdown"])
def test_running_control_domain_refuses(op: str) -> None:
    record = vm(RUNNING, is_control_domain=True, domid=7)
    assert check_operation_error(REF, record, op, CTX) == Failure(
        "OPERATION_NOT_ALLOWED", ("This operation is not allowed on a control domain",)
    )


def test_dom0_changing_static_range_is_allowed_while_running() -> None:
    assert check_operation_error(DOM0, dom0(), "changing_static_range", CTX) is None
    assert check_operation_error(DOM0, dom0(PAUSED), "changing_static_range", CTX) == bps(
        "halted, running", "paused", DOM0
    )


def test_dom0_destroy_when_halted_is_not_allowed() -> None:
    assert check_operation_error(DOM0, dom0(HALTED), "destroy", CTX) == Failure(
        "OPERATION_NOT_ALLOWED", ("This operation is not allowed on dom0",)
    )


NO_DRIVERS = OpContext(guest_has_pv_drivers=False)
NO_DRIVERS_LAX = OpContext(guest_has_pv_drivers=False, strict=False)
FEATURE_OPS = [
    "clean_shutdown",
    "clean_reboot",
    "changing_VCPUs_live",
    "suspend",
    "checkpoint",
    "pool_migrate",
    "migrate_send",
]


@pytest.mark.parametrize("op", FEATURE_OPS)
def test_running_hvm_without_drivers_lacks_features(op: str) -> None:
    assert check_operation_error(REF, vm(RUNNING), op, NO_DRIVERS) == Failure(
        "VM_LACKS_FEATURE", (REF,)
    )


@pytest.mark.parametrize("op", FEATURE_OPS)
def test_non_strict_only_vcpu_hotplug_needs_the_feature(op: str) -> None:
    expected = Failure("VM_LACKS_FEATURE", (REF,)) if op == "changing_VCPUs_live" else None
    assert check_operation_error(REF, vm(RUNNING), op, NO_DRIVERS_LAX) == expected


@pytest.mark.parametrize("domain_type", ["pv", "pvh", "pv_in_pvh"])
@pytest.mark.parametrize("op", FEATURE_OPS)
def test_pv_booted_guests_have_implicit_support(domain_type: str, op: str) -> None:
    record = vm(RUNNING, domain_type=domain_type)
    assert check_operation_error(REF, record, op, NO_DRIVERS) is None


@pytest.mark.parametrize("domain_type", ["hvm", "unspecified", ""])
def test_hvm_or_unknown_domain_type_is_not_pv(domain_type: str) -> None:
    record = vm(RUNNING, domain_type=domain_type)
    assert check_operation_error(REF, record, "clean_shutdown", NO_DRIVERS) == Failure(
        "VM_LACKS_FEATURE", (REF,)
    )


def test_paused_hvm_without_drivers_cannot_checkpoint() -> None:
    """A paused VM is live, so it has no implicit support for checkpoint."""
    assert check_operation_error(REF, vm(PAUSED), "checkpoint", NO_DRIVERS) == Failure(
        "VM_LACKS_FEATURE", (REF,)
    )


@pytest.mark.parametrize("op", ["checkpoint", "migrate_send"])
def test_suspended_hvm_without_drivers_has_implicit_support(op: str) -> None:
    assert check_operation_error(REF, vm(SUSPENDED), op, NO_DRIVERS) is None


@pytest.mark.parametrize("op", ["pause", "hard_shutdown", "snapshot", "sysprep"])
def test_other_ops_need_no_guest_feature(op: str) -> None:
    assert check_operation_error(REF, vm(RUNNING), op, NO_DRIVERS) is None


def test_control_domain_check_comes_before_features() -> None:
    record = vm(RUNNING, is_control_domain=True, domid=2)
    assert check_operation_error(REF, record, "clean_shutdown", NO_DRIVERS) == Failure(
        "OPERATION_NOT_ALLOWED", ("This operation is not allowed on a control domain",)
    )


def test_snapshot_with_quiesce_is_not_supported() -> None:
    assert check_operation_error(REF, vm(RUNNING), "snapshot_with_quiesce", CTX) == Failure(
        "VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED", (REF,)
    )
    assert check_operation_error(REF, vm(HALTED), "snapshot_with_quiesce", CTX) == bps(
        "running", "halted"
    )


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_query_services_on_a_system_domain(value: str) -> None:
    record = vm(RUNNING, other_config={"is_system_domain": value})
    assert check_operation_error(REF, record, "query_services", CTX) is None


@pytest.mark.parametrize("other_config", [{}, {"is_system_domain": "false"}])
def test_query_services_on_other_vms(other_config: dict[str, Value]) -> None:
    record = vm(RUNNING, other_config=other_config)
    assert check_operation_error(REF, record, "query_services", CTX) == Failure(
        "NOT_SYSTEM_DOMAIN", (REF,)
    )


@pytest.mark.parametrize("count", [1, 2])
def test_vtpm_max_amount_reached(count: int) -> None:
    context = OpContext(vtpm_count=count)
    assert check_operation_error(REF, vm(HALTED), "create_vtpm", context) == Failure(
        "VTPM_MAX_AMOUNT_REACHED", (str(count),)
    )


ROLLING = OpContext(rolling_upgrade=True)


@pytest.mark.unconfirmed
@pytest.mark.parametrize(
    ("state", "op", "expected"),
    [
        (HALTED, "start", None),
        (HALTED, "migrate_send", None),
        (HALTED, "snapshot", Failure("NOT_SUPPORTED_DURING_UPGRADE")),
        (HALTED, "changing_NVRAM", Failure("NOT_SUPPORTED_DURING_UPGRADE")),
        (RUNNING, "query_services", Failure("NOT_SYSTEM_DOMAIN", (REF,))),
        (HALTED, "create_vtpm", Failure("NOT_SUPPORTED_DURING_UPGRADE")),
    ],
)
def test_rolling_upgrade_unconfirmed(state: str, op: str, expected: Failure | None) -> None:
    context = dataclasses.replace(ROLLING, vtpm_count=1)
    assert check_operation_error(REF, vm(state), op, context) == expected


@pytest.mark.unconfirmed
def test_sxm_allowed_when_rolling_upgrade_unconfirmed() -> None:
    """xapi's ``test_sxm_allowed_when_rum``: migrate_send (strict=false) passes during RPU."""
    lax = OpContext(rolling_upgrade=True, strict=False)
    assert check_operation_error(REF, vm(HALTED), "migrate_send", lax) is None


@pytest.mark.unconfirmed
@pytest.mark.parametrize("state", ALL)
def test_allowed_operations_during_rolling_upgrade_unconfirmed(state: str) -> None:
    resting = allowed_operations(REF, vm(state), CTX)
    assert allowed_operations(REF, vm(state), ROLLING) == resting & RPU_ALLOWED_VM_OPERATIONS


@pytest.mark.parametrize("op", ["assert_operation_valid", "update_allowed_operations"])
def test_operation_checks_allowed(op: str) -> None:
    """xapi's ``test_operation_checks_allowed`` on a fresh (Halted, HVM) VM."""
    assert check_operation_error(REF, vm(HALTED), op, CTX) is None


@pytest.mark.parametrize("state", ALL)
@pytest.mark.parametrize("op", VM_OPERATIONS)
def test_every_op_is_checkable_in_every_state(state: str, op: str) -> None:
    """Like xapi's ``test_null_vdi``: no op raises; every answer is None or a Failure."""
    result = check_operation_error(REF, vm(state), op, CTX)
    assert result is None or isinstance(result, Failure)


def test_import_is_refused_in_every_state() -> None:
    for state in ALL:
        assert check_operation_error(REF, vm(state), "import", CTX) == bps("", state.lower())


# --- reading records ---------------------------------------------------------------------------


def test_missing_fields_take_datamodel_defaults() -> None:
    assert check_operation_error(REF, {}, "start", CTX) is None
    assert check_operation_error(REF, {"power_state": RUNNING}, "clean_shutdown", NO_DRIVERS) == (
        Failure("VM_LACKS_FEATURE", (REF,))
    )


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"power_state": "running"}, ValueError),
        ({"power_state": 1}, TypeError),
        ({"is_a_template": "true"}, TypeError),
        ({"blocked_operations": ["start"]}, TypeError),
        ({"blocked_operations": {"start": True}}, TypeError),
        ({"power_state": RUNNING, "is_control_domain": True, "domid": "0"}, TypeError),
        ({"power_state": RUNNING, "is_control_domain": True, "domid": False}, TypeError),
    ],
)
def test_malformed_records_raise(record: dict[str, Value], error: type[Exception]) -> None:
    op = "changing_VCPUs" if record.get("is_control_domain") else "start"
    with pytest.raises(error):
        check_operation_error(REF, record, op, CTX)


# --- §8.4 resting allowed_operations -----------------------------------------------------------


def ops(text: str) -> frozenset[str]:
    return frozenset(text.replace(",", " ").split())


PLAIN_RESTING = {
    HALTED: ops(
        "changing_NVRAM, changing_dynamic_range, changing_shadow_memory, changing_static_range, "
        "clone, copy, create_vtpm, destroy, export, make_into_template, metadata_export, "
        "migrate_send, snapshot, start, start_on"
    ),
    PAUSED: ops("checkpoint, hard_reboot, hard_shutdown, metadata_export, snapshot, unpause"),
    RUNNING: ops(
        "changing_VCPUs_live, changing_dynamic_range, checkpoint, clean_reboot, clean_shutdown, "
        "hard_reboot, hard_shutdown, metadata_export, migrate_send, pause, pool_migrate, "
        "snapshot, suspend, sysprep"
    ),
    SUSPENDED: ops(
        "checkpoint, destroy, export, hard_shutdown, metadata_export, migrate_send, resume, "
        "resume_on, snapshot"
    ),
}
TEMPLATE_RESTING = {
    HALTED: ops(
        "changing_NVRAM, changing_dynamic_range, changing_shadow_memory, changing_static_range, "
        "clone, copy, destroy, export, metadata_export, migrate_send, provision"
    ),
    PAUSED: ops("metadata_export"),
    RUNNING: ops("changing_dynamic_range, metadata_export, migrate_send"),
    SUSPENDED: ops("destroy, export, metadata_export, migrate_send"),
}
DEFAULT_TEMPLATE_RESTING = {
    HALTED: TEMPLATE_RESTING[HALTED] - {"destroy", "migrate_send"},
    PAUSED: ops("metadata_export"),
    RUNNING: ops("changing_dynamic_range, metadata_export"),
    SUSPENDED: ops("export, metadata_export"),
}
SNAPSHOT_RESTING = {
    HALTED: ops("clone, copy, destroy, export, metadata_export, revert"),
    PAUSED: ops("hard_shutdown, metadata_export, revert"),
    RUNNING: ops("hard_shutdown, metadata_export, revert"),
    SUSPENDED: ops("clone, copy, destroy, export, hard_shutdown, metadata_export, revert"),
}
HVM_NO_DRIVERS_DROPPED = ops(
    "clean_shutdown, clean_reboot, changing_VCPUs_live, suspend, checkpoint, pool_migrate, "
    "migrate_send"
)


@pytest.mark.parametrize("state", ALL)
def test_spec_8_4_plain_vm(state: str) -> None:
    assert allowed_operations(REF, vm(state), CTX) == PLAIN_RESTING[state]


@pytest.mark.parametrize("state", ALL)
def test_spec_8_4_template(state: str) -> None:
    assert allowed_operations(REF, template(state), CTX) == TEMPLATE_RESTING[state]


@pytest.mark.parametrize("mark", DEFAULT_TEMPLATE_MARKS)
@pytest.mark.parametrize("state", ALL)
def test_spec_8_4_default_template(state: str, mark: dict[str, Value]) -> None:
    record = template(state, **mark)
    assert allowed_operations(REF, record, CTX) == DEFAULT_TEMPLATE_RESTING[state]


@pytest.mark.parametrize("state", ALL)
def test_spec_8_4_snapshot(state: str) -> None:
    assert allowed_operations(REF, snapshot(state), CTX) == SNAPSHOT_RESTING[state]


def test_spec_8_4_running_hvm_without_drivers() -> None:
    expected = PLAIN_RESTING[RUNNING] - HVM_NO_DRIVERS_DROPPED
    assert allowed_operations(REF, vm(RUNNING), NO_DRIVERS) == expected
    assert expected == ops(
        "changing_dynamic_range, hard_reboot, hard_shutdown, metadata_export, pause, snapshot, "
        "sysprep"
    )


@pytest.mark.parametrize(
    ("state", "dropped"),
    [(HALTED, frozenset()), (PAUSED, ops("checkpoint")), (SUSPENDED, frozenset())],
)
def test_hvm_without_drivers_other_states(state: str, dropped: frozenset[str]) -> None:
    assert allowed_operations(REF, vm(state), NO_DRIVERS) == PLAIN_RESTING[state] - dropped


def test_allowed_operations_is_always_strict() -> None:
    lax = OpContext(strict=False, guest_has_pv_drivers=False)
    assert allowed_operations(REF, vm(RUNNING), lax) == allowed_operations(
        REF, vm(RUNNING), NO_DRIVERS
    )


def test_allowed_operations_drops_blocked_ops() -> None:
    record = vm(HALTED, blocked_operations={"start": "true", "shutdown": "true"})
    assert allowed_operations(REF, record, CTX) == PLAIN_RESTING[HALTED] - {"start"}


def test_allowed_operations_with_clone_suspended() -> None:
    allow = OpContext(clone_suspended_allowed=True)
    assert allowed_operations(REF, vm(SUSPENDED), allow) == PLAIN_RESTING[SUSPENDED] | {
        "clone",
        "copy",
    }


def test_allowed_operations_with_a_vtpm() -> None:
    context = OpContext(vtpm_count=1)
    assert allowed_operations(REF, vm(HALTED), context) == PLAIN_RESTING[HALTED] - {"create_vtpm"}


def test_allowed_operations_while_an_op_runs() -> None:
    record = vm(RUNNING, current_operations={"t": "migrate_send"})
    assert allowed_operations(REF, record, CTX) == ops(
        "clean_shutdown, clean_reboot, hard_shutdown, hard_reboot, metadata_export"
    )


@pytest.mark.parametrize("state", ALL)
def test_allowed_operations_never_lists_ignored_ops(state: str) -> None:
    for record in (vm(state), template(state), snapshot(state), dom0(state)):
        assert not allowed_operations(REF, record, CTX) & IGNORED_OPS


# --- §8.5 concurrency --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "current", "expected"),
    [
        ("snapshot", [], True),
        ("snapshot", ["checkpoint"], True),
        ("migrate_send", ["clean_reboot"], False),
        ("clean_reboot", ["migrate_send"], True),
    ],
)
def test_allowed_specs_fixed_rows(op: str, current: list[str], expected: bool) -> None:
    assert is_allowed_concurrently(op, current) is expected


@pytest.mark.parametrize("current", VM_OPERATIONS)
def test_allowed_specs_hard_shutdown(current: str) -> None:
    assert is_allowed_concurrently("hard_shutdown", [current]) is (current != "hard_shutdown")


@pytest.mark.parametrize("current", VM_OPERATIONS)
def test_allowed_specs_clean_shutdown(current: str) -> None:
    assert is_allowed_concurrently("clean_shutdown", [current]) is (current == "migrate_send")


@pytest.mark.parametrize("current", VM_OPERATIONS)
def test_allowed_specs_hard_reboot(current: str) -> None:
    expected = current not in {"hard_shutdown", "hard_reboot"}
    assert is_allowed_concurrently("hard_reboot", [current]) is expected


@pytest.mark.parametrize(
    ("op", "current", "expected"),
    [
        ("clone", ["copy", "export"], True),
        ("export", ["clone", "clone"], True),
        ("copy", ["clone", "snapshot"], False),
        ("checkpoint", ["snapshot", "checkpoint"], True),
        ("snapshot", ["snapshot", "export"], False),
        ("get_boot_record", ["get_boot_record"], True),
        ("get_boot_record", ["snapshot"], False),
        ("snapshot", ["snapshot_with_quiesce"], True),
        ("checkpoint", ["snapshot_with_quiesce"], False),
        ("snapshot", ["snapshot_with_quiesce", "snapshot_with_quiesce"], False),
        ("metadata_export", ["migrate_send"], True),
        ("clean_shutdown", ["migrate_send"], True),
        ("clean_reboot", ["migrate_send"], True),
        ("metadata_export", ["migrate_send", "migrate_send"], False),
        ("start", ["migrate_send"], False),
        ("start_on", ["migrate_send"], False),
        ("hard_shutdown", ["clean_shutdown", "hard_reboot"], True),
        ("hard_shutdown", ["clean_shutdown", "hard_shutdown"], False),
        ("hard_reboot", ["suspend", "pool_migrate"], True),
        ("hard_reboot", ["clean_shutdown", "hard_shutdown"], False),
        ("pause", ["metadata_export"], False),
        ("hard_shutdown", [], True),
        ("hard_reboot", [], True),
        ("clone", [], True),
        ("start", [], False),
    ],
)
def test_spec_8_5_rules(op: str, current: list[str], expected: bool) -> None:
    assert is_allowed_concurrently(op, current) is expected
    assert is_allowed_concurrently(op, tuple(current)) is expected


# --- property: allowed_operations is the strict check over the candidates ----------------------

CANDIDATES = frozenset(VM_OPERATIONS) - IGNORED_OPS


@st.composite
def vm_records(draw: st.DrawFn) -> dict[str, Value]:
    is_snapshot = draw(st.booleans())
    other_config: dict[str, Value] = draw(
        st.dictionaries(
            st.sampled_from(["default_template", "is_system_domain"]),
            st.sampled_from(["true", "TRUE", "1", "false", "0"]),
        )
    )
    platform: dict[str, Value] = draw(
        st.dictionaries(st.sampled_from(["nomigrate", "nested-virt"]), st.sampled_from(["1", "0"]))
    )
    blocked: dict[str, Value] = draw(
        st.dictionaries(st.sampled_from(VM_OPERATIONS), st.text(max_size=5), max_size=6)
    )
    current: dict[str, Value] = draw(
        st.dictionaries(
            st.sampled_from(["OpaqueRef:t1", "OpaqueRef:t2"]),
            st.sampled_from(VM_OPERATIONS),
            max_size=2,
        )
    )
    control = draw(st.booleans())
    return vm(
        draw(st.sampled_from(ALL)),
        is_a_template=is_snapshot or draw(st.booleans()),
        is_a_snapshot=is_snapshot,
        is_default_template=draw(st.booleans()),
        is_control_domain=control,
        domid=draw(st.sampled_from([-1, 0, 3])) if control else -1,
        other_config=other_config,
        platform=platform,
        blocked_operations=blocked,
        current_operations=current,
        domain_type=draw(st.sampled_from(["hvm", "pv", "pvh"])),
    )


contexts = st.builds(
    OpContext,
    strict=st.booleans(),
    clone_suspended_allowed=st.booleans(),
    guest_has_pv_drivers=st.booleans(),
    rolling_upgrade=st.booleans(),
    vtpm_count=st.integers(min_value=0, max_value=2),
)


@given(record=vm_records(), context=contexts)
def test_allowed_operations_is_the_strict_check(
    record: dict[str, Value], context: OpContext
) -> None:
    strict = dataclasses.replace(context, strict=True)
    expected = {op for op in CANDIDATES if check_operation_error(REF, record, op, strict) is None}
    allowed = allowed_operations(REF, record, context)
    assert allowed == expected
    blocked = record["blocked_operations"]
    assert isinstance(blocked, Mapping)
    assert not allowed & set(blocked)


@given(record=vm_records(), context=contexts, op=st.sampled_from(VM_OPERATIONS))
def test_blocked_op_is_always_operation_blocked(
    record: dict[str, Value], context: OpContext, op: str
) -> None:
    blocked = {op: "reason"}
    record = {**record, "blocked_operations": blocked}
    assert check_operation_error(REF, record, op, context) == Failure(
        "OPERATION_BLOCKED", (REF, "reason")
    )
