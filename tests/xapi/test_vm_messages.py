"""VM messages whose answers xapi's own tests do not cover, read from its source instead.

Each names the function it follows: xapi_vm.ml (NOT_IMPLEMENTED, call_plugin and its rate limit), xenops_server.ml
with xapi_xenops.ml (live VCPU changes). Each runs against the model and the embedded server over
both protocols.
"""

from __future__ import annotations

import pytest

from models.outcome import Failure, Success
from tests.xapi.conftest import Api, login_as, make_api
from tests.xapi.test_vm import DEFAULTS

PLUGIN = "guest-agent-operation"


@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("send_sysrq", ("b",)),
        ("send_trigger", ("reset",)),
        ("add_to_VCPUs_params_live", ("weight", "512")),
    ],
)
def test_not_implemented_after_the_operation_check(
    api: Api, message: str, args: tuple[str, ...]
) -> None:
    """xapi_vm.ml send_sysrq, send_trigger, add_to_VCPUs_params_live: message_forwarding.ml
    checks the operation (a running VM only), then xapi raises NOT_IMPLEMENTED [name]."""
    halted = api.new_vm()
    assert api.fails(f"VM.{message}", halted, *args).code == "VM_BAD_POWER_STATE"
    running = api.in_state("Running")
    assert api.fails(f"VM.{message}", running, *args) == Failure("NOT_IMPLEMENTED", (message,))


def test_query_services_is_not_implemented_on_a_system_domain(api: Api) -> None:
    """xapi_vm.ml query_services: NOT_IMPLEMENTED once xapi_vm_lifecycle.ml's check passes
    (other_config:is_system_domain=true, and not a control domain)."""
    plain = api.new_vm()
    assert api.fails("VM.query_services", plain) == Failure("NOT_SYSTEM_DOMAIN", (plain,))
    system = api.new_vm(other_config={"is_system_domain": "true"})
    assert api.fails("VM.query_services", system) == Failure("NOT_IMPLEMENTED", ("query_services",))


@pytest.mark.parametrize("asked", ["0", "3", "-1"])
def test_live_vcpus_out_of_range_names_the_maximum(api: Api, asked: str) -> None:
    """xenops_server.ml VM_set_vcpus raises Invalid_vcpus with the VM's vcpu_max, and
    xapi_xenops.ml set_vcpus answers INVALID_VALUE [rule; that maximum], not the number asked."""
    vm = api.in_state("Running", VCPUs_max="2", VCPUs_at_startup="1")
    assert api.fails("VM.set_VCPUs_number_live", vm, asked) == Failure(
        "INVALID_VALUE", ("VCPU values must satisfy: 0 < VCPUs ≤ VCPUs_max", "2")
    )
    assert api.int(vm, "VCPUs_at_startup") == 1


def test_live_vcpus_in_range_become_the_startup_count(api: Api) -> None:
    """xapi_xenops.ml set_vcpus: VCPUs_at_startup takes the new number."""
    vm = api.in_state("Running", VCPUs_max="2", VCPUs_at_startup="1")
    assert isinstance(api.call("VM.set_VCPUs_number_live", vm, "2"), Success)
    assert api.int(vm, "VCPUs_at_startup") == 2


def _failed(text: str) -> tuple[str, str, str]:
    return ("failed to find fn", text, text)


