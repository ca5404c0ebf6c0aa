"""Ported from xapi's ocaml/tests/test_vm_check_operation_error.ml.

What is observable on the wire: ``VM.assert_operation_valid`` runs check_operation_error with
strict=true; setters show their power-state checks. ``is_allowed_concurrently`` is observable
while another operation is in ``current_operations``: the tests put one there (as another
client's call in flight would) and ask assert_operation_valid.
"""

from __future__ import annotations

import pytest

from models import catalogue
from models.checks import update_vm
from models.outcome import Failure
from models.world import World
from tests.xapi.conftest import Api, ModelBackend, login_as
from tests.xapi.oracle import missing


def test_null_vdi_every_operation_is_checked_without_internal_error(api: Api) -> None:
    """test_null_vdi: check_operation_error answers every op (here: without a CD VBD)."""
    vm = api.new_vm()
    for op in catalogue.ENUMS["vm_operations"]:
        outcome = api.call("VM.assert_operation_valid", vm, op)
        assert not (isinstance(outcome, Failure) and outcome.code == "INTERNAL_ERROR"), op


def test_null_vdi_with_an_empty_cd_vbd(api: Api) -> None:
    """test_null_vdi, its setup: a read-only empty CD VBD whose VDI is null."""
    missing(api, "VBD.create", {}, reason="the model has no VBDs")


def test_vm_set_nvram_when_vm_is_running(api: Api) -> None:
    """test_vm_set_nvram when VM is running: VM_BAD_POWER_STATE [vm; halted; running]."""
    vm = api.new_vm()
    api.ok("VM.set_NVRAM", vm, {"EFI-variables": "AAAA"})
    api.ok("VM.start", vm, False, False)
    assert api.fails("VM.set_NVRAM", vm, {"EFI-variables": "BBBB"}) == Failure(
        "VM_BAD_POWER_STATE", (vm, "halted", "running")
    )
    assert api.get(vm, "NVRAM") == {"EFI-variables": "AAAA"}


def test_vm_set_nvram_efi_variables_when_vm_is_running(api: Api) -> None:
    """test_vm_set_nvram when VM is running: set_NVRAM_EFI_variables (hidden from the docs,
    called by varstored; message_forwarding.ml skips the power-state check) still updates
    NVRAM's EFI-variables, with update `no` as the test passes it."""
    vm = api.new_vm()
    api.ok("VM.set_NVRAM", vm, {"EFI-variables": "AAAA"})
    api.ok("VM.start", vm, False, False)
    api.ok("VM.set_NVRAM_EFI_variables", vm, "CCCC", "no")
    assert api.get(vm, "NVRAM") == {"EFI-variables": "CCCC"}


def test_set_nvram_efi_variables_is_for_the_local_superuser_only(api: Api) -> None:
    """datamodel_vm.ml set_NVRAM_EFI_variables: allowed_roles _R_LOCAL_ROOT_ONLY (no role):
    root's session (a local superuser) may call it, any role's is refused naming no role
    (rbac.ml: Xapi_role.get_by_permission_name_label finds none); its update parameter
    defaults to unspecified."""
    vm = api.new_vm()
    api.ok("VM.set_NVRAM_EFI_variables", vm, "DDDD")
    assert api.get(vm, "NVRAM") == {"EFI-variables": "DDDD"}
    admin = login_as(api, "admin", "admin-pw")
    assert admin.fails("VM.set_NVRAM_EFI_variables", vm, "EEEE") == Failure(
        "RBAC_PERMISSION_DENIED",
        (
            "vm.set_nvram_efi_variables",
            "No permission in user session. (Roles with this permission: )",
        ),
    )


@pytest.mark.parametrize("op", ["assert_operation_valid", "update_allowed_operations"])
def test_operation_checks_allowed(api: Api, op: str) -> None:
    """test_operation_checks_allowed: ops that check other ops are always allowed."""
    vm = api.new_vm()
    assert api.ok("VM.assert_operation_valid", vm, op) == ""


