"""The catalogue against the published reference, the semantics and its own API."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from models import catalogue
from models.catalogue import (
    ENUMS,
    FIELDS,
    MESSAGES,
    MessageKind,
    create_fields,
    field,
    kind_of,
    message,
    required_create_fields,
    roles_at_least,
)
from models.schema import ROLES, Message, Param, XType, parse_type

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC = REPO_ROOT / "tools" / "spec" / "xenapi-vm-class.txt"
SHARED_SPEC = REPO_ROOT.parent / "shared" / "spec" / "xenapi-vm-class.txt"
SEMANTICS = REPO_ROOT.parent / "shared" / "spec" / "xapi-vm-semantics.md"
OVERLAY = REPO_ROOT / "tools" / "catalogue_overlay.json"
GENERATOR = REPO_ROOT / "tools" / "gen_catalogue.py"
DATA_MODULE = REPO_ROOT / "models" / "catalogue_data.py"

# Semantics §9.1, "Required fields", in the order written there.
REQUIRED_9_1 = (
    "user_version",
    "is_a_template",
    "affinity",
    "memory_static_max",
    "memory_dynamic_max",
    "memory_dynamic_min",
    "memory_static_min",
    "VCPUs_params",
    "VCPUs_max",
    "VCPUs_at_startup",
    "actions_after_shutdown",
    "actions_after_reboot",
    "actions_after_crash",
    "PV_bootloader",
    "PV_kernel",
    "PV_ramdisk",
    "PV_args",
    "PV_bootloader_args",
    "PV_legacy_args",
    "HVM_boot_policy",
    "HVM_boot_params",
    "platform",
    "PCI_bus",
    "other_config",
    "recommendations",
)

NULL = "OpaqueRef:NULL"

# Semantics §9.1, "Optional fields with defaults", as Python values.
OPTIONAL_9_1: dict[str, object] = {
    "name_label": "",
    "name_description": "",
    "power_state": "Halted",
    "suspend_VDI": NULL,
    "memory_target": 0,
    "actions_after_softreboot": "soft_reboot",
    "HVM_shadow_multiplier": 1.0,
    "last_boot_CPU_flags": {},
    "last_booted_record": "",
    "xenstore_data": {},
    "ha_always_run": False,
    "ha_restart_priority": "",
    "tags": (),
    "blocked_operations": {},
    "protection_policy": NULL,
    "is_snapshot_from_vmpp": False,
    "snapshot_schedule": NULL,
    "is_vmss_snapshot": False,
    "appliance": NULL,
    "start_delay": 0,
    "shutdown_delay": 0,
    "order": 0,
    "suspend_SR": NULL,
    "version": 0,
    "generation_id": "0:0",
    "hardware_platform_version": 0,
    "has_vendor_device": True,
    "reference_label": "",
    "domain_type": "unspecified",
    "NVRAM": {},
}

# Semantics §2.1, first column of the "internal op" table.
INTERNAL_OPS_2_1 = frozenset(
    {
        "import",
        "changing_VCPUs",
        "changing_static_range",
        "changing_memory_limits",
        "changing_shadow_memory",
        "changing_NVRAM",
        "make_into_template",
        "provision",
        "start",
        "start_on",
        "create_vtpm",
        "unpause",
        "csvm",
        "resume",
        "resume_on",
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
        "changing_dynamic_range",
        "clone",
        "copy",
        "create_template",
        "destroy",
        "export",
        "hard_reboot",
        "checkpoint",
        "get_boot_record",
        "shutdown",
        "hard_shutdown",
        "migrate_send",
        "assert_operation_valid",
        "metadata_export",
        "power_state_reset",
        "revert",
        "reverting",
        "snapshot",
        "update_allowed_operations",
        "query_services",
    }
)

# Semantics §12: messages declared ~flags:[`Session] (no Async form).
NO_ASYNC_12 = (
    "set_memory_dynamic_min",
    "set_memory_dynamic_max",
    "set_memory_static_min",
    "set_memory_static_max",
    "set_VCPUs_max",
    "set_VCPUs_at_startup",
    "set_HVM_shadow_multiplier",
    "get_boot_record",
)

VM_REF = parse_type("VM ref")


# ---------------------------------------------------------------------------------------------
# An independent, deliberately simple reading of the reference


def spec_text() -> str:
    return SPEC.read_text(encoding="utf-8")


def spec_message_names() -> list[str]:
    return re.findall(r"^RPC name: (\S+)$", spec_text(), flags=re.MULTILINE)


def spec_field_rows() -> dict[str, tuple[str, str]]:
    """name -> (type text, qualifier), from the field table."""
    table = spec_text().split("Field Type Qualifier Description\n", 1)[1].split("\n\n", 1)[0]
    row = re.compile(r"^(\S+) (.+?) (RW|RO/constructor|RO/runtime)(?: |$)")
    rows: dict[str, tuple[str, str]] = {}
    for line in table.splitlines():
        match = row.match(line)
        assert match, line
        rows[match[1]] = (match[2], match[3])
    return rows


def spec_min_roles() -> dict[str, str]:
    """name -> the first Minimum Role of its block.

    The page lost the heading of get_pending_guidances_recommended, whose text sits inside
    get_pending_guidances_full's block: hence the first role of each block.
    """
    blocks = re.split(r"^RPC name: ", spec_text(), flags=re.MULTILINE)[1:]
    roles = {}
    for block in blocks:
        match = re.search(r"^Minimum Role: (\S+)$", block, flags=re.MULTILINE)
        assert match, block[:80]
        roles[block.split("\n", 1)[0].strip()] = match[1]
    return roles


# ---------------------------------------------------------------------------------------------
# (a) every message and field of the reference, and nothing else


def test_the_spec_copy_is_byte_identical_to_the_shared_reference() -> None:
    if not SHARED_SPEC.is_file():
        pytest.skip("../shared/spec is not available here")
    assert SPEC.read_bytes() == SHARED_SPEC.read_bytes()


def test_every_message_of_the_reference_and_no_other() -> None:
    names = spec_message_names()
    assert len(names) == 219
    assert len(set(names)) == 219
    assert len(MESSAGES) == 219
    assert set(MESSAGES) == set(names)


def test_every_field_of_the_reference_and_no_other() -> None:
    rows = spec_field_rows()
    assert set(FIELDS) == set(rows)
    assert len(FIELDS) == len(rows)


def test_field_types_and_qualifiers_match_the_reference() -> None:
    for name, (type_text, qualifier) in spec_field_rows().items():
        assert str(field(name).type) == type_text, name
        assert field(name).qualifier == qualifier, name


def test_minimum_roles_match_the_reference() -> None:
    for name, role in spec_min_roles().items():
        assert message(name).min_role == role, name


def test_wire_names_and_unknown_names() -> None:
    assert message("start").wire_name == "VM.start"
    with pytest.raises(KeyError):
        message("VM.start")
    with pytest.raises(KeyError):
        field("no_such_field")


# ---------------------------------------------------------------------------------------------
# (b) spot checks


def test_start() -> None:
    start = message("start")
    assert tuple(p.name for p in start.params) == ("vm", "start_paused", "force")
    assert start.min_role == "vm-operator"
    assert start.has_async
    assert start.returns == parse_type("void")
    assert "VM_BAD_POWER_STATE" in start.errors


def test_snapshot_ignore_vdis_is_defaulted() -> None:
    snapshot = message("snapshot")
    assert snapshot.required_count == 2
    ignore = snapshot.params[-1]
    assert (ignore.name, ignore.has_default, ignore.default) == ("ignore_vdis", True, ())
    assert ignore.type == parse_type("VDI ref set")


@pytest.mark.parametrize(
    ("name", "param", "default"),
    [
        ("migrate_send", "vgpu_map", {}),
        ("assert_can_migrate", "vgpu_map", {}),
        ("create_new_blob", "public", False),
    ],
)
def test_other_parameter_defaults(name: str, param: str, default: object) -> None:
    last = message(name).params[-1]
    assert (last.name, last.has_default, last.default) == (param, True, default)
    assert message(name).required_count == len(message(name).params) - 1


def test_only_the_four_datamodel_parameter_defaults_exist() -> None:
    defaulted = {(m.name, p.name) for m in MESSAGES.values() for p in m.params if p.has_default}
    assert defaulted == {
        ("snapshot", "ignore_vdis"),
        ("migrate_send", "vgpu_map"),
        ("assert_can_migrate", "vgpu_map"),
        ("create_new_blob", "public"),
    }
    assert message("import").required_count == 4


def test_lifecycle_flags() -> None:
    assert message("snapshot_with_quiesce").removed
    assert message("get_boot_record").deprecated
    assert not message("get_boot_record").has_async
    assert not message("start").deprecated
    assert field("is_snapshot_from_vmpp").removed
    assert field("ha_always_run").deprecated
    assert not field("ha_always_run").description.startswith("Deprecated")


def test_create_takes_a_vm_record() -> None:
    create = message("create")
    assert create.params[0].type == parse_type("VM record")
    assert create.returns == VM_REF
    assert create.has_async
    assert message("destroy").has_async


def test_async_forms() -> None:
    for name in NO_ASYNC_12:
        assert not message(name).has_async, name
    for name in ("get_record", "get_all", "get_all_records", "get_by_uuid", "get_by_name_label"):
        assert not message(name).has_async, name
    for name in ("get_name_label", "set_name_label", "add_tags", "add_to_other_config"):
        assert not message(name).has_async, name
    for name in ("clean_shutdown", "set_memory_limits", "set_actions_after_crash"):
        assert message(name).has_async, name


def test_errors_have_no_repeats() -> None:
    for msg in MESSAGES.values():
        assert len(set(msg.errors)) == len(msg.errors), msg.name


# ---------------------------------------------------------------------------------------------
# (c) VM.create's record


def test_required_create_fields_are_the_9_1_list() -> None:
    assert required_create_fields() == REQUIRED_9_1


def test_create_fields_are_rw_and_constructor_fields() -> None:
    names = {f.name for f in create_fields()}
    rows = spec_field_rows()
    assert names == {n for n, (_, q) in rows.items() if q in ("RW", "RO/constructor")}
    assert names == set(REQUIRED_9_1) | set(OPTIONAL_9_1)


def test_create_defaults_are_the_9_1_table() -> None:
    defaults = {f.name: f.default for f in create_fields() if f.has_default}
    assert defaults == OPTIONAL_9_1
    for name, value in defaults.items():
        assert type(value) is type(OPTIONAL_9_1[name]), name


def test_only_constructor_fields_have_defaults() -> None:
    for spec in FIELDS.values():
        if spec.qualifier == "RO/runtime":
            assert not spec.has_default, spec.name


# ---------------------------------------------------------------------------------------------
# (d) roles


def test_roles_at_least() -> None:
    assert roles_at_least("vm-operator") == (
        "pool-admin",
        "pool-operator",
        "vm-power-admin",
        "vm-admin",
        "vm-operator",
    )
    assert roles_at_least("pool-admin") == ("pool-admin",)
    assert roles_at_least("read-only") == ROLES
    assert "client-cert" in roles_at_least("read-only")
    with pytest.raises(ValueError, match="unknown role"):
        roles_at_least("root")


# ---------------------------------------------------------------------------------------------
# (e) message kinds


@pytest.mark.parametrize(
    ("name", "kind", "target"),
    [
        ("get_name_label", MessageKind.GET_FIELD, "name_label"),
        ("get_power_state", MessageKind.GET_FIELD, "power_state"),
        ("set_name_label", MessageKind.SET_FIELD, "name_label"),
        ("set_is_a_template", MessageKind.SET_FIELD, "is_a_template"),
        ("set_tags", MessageKind.SET_FIELD, "tags"),
        # Pattern-based: custom messages that fit a field pattern are classified by it.
        ("set_memory_dynamic_min", MessageKind.SET_FIELD, "memory_dynamic_min"),
        ("set_VCPUs_max", MessageKind.SET_FIELD, "VCPUs_max"),
        ("set_ha_restart_priority", MessageKind.SET_FIELD, "ha_restart_priority"),
        ("add_to_other_config", MessageKind.MAP_ADD, "other_config"),
        ("add_to_blocked_operations", MessageKind.MAP_ADD, "blocked_operations"),
        ("add_to_NVRAM", MessageKind.MAP_ADD, "NVRAM"),
        ("remove_from_platform", MessageKind.MAP_REMOVE, "platform"),
        ("add_tags", MessageKind.SET_ADD, "tags"),
        ("remove_tags", MessageKind.SET_REMOVE, "tags"),
        ("get_record", MessageKind.GET_RECORD, None),
        ("get_all", MessageKind.GET_ALL, None),
        ("get_all_records", MessageKind.GET_ALL_RECORDS, None),
        ("get_by_uuid", MessageKind.GET_BY_UUID, None),
        ("get_by_name_label", MessageKind.GET_BY_NAME_LABEL, None),
        ("start", MessageKind.SPECIAL, None),
        ("set_memory_limits", MessageKind.SPECIAL, None),
        ("set_memory", MessageKind.SPECIAL, None),
        ("add_to_VCPUs_params_live", MessageKind.SPECIAL, None),
        ("set_VCPUs_number_live", MessageKind.SPECIAL, None),
        ("get_boot_record", MessageKind.SPECIAL, None),
        ("create", MessageKind.SPECIAL, None),
        ("destroy", MessageKind.SPECIAL, None),
    ],
)
def test_kind_of(name: str, kind: MessageKind, target: str | None) -> None:
    assert kind_of(message(name)) == (kind, target)


def test_kind_of_needs_the_parameter_shape() -> None:
    def msg(name: str, *types: XType, returns: str = "void") -> Message:
        params = tuple(Param(f"p{i}", t) for i, t in enumerate(types))
        return Message(name, params, parse_type(returns), "read-only")

    string = parse_type("string")
    assert kind_of(msg("set_name_label", VM_REF))[0] is MessageKind.SPECIAL
    assert kind_of(msg("set_name_label", VM_REF, parse_type("int")))[0] is MessageKind.SPECIAL
    assert kind_of(msg("get_name_label", VM_REF, returns="int"))[0] is MessageKind.SPECIAL
    assert kind_of(msg("add_to_tags", VM_REF, string, string))[0] is MessageKind.SPECIAL
    assert kind_of(msg("get_record", string))[0] is MessageKind.SPECIAL
    assert kind_of(msg("get_all", VM_REF))[0] is MessageKind.SPECIAL


def test_exactly_the_field_kinds_name_a_field() -> None:
    field_kinds = {
        MessageKind.GET_FIELD,
        MessageKind.SET_FIELD,
        MessageKind.MAP_ADD,
        MessageKind.MAP_REMOVE,
        MessageKind.SET_ADD,
        MessageKind.SET_REMOVE,
    }
    for msg in MESSAGES.values():
        kind, target = kind_of(msg)
        assert (target is not None) == (kind in field_kinds), msg.name
        assert target is None or target in FIELDS


# ---------------------------------------------------------------------------------------------
# (f) generation and enums


def test_generated_module_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("field_defaults", "domain_type", "xen"),
        ("field_defaults", "uuid", ""),
        ("param_defaults", "start", {"start_paused": False}),
        ("param_defaults", "no_such_message", {"x": 1}),
    ],
)
def test_generator_rejects_an_inconsistent_overlay(
    tmp_path: Path, section: str, key: str, value: object
) -> None:
    overlay = json.loads(OVERLAY.read_text(encoding="utf-8"))
    overlay[section][key] = value
    broken = tmp_path / "overlay.json"
    broken.write_text(json.dumps(overlay), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--overlay", str(broken)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "gen_catalogue:" in result.stderr


def test_generated_module_is_stable_under_the_formatter() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--diff", str(DATA_MODULE)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_vm_operations_contains_every_internal_op_of_2_1() -> None:
    assert set(ENUMS["vm_operations"]) >= INTERNAL_OPS_2_1


def test_the_2_1_list_matches_the_semantics_document() -> None:
    if not SEMANTICS.is_file():
        pytest.skip("../shared/spec is not available here")
    text = SEMANTICS.read_text(encoding="utf-8")
    table = text.split("### 2.1", 1)[1].split("### 2.2", 1)[0]
    ops: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            ops.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    assert ops == INTERNAL_OPS_2_1


def test_enums_cover_every_enum_type() -> None:
    def enums_in(xtype: XType) -> set[str]:
        inner = {xtype.name} if xtype.kind == "enum" else set()
        for sub in (xtype.key, xtype.item):
            if sub is not None:
                inner |= enums_in(sub)
        return inner

    types = [f.type for f in FIELDS.values()]
    types += [m.returns for m in MESSAGES.values()]
    types += [p.type for m in MESSAGES.values() for p in m.params]
    used = set().union(*(enums_in(t) for t in types))
    assert used == set(ENUMS)
    assert ENUMS["vm_power_state"] == ("Halted", "Paused", "Running", "Suspended")
    assert ENUMS["on_normal_exit"] == ("destroy", "restart")
    assert field("actions_after_softreboot").default in ENUMS["on_softreboot_behavior"]
    assert field("domain_type").default in ENUMS["domain_type"]


def test_catalogue_data_imports_only_the_schema_layer() -> None:
    tree = ast.parse(DATA_MODULE.read_text(encoding="utf-8"))
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not any(isinstance(node, ast.Import) for node in ast.walk(tree))
    assert imported <= {"__future__", "models.schema", "models.outcome"}
    assert DATA_MODULE.read_text(encoding="utf-8").startswith('"""The XenAPI VM class as data.')


def test_overlay_records_a_source_for_every_item() -> None:
    overlay = json.loads(OVERLAY.read_text(encoding="utf-8"))
    sources = overlay["_sources"]
    for key in overlay:
        if not key.startswith("_"):
            assert any(s == key or s.startswith(key + ".") for s in sources), key


def test_public_api() -> None:
    assert set(catalogue.__all__) == {
        "ENUMS",
        "FIELDS",
        "MESSAGES",
        "MessageKind",
        "create_fields",
        "field",
        "kind_of",
        "message",
        "required_create_fields",
        "roles_at_least",
    }