@pytest.mark.parametrize(
    ("plugin", "fn", "args", "expected"),
    [
        ("echo", "main", {}, Failure("XENAPI_MISSING_PLUGIN", ("echo",))),
        (
            PLUGIN,
            "nothing",
            {},
            Failure(
                "XENAPI_PLUGIN_FAILURE",
                _failed(f'The requested fn "nothing" could not be found in plugin "{PLUGIN}".'),
            ),
        ),
        (
            PLUGIN,
            "request-rdp-on",
            {},
            Failure(
                "XENAPI_PLUGIN_FAILURE",
                (
                    "failed to execute fn",
                    *[
                        f'The requested fn "request-rdp-on" of plugin "{PLUGIN}" could not be '
                        "executed for lack of guest agent control feature."
                    ]
                    * 2,
                ),
            ),
        ),
        (PLUGIN, "run-script", {"script": "ls"}, Failure("FEATURE_RESTRICTED")),
    ],
    ids=["other plugin", "unknown fn", "rdp without feature-ts2", "run-script not allowed"],
)
def test_call_plugin_rules(
    api: Api, plugin: str, fn: str, args: dict[str, str], expected: Failure
) -> None:
    """xapi_vm.ml call_plugin: one plugin, guest-agent-operation; its functions request-rdp-on,
    request-rdp-off (need the guest's feature-ts2) and run-script (needs the pool's
    allow_guest_agent_run_script); any other fails naming it."""
    vm = api.in_state("Running")
    assert api.fails("VM.call_plugin", vm, plugin, fn, args) == expected


def _rate_limited(api: Api, vm: str) -> float:
    """The wait VM_CALL_PLUGIN_RATE_LIMIT names for ``vm``, its other parameters checked."""
    refused = api.fails("VM.call_plugin", vm, PLUGIN, "frob", {})
    assert refused.code == "VM_CALL_PLUGIN_RATE_LIMIT"
    assert refused.params[:2] == (vm, "10.")
    return float(refused.params[2])


def test_call_plugin_rate_limit(api: Api) -> None:
    """xapi_vm.ml record_call_plugin_latest (xapi_globs.ml vm_call_plugin_interval = 10.):
    a second guest-agent-operation call on a VM within 10 s of the last one let through is
    refused with [VM; "10."; the seconds left]; a call let through counts though its function
    then fails; the limit is per VM."""
    vm, other = api.in_state("Running"), api.in_state("Running")
    assert api.fails("VM.call_plugin", vm, PLUGIN, "frob", {}).params[0] == "failed to find fn"
    assert 0 < _rate_limited(api, vm) <= 10
    assert api.fails("VM.call_plugin", other, PLUGIN, "frob", {}).params[0] == "failed to find fn"
    assert 0 < _rate_limited(api, vm) <= 10


def test_call_plugin_stopped_before_the_rate_limit_does_not_count(api: Api) -> None:
    """xapi_vm.ml call_plugin: another plugin fails before record_call_plugin_latest, so the
    next guest-agent-operation call goes through."""
    vm = api.in_state("Running")
    assert api.fails("VM.call_plugin", vm, "frob", "fn", {}).code == "XENAPI_MISSING_PLUGIN"
    assert api.fails("VM.call_plugin", vm, PLUGIN, "frob", {}).params[0] == "failed to find fn"


SCRIPT = {"username": "u", "password": "p", "script": "ls"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {"username": "u", "script": "ls"},
            Failure(
                "XENAPI_PLUGIN_FAILURE", ("missing argument", "", "Argument password is required.")
            ),
        ),
        (
            {**SCRIPT, "script": "x" * 1025},
            Failure(
                "XENAPI_PLUGIN_FAILURE",
                ("length restriction", "", "The script length must not exceed 1024 bytes"),
            ),
        ),
        (SCRIPT, None),
    ],
    ids=["missing password", "script too long", "runs"],
)
def test_run_script_rules(api: Api, args: dict[str, str], expected: Failure | None) -> None:
    """xapi_vm.ml run_script, once the pool allows it: username, password and script required,
    a script of at most 1024 bytes."""
    pool = api.ok("pool.get_all")[0]
    api.ok("pool.add_to_other_config", pool, "allow_guest_agent_run_script", "true")
    vm = api.in_state("Running")
    outcome = api.call("VM.call_plugin", vm, PLUGIN, "run-script", args)
    if expected is None:
        assert isinstance(outcome, Success)
    else:
        assert outcome == expected