def test_migration_allowed_when_cbt_enabled_vdis_are_not_moved(api: Api) -> None:
    """test_migration_allowed_when_cbt_enabled_vdis_are_not_moved: migrate_send passes the
    check on a halted VM (the CBT VDI part needs VDIs, which the model lacks)."""
    vm = api.new_vm()
    assert api.ok("VM.assert_operation_valid", vm, "migrate_send") == ""


def test_sxm_allowed_when_rum(api: Api) -> None:
    """test_sxm_allowed_when_rum: migrate_send allowed while a rolling upgrade is in progress."""
    vm = api.new_vm()
    pool = api.ok("pool.get_all")[0]
    api.ok("pool.add_to_other_config", pool, "rolling_upgrade_in_progress", "x")
    assert api.ok("VM.assert_operation_valid", vm, "migrate_send") == ""
    api.ok("pool.remove_from_other_config", pool, "rolling_upgrade_in_progress")
    assert api.ok("VM.assert_operation_valid", vm, "migrate_send") == ""


CONCURRENCY = [
    pytest.param("snapshot", "", True, id="snapshot-alone"),
    pytest.param("snapshot", "checkpoint", True, id="snapshot-when-checkpoint"),
    pytest.param("migrate_send", "clean_reboot", False, id="migrate_send-when-clean_reboot"),
    pytest.param("clean_reboot", "migrate_send", True, id="clean_reboot-when-migrate_send"),
    pytest.param("hard_shutdown", "*", True, id="hard_shutdown-when-any-but-itself"),
    pytest.param("clean_shutdown", "*", False, id="clean_shutdown-only-when-migrate_send"),
    pytest.param("hard_reboot", "*", True, id="hard_reboot-when-any-but-hard_shutdown/reboot"),
]


IN_FLIGHT_TASK = "OpaqueRef:0e0e0e0e-in-flight-task-of-another-client"


def _in_flight(api: Api, vm: str, current: str) -> None:
    """``current`` in the VM's current_operations, as while another client's call runs."""

    def marked(world: World) -> World:
        return update_vm(world, vm, {"current_operations": {IN_FLIGHT_TASK: current}})

    if isinstance(api.backend, ModelBackend):
        api.backend.world = marked(api.backend.world)
    else:
        api.backend.app.state.update(marked)


def _allowed_beside(api: Api, op: str, current: str) -> bool:
    vm = api.in_state("Running")
    _in_flight(api, vm, current)
    outcome = api.call("VM.assert_operation_valid", vm, op)
    if isinstance(outcome, Failure):
        assert outcome.code == "OTHER_OPERATION_IN_PROGRESS", (op, current, outcome)
        return False
    return True


@pytest.mark.parametrize(("op", "current", "allowed"), CONCURRENCY)
def test_is_allowed_concurrently(api: Api, op: str, current: str, allowed: bool) -> None:
    """allowed_specs / test_allow_concurrently: which ops may run beside a current one, seen
    through VM.assert_operation_valid on a Running VM with that op in current_operations ("*":
    each of the vm_operations in turn; hard_shutdown's and hard_reboot's exceptions as there)."""
    vm = api.in_state("Running")
    if not current:
        assert api.ok("VM.assert_operation_valid", vm, "snapshot") == ""
        return
    if current != "*":
        assert _allowed_beside(api, op, current) == allowed
        return
    wrong = []
    for other in catalogue.ENUMS["vm_operations"]:
        expected = _expected_beside_any(op, other)
        if _allowed_beside(api, op, other) != expected:
            wrong.append(other)
    assert wrong == []


def _expected_beside_any(op: str, current: str) -> bool:
    """allowed_specs' three lists over API.vm_operations__all."""
    if op == "hard_shutdown":
        return current != "hard_shutdown"
    if op == "hard_reboot":
        return current not in ("hard_shutdown", "hard_reboot")
    return current == "migrate_send"  # clean_shutdown
