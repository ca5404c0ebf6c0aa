"""Ported from xapi's ocaml/tests/test_no_migrate.ml.

A running VM whose ``platform:nomigrate`` or ``platform:nested-virt`` was true at boot is immobile:
suspend, checkpoint, pool_migrate and migrate_send fail VM_IS_IMMOBILE under the strict check
(``VM.assert_operation_valid``). The test's ``force`` cases use strict=false, which no message
reaches with these ops over the wire; they are not ported.
"""

from __future__ import annotations

import pytest

from models.outcome import Failure
from tests.xapi.conftest import Api

OPS = ("suspend", "checkpoint", "pool_migrate", "migrate_send")
CASES = [  # (nested virt, nomigrate, permitted) of test_no_migrate's table, force=false
    (False, False, True),
    (False, True, False),
    (True, False, False),
    (True, True, False),
]


def _running_pv(api: Api, nested: bool, nomigrate: bool) -> str:
    platform = {"nested-virt": str(nested).lower(), "nomigrate": str(nomigrate).lower()}
    gib = str(2**30)
    vm = api.new_vm(
        HVM_boot_policy="",
        domain_type="pv",
        platform=platform,
        memory_dynamic_min=gib,  # nested virt needs memory pinned at static max to start
        memory_static_min=gib,
    )
    api.ok("VM.start", vm, False, False)
    return vm


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(("nested", "nomigrate", "permitted"), CASES)
def test_no_migrate(api: Api, op: str, nested: bool, nomigrate: bool, permitted: bool) -> None:
    """test_no_migrate_00..03 (suspend, checkpoint, pool_migrate, migrate_send), force=false."""
    vm = _running_pv(api, nested, nomigrate)
    outcome = api.call("VM.assert_operation_valid", vm, op)
    if permitted:
        assert not (isinstance(outcome, Failure) and outcome.code == "VM_IS_IMMOBILE"), outcome
    else:
        assert api.fails("VM.assert_operation_valid", vm, op) == Failure("VM_IS_IMMOBILE", (vm,))


def test_no_migrate_reads_the_flag_captured_at_boot(api: Api) -> None:
    """test_no_migrate sets VM_metrics.nomigrate, the value xenopsd captured at boot
    (xapi_vm_lifecycle.ml ``nomigrate``): a later platform change does not count until the
    next boot."""
    vm = _running_pv(api, nested=False, nomigrate=False)
    api.ok("VM.remove_from_platform", vm, "nomigrate")
    api.ok("VM.add_to_platform", vm, "nomigrate", "true")
    assert api.ok("VM.assert_operation_valid", vm, "suspend") == ""
    api.ok("VM.hard_reboot", vm)
    assert api.fails("VM.assert_operation_valid", vm, "suspend").code == "VM_IS_IMMOBILE"