def test_run_script_needs_vm_power_admin(api: Api) -> None:
    """xapi_vm.ml run_script: call_plugin is open to vm-operator, but running a script needs
    the permission of VM.checkpoint (vm-power-admin), checked by hand with its own message."""
    pool = api.ok("pool.get_all")[0]
    api.ok("pool.add_to_other_config", pool, "allow_guest_agent_run_script", "true")
    vm = api.in_state("Running")
    operator = login_as(api, "operator", "op-pw")
    assert operator.call("VM.call_plugin", vm, PLUGIN, "run-script", SCRIPT) == Failure(
        "RBAC_PERMISSION_DENIED",
        ("vm.call_plugin", "No permission to run script, must have VM power admin role or higher."),
    )


def _numbers(count: int) -> tuple[str, ...]:
    return tuple(str(n) for n in range(count))


def test_allowed_vbd_devices(api: Api) -> None:
    """xapi_vm_helpers.ml allowed_VBD_devices: disks 0..254 for HVM and PV guests, 0..255 for
    a control domain, less those a VBD uses (a new VM has none)."""
    vm = api.new_vm()
    assert api.ok("VM.get_allowed_VBD_devices", vm) == _numbers(255)
    api.ok("VM.set_HVM_boot_policy", vm, "")
    assert api.ok("VM.get_allowed_VBD_devices", vm) == _numbers(255)
    records = api.ok("VM.get_all_records")
    dom0 = next(ref for ref, r in records.items() if r["is_control_domain"])
    assert api.ok("VM.get_allowed_VBD_devices", dom0) == _numbers(256)


@pytest.mark.parametrize(
    ("xapi_version", "count"), [("", 16), ("25.29", 16), ("25.28", 7), ("24.19", 7)]
)
@pytest.mark.parametrize("backend", ["model", "xmlrpc", "jsonrpc"])
def test_allowed_vif_devices_by_release(backend: str, xapi_version: str, count: int) -> None:
    """xapi_vm_helpers.ml allowed_VIF_devices: 0..15 since xapi 25.29 (947e4965be, "Raise
    allowed_VIF limit from 7 to 16"), 0..6 before; the release followed decides."""
    api = make_api(backend, xapi_version)
    vm = api.new_vm()
    assert api.ok("VM.get_allowed_VIF_devices", vm) == _numbers(count)


GENERIC_BIOS = DEFAULTS
"""constants.ml generic_bios_strings (with standard_type11_strings), as test_vm.ml reads them."""


@pytest.mark.parametrize("message", ["start", "start_on"])
def test_first_boot_fills_in_generic_bios_strings(api: Api, message: str) -> None:
    """message_forwarding.ml start, start_on: consider_generic_bios_strings gives a VM without
    BIOS strings the generic ones; strings already set are kept."""
    host = api.ok("host.get_all")[0]
    args = (False, False) if message == "start" else (host, False, False)
    fresh, chosen = api.new_vm(), api.new_vm()
    api.ok("VM.set_bios_strings", chosen, {"bios-vendor": "ACME"})
    assert api.get(fresh, "bios_strings") == {}
    for vm in (fresh, chosen):
        api.ok(f"VM.{message}", vm, *args)
    assert api.get(fresh, "bios_strings") == GENERIC_BIOS
    assert api.get(chosen, "bios_strings")["bios-vendor"] == "ACME"


def test_copy_bios_strings_has_no_power_check_and_sets_affinity(api: Api) -> None:
    """xapi_vm_helpers.ml copy_bios_strings: strings not yet set (checked first), the host's
    copied, and the host becomes the VM's affinity; no operation or power-state check."""
    host = api.ok("host.get_all")[0]
    vm = api.in_state("Suspended")
    assert api.get(vm, "bios_strings") == GENERIC_BIOS  # filled in when it started
    assert api.fails("VM.copy_bios_strings", vm, "OpaqueRef:none") == Failure(
        "VM_BIOS_STRINGS_ALREADY_SET"
    )
    fresh = api.new_vm()
    assert isinstance(api.call("VM.copy_bios_strings", fresh, host), Success)
    assert api.get(fresh, "affinity") == host
