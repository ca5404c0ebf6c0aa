"""Edges of the model not reached by the other suites: setters' side branches, empty map keys,
control-domain static ranges, explicit domain types, task.cancel, and the registry's guards."""

from __future__ import annotations

import pytest

from models import catalogue, rpc
from models.checks import refresh
from models.errors import XenAPIError
from models.generic import generic_handler
from models.outcome import Failure, Success
from models.rpc import REGISTRY
from models.schema import Message, XType
from models.transition import Call, Ctx
from models.world import SessionInfo
from tests.models.helpers import GIB, driver

# ---- set_has_vendor_device, set_suspend_VDI, NVRAM (§10, §2.2) --------------------------------


def test_set_has_vendor_device_true_raises_the_platform_version_to_two() -> None:
    d = driver()
    ref = d.new_vm(has_vendor_device=False, hardware_platform_version="0")
    assert d.field(ref, "hardware_platform_version") == 0
    d.ok("VM.set_has_vendor_device", ref, True)
    assert d.field(ref, "has_vendor_device") is True
    assert d.field(ref, "hardware_platform_version") == 2


def test_set_has_vendor_device_true_keeps_a_higher_platform_version() -> None:
    d = driver()
    ref = d.new_vm(has_vendor_device=False, hardware_platform_version="5")
    d.ok("VM.set_has_vendor_device", ref, True)
    assert d.field(ref, "hardware_platform_version") == 5


def test_set_has_vendor_device_false_leaves_the_platform_version() -> None:
    d = driver()
    ref = d.new_vm()  # has_vendor_device defaults to true: version raised to 2 at create
    assert d.field(ref, "hardware_platform_version") == 2
    d.ok("VM.set_has_vendor_device", ref, False)
    assert d.field(ref, "has_vendor_device") is False
    assert d.field(ref, "hardware_platform_version") == 2


def test_set_suspend_VDI_on_a_suspended_vm_names_the_unknown_vdi() -> None:
    d = driver()
    ref = d.in_state("Suspended")
    image = d.field(ref, "suspend_VDI")
    assert d.fails("VM.set_suspend_VDI", ref, "OpaqueRef:vdi") == Failure(
        "HANDLE_INVALID", ("VDI", "OpaqueRef:vdi")
    )
    assert d.field(ref, "suspend_VDI") == image
    # xapi_vm.ml set_suspend_VDI acts only when the VDI differs: its own changes nothing
    d.ok("VM.set_suspend_VDI", ref, image)
    assert d.field(ref, "suspend_VDI") == image


def test_add_to_NVRAM_with_an_existing_key_is_a_duplicate() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.add_to_NVRAM", ref, "EFI-variables", "abc")
    assert d.fails("VM.add_to_NVRAM", ref, "EFI-variables", "abc") == Failure(
        "MAP_DUPLICATE_KEY", ("VM", "NVRAM", ref, "EFI-variables")
    )
    assert d.field(ref, "NVRAM") == {"EFI-variables": "abc"}


# ---- control domain static range (§6.2) ---------------------------------------------------------


def test_static_range_of_a_running_control_domain_requires_a_reboot() -> None:
    d = driver()
    dom0 = d.world.hosts[d.world.pool.master].control_domain
    assert d.field(dom0, "requires_reboot") is False
    d.ok("VM.set_memory_static_range", dom0, str(GIB), str(4 * GIB))
    assert d.field(dom0, "memory_static_min") == GIB
    assert d.field(dom0, "memory_static_max") == 4 * GIB
    assert d.field(dom0, "requires_reboot") is True
    assert d.field(dom0, "power_state") == "Running"


def test_static_range_of_a_control_domain_must_stay_pinned() -> None:
    d = driver()
    dom0 = d.world.hosts[d.world.pool.master].control_domain
    assert d.fails("VM.set_memory_static_range", dom0, str(GIB), str(8 * GIB)) == Failure(
        "MEMORY_CONSTRAINT_VIOLATION_MAXPIN", ("control domain",)
    )
    assert d.field(dom0, "requires_reboot") is False


def test_static_range_of_a_halted_vm_needs_no_reboot() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_memory_static_range", ref, str(GIB // 4), str(2 * GIB))
    assert d.field(ref, "requires_reboot") is False


# ---- VM.create with an explicit domain type (§9.1) ----------------------------------------------


@pytest.mark.parametrize("domain_type", ["pv", "hvm", "pvh", "pv_in_pvh"])
@pytest.mark.parametrize("policy", ["", "BIOS order"])
def test_create_keeps_an_explicit_domain_type(domain_type: str, policy: str) -> None:
    d = driver()
    ref = d.new_vm(domain_type=domain_type, HVM_boot_policy=policy)
    assert d.field(ref, "domain_type") == domain_type
    assert d.field(ref, "HVM_boot_policy") == policy


@pytest.mark.parametrize(("policy", "derived"), [("", "pv"), ("BIOS order", "hvm")])
def test_create_derives_an_unspecified_domain_type(policy: str, derived: str) -> None:
    d = driver()
    ref = d.new_vm(domain_type="unspecified", HVM_boot_policy=policy)
    assert d.field(ref, "domain_type") == derived


# ---- empty map keys (§3 MAP_DUPLICATE_KEY row) -------------------------------------------------


@pytest.mark.unconfirmed
@pytest.mark.parametrize(
    "method", ["VM.add_to_other_config", "VM.add_to_platform", "VM.add_to_xenstore_data"]
)
def test_an_empty_map_key_is_an_internal_error_unconfirmed_text(method: str) -> None:
    d = driver()
    ref = d.new_vm()
    field = method.removeprefix("VM.add_to_")
    before = d.field(ref, field)
    assert d.fails(method, ref, "", "v") == Failure("INTERNAL_ERROR", ("Db_exn.Empty_key_in_map",))
    assert d.field(ref, field) == before


# ---- task.cancel ---------------------------------------------------------------------------------


def test_task_cancel_of_a_finished_task_changes_nothing() -> None:
    d = driver()
    ref = d.new_vm()
    task = d.ok("Async.VM.start", ref, False, False)
    before = d.ok("task.get_record", task)
    assert before["status"] == "success"
    assert d.ok("task.cancel", task) == ""
    assert d.ok("task.get_record", task) == before
    assert d.field(ref, "power_state") == "Running"


def test_task_cancel_of_an_unknown_task() -> None:
    d = driver()
    assert d.fails("task.cancel", "OpaqueRef:notask") == Failure(
        "HANDLE_INVALID", ("task", "OpaqueRef:notask")
    )


# ---- public helpers whose guard branches no call path reaches ------------------------------------


def test_refresh_of_a_vm_that_no_longer_exists_returns_the_world_unchanged() -> None:
    d = driver()
    assert refresh(d.world, "OpaqueRef:gone") is d.world


def test_refresh_recomputes_allowed_operations() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_is_a_template", ref, True)
    d.ok("VM.add_to_other_config", ref, "default_template", "true")  # does not recompute (§8.3)
    assert "destroy" in d.field(ref, "allowed_operations")
    refreshed = refresh(d.world, ref).vms[ref]["allowed_operations"]
    assert isinstance(refreshed, tuple)
    assert "destroy" not in refreshed
    assert "clone" in refreshed
    assert "destroy" in d.field(ref, "allowed_operations")  # the old world is untouched


@pytest.mark.parametrize("name", ["start", "clone", "create", "destroy", "set_memory"])
def test_generic_handler_declines_messages_that_need_explicit_rules(name: str) -> None:
    assert generic_handler(catalogue.message(name)) is None


def test_generic_handler_serves_plain_getters() -> None:
    assert generic_handler(catalogue.message("get_name_label")) is not None


def test_a_removed_message_is_never_routed_to_real_behaviour() -> None:
    d = driver()
    entry = REGISTRY["VM.snapshot_with_quiesce"]
    assert entry.message.removed
    session = SessionInfo("root", "pool-admin", superuser=True)
    ctx = Ctx(d.world, d.session, session, Call("x", ()).now, "VM.snapshot_with_quiesce")
    with pytest.raises(XenAPIError) as caught:
        entry.handler(ctx, ("OpaqueRef:any", "name"))
    assert caught.value.failure() == Failure("MESSAGE_REMOVED", ())


def test_the_registry_refuses_a_message_without_rules_or_generic_form() -> None:
    message = Message("frobnicate", (), XType("void"), "read-only")
    with pytest.raises(LookupError) as caught:
        rpc._vm_entry(message)
    assert str(caught.value) == "VM.frobnicate has neither explicit rules nor a generic form"


def test_every_catalogue_message_has_an_entry() -> None:
    assert {m.wire_name for m in catalogue.MESSAGES.values()} <= set(REGISTRY)
    assert isinstance(driver().call("VM.get_all"), Success)
