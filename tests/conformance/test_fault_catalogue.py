"""Every seeded fault, both sides, on the model: the honest transition answers as xapi does,
the faulty one answers what the catalogue says. No server, no socket: these run in milliseconds.

Each scenario builds a world through the honest model, then makes one call (and optionally one
read after it) on both transitions from that same world.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from conformance.areas.machines import AREAS
from conformance.areas.strategies import vm_record
from conformance.areas.sweeps import NAMELESS_VDI
from conformance.faults import (
    FAULTS,
    TOPICS,
    WronglyTyped,
    compose,
    lookup,
    races,
    wire_quirks,
)
from conformance.faults.events import EventFault
from conformance.runner.cli import main
from conformance.wire import XAPI_TYPING, Quirks, jsonrpc, xmlrpc
from models.checks import update_vm
from models.outcome import Encoded, Failure, Outcome, Success, Value
from models.records import EPOCH
from models.rpc import apply
from models.transition import Call
from models.world import NULL_REF, Account, World
from tests.models.helpers import GIB, MIB, Driver, driver

OK = Success("")
LATER = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
LOGIN = "session.login_with_password"
AUTH_FAILED = "SESSION_AUTHENTICATION_FAILED"
RESULT = object()
"""Stands, in a read's arguments, for the value the faulty call's honest twin returned."""
ACCOUNTS = (Account("ro", "ro-pw", "read-only"), Account("op", "op-pw", "vm-operator"))


@dataclass(frozen=True)
class Scenario:
    """One call on both sides, what xapi answers (``expected``) and what the fault answers
    (``wrong``); either may be None for "whatever it is, as long as the two differ". With
    ``read``, the outcomes compared are those of that read, made after the call."""

    call: tuple[object, ...]
    expected: Value | Outcome | None
    wrong: Value | Outcome | None
    read: tuple[object, ...] | None = None
    session: str | None = None
    read_session: str | None = None
    sessionless: bool = False
    """The call takes no session (session.login_with_password)."""
    now: datetime.datetime = EPOCH
    """The server's clock at the call."""


def _login_refused(
    user: str, password: str, wrong: Outcome | None = None
) -> Callable[[Driver], Scenario]:
    """A login xapi refuses (SESSION_AUTHENTICATION_FAILED [user, reason]); ``wrong``: what
    the fault answers (None: anything else)."""
    refused = Failure(AUTH_FAILED, (user, "Authentication failure"))
    return lambda _d: Scenario(
        (LOGIN, user, password, "2.21", ""), refused, wrong, sessionless=True
    )


def _bps(vm: str, expected: str, actual: str) -> Failure:
    return Failure("VM_BAD_POWER_STATE", (vm, expected, actual))


def _pool_default_template(d: Driver) -> str:
    """A template of the pool's own (is_default_template, which no client can set)."""
    template = d.new_vm(is_a_template=True)
    d.world = update_vm(d.world, template, {"is_default_template": True}, recompute=False)
    return template


def _blocked(d: Driver, state: str, op: str) -> str:
    vm = d.in_state(state)
    d.ok("VM.add_to_blocked_operations", vm, op, "R")
    return vm


def _retyped(d: Driver) -> str:
    """A PV guest made HVM (VM.set_domain_type leaves its memory_overhead as it was)."""
    vm = d.new_vm(HVM_boot_policy="")
    d.ok("VM.set_domain_type", vm, "hvm")
    return vm


def _template(d: Driver, **other: str) -> str:
    return d.new_vm(is_a_template=True, other_config=other)


def _role(d: Driver, name: str) -> str:
    return d.login(name, f"{name}-pw")


def _rbac(permission: str, roles: str) -> Failure:
    text = f"No permission in user session. (Roles with this permission: {roles})"
    return Failure("RBAC_PERMISSION_DENIED", (permission, text))


_ALL_BUT_RO = "pool-admin, pool-operator, vm-power-admin, vm-admin, vm-operator"

SCENARIOS: dict[str, Callable[[Driver], Scenario]] = {
    "wrong-state-allowed": lambda d: (
        (vm := d.in_state("Paused"))
        and Scenario(("VM.suspend", vm), _bps(vm, "running", "paused"), OK)
    ),
    "start-paused-ignored": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.start", vm, True, False), "Paused", "Running", read=("VM.get_power_state", vm)
        )
    ),
    "suspend-keeps-host": lambda d: (
        (vm := d.in_state("Running"))
        and Scenario(("VM.suspend", vm), NULL_REF, None, read=("VM.get_resident_on", vm))
    ),
    "shutdown-keeps-domid": lambda d: (
        (vm := d.in_state("Running"))
        and Scenario(("VM.hard_shutdown", vm), -1, None, read=("VM.get_domid", vm))
    ),
    "bios-strings-unfilled": lambda d: (
        (vm := d.new_vm())
        and Scenario(("VM.start", vm, False, False), None, {}, read=("VM.get_bios_strings", vm))
    ),
    "start-fails": lambda d: (
        (vm := d.new_vm())
        and Scenario(("VM.start", vm, False, False), OK, Failure("NO_HOSTS_AVAILABLE", ()))
    ),
    "boot-checks-lax": lambda d: (
        (vm := d.new_vm())
        and d.ok("VM.set_hardware_platform_version", vm, 3) == ""
        and (host := d.world.pool.master)
        and Scenario(
            ("VM.assert_can_boot_here", vm, host),
            Failure(
                "VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION",
                (host, "[0; 1; 2]", vm, "3"),
            ),
            OK,
        )
    ),
    "possible-hosts-all": lambda d: (
        (vm := d.new_vm())
        and d.ok("VM.set_hardware_platform_version", vm, 3) == ""
        and Scenario(("VM.get_possible_hosts", vm), (), tuple(d.world.hosts))
    ),
    "unpause-running-accepted": lambda d: (
        (vm := d.in_state("Running"))
        and Scenario(("VM.unpause", vm), _bps(vm, "paused", "running"), OK)
    ),
    "hard-shutdown-suspended-refused": lambda d: (
        (vm := d.in_state("Suspended"))
        and Scenario(("VM.hard_shutdown", vm), OK, _bps(vm, "paused, running", "suspended"))
    ),
    "wrong-error-param": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.hard_shutdown", vm),
            _bps(vm, "paused, suspended, running", "halted"),
            _bps(vm, "paused;suspended;running", "halted"),
        )
    ),
    "power-state-capitalised": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.clean_shutdown", vm), _bps(vm, "running", "halted"), _bps(vm, "running", "Halted")
        )
    ),
    "handle-invalid-lowercase": lambda d: Scenario(
        ("VM.get_record", NULL_REF),
        Failure("HANDLE_INVALID", ("VM", NULL_REF)),
        Failure("HANDLE_INVALID", ("vm", NULL_REF)),
    ),
    "blocked-reason-lost": lambda d: (
        (vm := _blocked(d, "Halted", "start"))
        and Scenario(
            ("VM.start", vm, False, False),
            Failure("OPERATION_BLOCKED", (vm, "R")),
            Failure("OPERATION_BLOCKED", (vm, "start")),
        )
    ),
    "template-error-code": lambda d: (
        (vm := _template(d))
        and Scenario(
            ("VM.start", vm, False, False),
            Failure("VM_IS_TEMPLATE", (vm, "start")),
            Failure("OPERATION_NOT_ALLOWED", ("VM is a template: start",)),
        )
    ),
    "map-duplicate-uuid": lambda d: (
        (vm := d.new_vm(other_config={"k": "v"}))
        and Scenario(
            ("VM.add_to_other_config", vm, "k", "w"),
            Failure("MAP_DUPLICATE_KEY", ("VM", "other_config", vm, "k")),
            Failure("MAP_DUPLICATE_KEY", ("VM", "other_config", d.field(vm, "uuid"), "k")),
        )
    ),
    "memory-order-unchecked": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.set_memory_dynamic_range", vm, str(768 * MIB), str(640 * MIB)),
            Failure("MEMORY_CONSTRAINT_VIOLATION_ORDER"),
            OK,
        )
    ),
    "target-not-following": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.set_memory_dynamic_range", vm, str(384 * MIB), str(768 * MIB)),
            384 * MIB,
            None,
            read=("VM.get_memory_target", vm),
        )
    ),
    "static-max-unchecked": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.set_memory_static_max", vm, str(768 * MIB)),
            Failure("MEMORY_CONSTRAINT_VIOLATION_ORDER"),
            OK,
        )
    ),
    "vcpus-unchecked": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.set_VCPUs_at_startup", vm, "5"),
            Failure(
                "INVALID_VALUE", ("VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max", "5")
            ),
            OK,
        )
    ),
    "dynamic-range-running-refused": lambda d: (
        (vm := d.in_state("Running"))
        and Scenario(
            ("VM.set_memory_dynamic_range", vm, str(512 * MIB), str(GIB)),
            OK,
            _bps(vm, "halted", "running"),
        )
    ),
    "blocked-ignored": lambda d: (
        (vm := _blocked(d, "Halted", "start"))
        and Scenario(("VM.start", vm, False, False), Failure("OPERATION_BLOCKED", (vm, "R")), OK)
    ),
    "blocked-checked-late": lambda d: (
        (vm := _blocked(d, "Halted", "unpause"))
        and Scenario(
            ("VM.unpause", vm),
            Failure("OPERATION_BLOCKED", (vm, "R")),
            _bps(vm, "paused", "halted"),
        )
    ),
    "migrate-stays": lambda d: (
        (vm := d.in_state("Running"))
        and (other := _other_host(d, vm))
        and Scenario(
            ("VM.pool_migrate", vm, other, {}), None, None, read=("VM.get_resident_on", vm)
        )
    ),
    "affinity-ignored": lambda d: (
        (vm := d.new_vm(affinity=sorted(d.world.hosts)[-1]))
        and Scenario(
            ("VM.start", vm, False, False),
            sorted(d.world.hosts)[-1],
            None,
            read=("VM.get_resident_on", vm),
        )
    ),
    "allowed-ops-stale": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.start", vm, False, False), None, None, read=("VM.get_allowed_operations", vm)
        )
    ),
    "assert-valid-lax": lambda d: (
        (vm := d.new_vm())
        and Scenario(("VM.assert_operation_valid", vm, "unpause"), _bps(vm, "paused", "halted"), OK)
    ),
    "unblock-ignored": lambda d: (
        (vm := _blocked(d, "Halted", "start"))
        and Scenario(
            ("VM.remove_from_blocked_operations", vm, "start"),
            {},
            {"start": "R"},
            read=("VM.get_blocked_operations", vm),
        )
    ),
    "template-startable": lambda d: (
        (vm := _template(d))
        and Scenario(("VM.start", vm, False, False), Failure("VM_IS_TEMPLATE", (vm, "start")), OK)
    ),
    "default-template-destroyable": lambda d: (
        (vm := _template(d, default_template="true"))
        and Scenario(("VM.destroy", vm), Failure("VM_IS_TEMPLATE", (vm, "destroy")), OK)
    ),
    "snapshot-of-unset": lambda d: (
        (vm := d.new_vm())
        and Scenario(("VM.snapshot", vm, "s"), vm, NULL_REF, read=("VM.get_snapshot_of", RESULT))
    ),
    "revert-orphan-refused": lambda d: (
        (vm := d.new_vm())
        and (snap := d.ok("VM.snapshot", vm, "s"))
        and d.ok("VM.destroy", vm) == ""
        and Scenario(("VM.revert", snap), OK, Failure("VM_REVERT_FAILED", (snap, vm)))
    ),
    "checkpoint-without-memory": lambda d: (
        (vm := d.in_state("Running"))
        and Scenario(
            ("VM.checkpoint", vm, "c"), "Suspended", "Halted", read=("VM.get_power_state", RESULT)
        )
    ),
    "stale-record": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.set_name_label", vm, "renamed"),
            "renamed",
            "test-vm",
            read=("VM.get_name_label", vm),
        )
    ),
    "tags-duplicated": lambda d: (
        (vm := d.new_vm(tags=["a"]))
        and Scenario(("VM.add_tags", vm, "a"), ("a",), ("a", "a"), read=("VM.get_tags", vm))
    ),
    "record-missing-field": lambda d: (
        (vm := d.new_vm()) and Scenario(("VM.get_record", vm), None, None)
    ),
    "param-count-with-session": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.start", vm),
            Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", ("VM.start", "3", "1")),
            Failure("MESSAGE_PARAMETER_COUNT_MISMATCH", ("VM.start", "4", "2")),
        )
    ),
    "unknown-method-bare": lambda d: Scenario(
        ("VM.frobnicate",),
        Failure("MESSAGE_METHOD_UNKNOWN", ("VM.frobnicate",)),
        Failure("MESSAGE_METHOD_UNKNOWN"),
    ),
    "type-error-text": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.set_is_a_template", vm, "yes"),
            Failure("INTERNAL_ERROR", ("Expected bool, got 'S(yes)'",)),
            Failure("INTERNAL_ERROR", ("type error: expected bool, got 'S(yes)'",)),
        )
    ),
    "rbac-ignored": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.start", vm, False, False),
            _rbac("vm.start", _ALL_BUT_RO),
            OK,
            session=_role(d, "ro"),
        )
    ),
    "rbac-permission-case": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.start", vm, False, False),
            _rbac("vm.start", _ALL_BUT_RO),
            _rbac("VM.start", _ALL_BUT_RO),
            session=_role(d, "ro"),
        )
    ),
    "operator-denied-start": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.start", vm, False, False),
            OK,
            _rbac("vm.start", "pool-admin, pool-operator, vm-power-admin, vm-admin"),
            session=_role(d, "op"),
        )
    ),
    "lost-async-error": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("Async.VM.hard_shutdown", vm), "failure", "success", read=("task.get_status", RESULT)
        )
    ),
    "async-result-dropped": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("Async.VM.clone", vm, "c"), None, Encoded(""), read=("task.get_result", RESULT)
        )
    ),
    "async-error-code-only": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("Async.VM.hard_shutdown", vm),
            ("VM_BAD_POWER_STATE", vm, "paused, suspended, running", "halted"),
            ("VM_BAD_POWER_STATE",),
            read=("task.get_error_info", RESULT),
        )
    ),
    "async-effect-lost": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("Async.VM.start", vm, False, False),
            "Running",
            "Halted",
            read=("VM.get_power_state", vm),
        )
    ),
    "logout-keeps-session": lambda d: (
        (session := d.login("root", ""))
        and Scenario(
            ("session.logout",),
            Failure("SESSION_INVALID", (session,)),
            None,
            session=session,
            read=("VM.get_all",),
            read_session=session,
        )
    ),
    "any-password-accepted": _login_refused("root", "wrong"),
    "auth-failure-unnamed": _login_refused(
        "nobody", "", Failure(AUTH_FAILED, ("Authentication failure",))
    ),
    "logout-twice-accepted": lambda d: (
        (session := d.login("root", ""))
        and d.raw("session.logout", session) == Success("")
        and Scenario(
            ("session.logout",), Failure("SESSION_INVALID", (session,)), "", session=session
        )
    ),
    "login-name-ignored": _login_refused("nobody", ""),
    "user-name-case-folded": _login_refused("ROOT", ""),
    "session-originator-lost": lambda _d: Scenario(
        (LOGIN, "root", "", "2.21", "XenCenter"),
        "XenCenter",
        "",
        read=("session.get_originator", RESULT),
        sessionless=True,
    ),
    "map-key-roles-ignored": lambda d: (
        (vm := d.new_vm())
        and (operator := d.login("op", "op-pw"))
        and Scenario(
            ("VM.add_to_other_config", vm, "folder", "/f"),
            OK,
            Failure(
                "RBAC_PERMISSION_DENIED",
                (
                    "vm.add_to_other_config",
                    "No permission in user session. (Roles with this permission: pool-admin, "
                    "pool-operator, vm-power-admin, vm-admin)",
                ),
            ),
            session=operator,
        )
    ),
    "pool-other-config-write-lost": lambda d: Scenario(
        ("pool.add_to_other_config", d.world.pool.ref, "k", "v"),
        {"k": "v"},
        {},
        read=("pool.get_other_config", d.world.pool.ref),
    ),
    "not-utf8-replaced": lambda d: Scenario(
        ("VM.set_name_label", d.new_vm(), "\ud800"),
        Failure("INVALID_VALUE", ("Invalid UTF-8 string in parameter", "\ud800")),
        OK,
    ),
    "task-owner-ignored": lambda d: (
        (task := d.ok("Async.VM.clone", d.new_vm(), "c"))
        and (reader := d.login("ro", "ro-pw"))
        and Scenario(
            ("task.destroy", task),
            Failure(
                "RBAC_PERMISSION_DENIED",
                (
                    "task.destroy/any",
                    "No permission in user session. (Roles with this permission: pool-admin, "
                    "pool-operator)",
                ),
            ),
            OK,
            session=reader,
        )
    ),
    "name-label-prefix-match": lambda d: (
        (vm := d.new_vm())
        and d.ok("VM.clone", vm, "test-vm clone")
        and Scenario(("VM.get_by_name_label", "test-vm"), (vm,), None)
    ),
    "queries-ignore-case": lambda d: (
        (vm := d.new_vm(name_label="test-vm"))
        and Scenario(("VM.get_by_name_label", "TEST-VM"), (), (vm,))
    ),
    "records-without-snapshots": lambda d: (
        (vm := d.new_vm())
        and d.ok("VM.snapshot", vm, "s")
        and Scenario(("VM.get_all_records",), None, None)
    ),
    "control-domains-unlisted": lambda _d: Scenario(("VM.get_all",), None, None),
    "where-filter-ignored": lambda d: (
        d.new_vm()
        and Scenario(("VM.get_all_records_where", 'field "name__label" = "none"'), {}, None)
    ),
    "operator-sizes-vms": lambda d: (
        (vm := d.new_vm())
        and Scenario(("VM.set_VCPUs_max", vm, 2), None, OK, session=d.login("op", "op-pw"))
    ),
    "async-denial-answered": lambda d: (
        (vm := d.new_vm())
        and Scenario(("Async.VM.clone", vm, "c"), None, None, session=d.login("ro", "ro-pw"))
    ),
    "set-map-merges": lambda d: (
        (vm := d.new_vm())
        and [d.ok("VM.add_to_platform", vm, "acpi", "1")]  # a void answer is falsy
        and Scenario(("VM.set_platform", vm, {}), {}, {"acpi": "1"}, read=("VM.get_platform", vm))
    ),
    "where-or-as-and": lambda d: (
        (vm := d.new_vm(name_label="x"))
        and Scenario(
            ("VM.get_all_where", 'field "name__label" = "x" or field "name__label" = "y"'),
            (vm,),
            (),
        )
    ),
    "snapshot-time-epoch": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("VM.snapshot", vm, "s"),
            LATER,
            EPOCH,
            read=("VM.get_snapshot_time", RESULT),
            now=LATER,
        )
    ),
    "revert-keeps-changes": lambda d: (
        (vm := d.new_vm())
        and (snapshot := d.ok("VM.snapshot", vm, "s"))
        and d.call("VM.set_name_description", vm, "changed")
        and Scenario(("VM.revert", snapshot), None, "changed", read=("VM.get_name_description", vm))
    ),
    "template-vcpus-unchecked": lambda d: (
        (template := d.new_vm(is_a_template=True))
        and Scenario(("VM.set_VCPUs_at_startup", template, 0), None, OK)
    ),
    "task-not-resident": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("Async.VM.start", vm, False, False),
            d.world.pool.master,
            NULL_REF,
            read=("task.get_resident_on", RESULT),
        )
    ),
    "task-created-local-time": lambda d: (
        (vm := d.new_vm())
        and Scenario(
            ("Async.VM.start", vm, False, False),
            EPOCH,
            EPOCH + datetime.timedelta(hours=5),
            read=("task.get_created", RESULT),
        )
    ),
    "task-listed-after-destroy": lambda d: (
        (task := d.ok("Async.VM.clone", d.new_vm(), "c"))
        and Scenario(("task.destroy", task), None, None, read=("task.get_all",))
    ),
    "task-destroy-kept": lambda d: (
        (task := d.ok("Async.VM.clone", d.new_vm(), "c"))
        and Scenario(
            ("task.destroy", task),
            Failure("HANDLE_INVALID", ("task", task)),
            None,
            read=("task.get_record", task),
        )
    ),
    "default-template-clone-kept": lambda d: Scenario(
        ("VM.clone", _pool_default_template(d), "c"),
        False,
        True,
        read=("VM.get_is_default_template", RESULT),
    ),
    "clone-keeps-mac-seed": lambda d: (
        (vm := d.new_vm())
        and Scenario(("VM.clone", vm, "c"), None, None, read=("VM.get_other_config", RESULT))
    ),
    "nested-virt-unpinned-started": lambda d: (
        (vm := d.new_vm(platform={"nested-virt": "true"}))
        and Scenario(
            ("VM.start", vm, False, False),
            Failure("MEMORY_CONSTRAINT_VIOLATION_MAXPIN", ("nested virt",)),
            None,
        )
    ),
    "create-keeps-suspend-vdi": lambda _d: Scenario(
        ("VM.create", vm_record("run", suspend_VDI=NAMELESS_VDI)),
        NULL_REF,
        NAMELESS_VDI,
        read=("VM.get_suspend_VDI", RESULT),
    ),
    "start-overhead-stale": lambda d: (
        (vm := _retyped(d))
        and Scenario(
            ("VM.start", vm, False, False),
            None,
            d.field(vm, "memory_overhead"),  # a PV guest's, stored before it was made HVM
            read=("VM.get_memory_overhead", vm),
        )
    ),
    "clone-keeps-blocked-ops": lambda d: (
        (vm := _blocked(d, "Halted", "start"))
        and Scenario(
            ("VM.clone", vm, "c"), {}, {"start": "R"}, read=("VM.get_blocked_operations", RESULT)
        )
    ),
}


def _outcome(value: Value | Outcome) -> Outcome:
    return value if isinstance(value, Success | Failure) else Success(value)


def _step(
    transition: Callable[[World, Call], tuple[object, ...]], world: World, call: Call
) -> tuple[Outcome, World]:
    branches = transition(world, call)
    assert len(branches) == 1, branches
    branch = branches[0]
    return branch.outcome, branch.world  # type: ignore[attr-defined]


def _other_host(d: Driver, vm: str) -> str:
    """A host of the pool that VM ``vm`` does not run on."""
    here = d.field(vm, "resident_on")
    return next(h for h in sorted(d.world.hosts) if h != here)


def _both_sides(name: str, scenario: Scenario, d: Driver) -> tuple[Outcome, Outcome]:
    faulty = compose(lookup([name]))
    method, *args = scenario.call
    session = () if scenario.sessionless else (scenario.session or d.session,)
    call = Call(str(method), (*session, *args), scenario.now)
    honest, honest_world = _step(apply, d.world, call)
    wrong, faulty_world = _step(faulty, d.world, call)
    if scenario.read is None:
        return honest, wrong
    result = honest.value if isinstance(honest, Success) else None
    read_method, *read_args = scenario.read
    read_args = [result if arg is RESULT else arg for arg in read_args]
    read = Call(str(read_method), (scenario.read_session or d.session, *read_args))
    return _step(apply, honest_world, read)[0], _step(faulty, faulty_world, read)[0]


WIRE_FAULTS = frozenset(name for name, f in FAULTS.items() if isinstance(f.fault, WronglyTyped))
"""Faults that answer as the model does, typed wrongly on the wire (no model scenario)."""


RACES = frozenset(name for name, seeded in FAULTS.items() if races([seeded]))
"""Race faults show only while calls overlap: tests/conformance/test_concurrency.py has them."""


EVENTS = frozenset(name for name, f in FAULTS.items() if isinstance(f.fault, EventFault))
"""Faults of the event log, not of calls: tests/conformance/test_event_faults.py has them."""


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_fault_diverges_where_its_catalogue_entry_says(name: str) -> None:
    d = driver(accounts=ACCOUNTS)
    scenario = SCENARIOS[name](d)
    honest, wrong = _both_sides(name, scenario, d)
    if scenario.expected is not None:
        assert honest == _outcome(scenario.expected)
    if scenario.wrong is not None:
        assert wrong == _outcome(scenario.wrong)
    assert honest != wrong


@pytest.mark.parametrize("name", sorted(WIRE_FAULTS))
def test_a_wire_fault_answers_as_the_model_but_types_the_answer_wrongly(name: str) -> None:
    d = driver(accounts=ACCOUNTS)
    vm = d.new_vm()
    d.ok("VM.set_user_version", vm, 2**63 - 1)
    d.ok("VM.set_name_label", vm, "xapi-conformance \U0001f600")
    call = Call("VM.get_record", (d.session, vm))
    (honest,), (faulty,) = apply(d.world, call), compose(lookup([name]))(d.world, call)
    assert honest == faulty
    quirks = wire_quirks(lookup([name]))
    assert quirks != XAPI_TYPING
    as_xml = xmlrpc.encode_response(honest.outcome)
    if quirks not in JSON_ONLY:
        assert as_xml != xmlrpc.encode_response(honest.outcome, quirks)
    as_xapi = jsonrpc.encode_response(honest.outcome, 1, "2.0")
    if quirks not in XML_ONLY:
        assert as_xapi != jsonrpc.encode_response(honest.outcome, 1, "2.0", quirks)


XML_ONLY = (Quirks(datetime_text=True), Quirks(double_as_int=True))
"""Wire faults JSON-RPC cannot show: its dates are strings and its numbers untyped anyway."""
JSON_ONLY = (Quirks(empty_as_null=True),)
"""Wire faults XML-RPC cannot show: a null there is ``<nil/>``, an extension xapi's codec
lacks, which a server writing empty text as null over JSON still leaves out."""


def test_every_fault_has_a_scenario_a_topic_and_an_area() -> None:
    assert set(SCENARIOS) | WIRE_FAULTS | RACES | EVENTS == set(FAULTS)
    assert not set(SCENARIOS) & (WIRE_FAULTS | RACES | EVENTS)
    assert len(FAULTS) >= 30
    for name, seeded in FAULTS.items():
        assert seeded.topic in TOPICS, name
        assert seeded.area in AREAS, name
        assert seeded.summary and "\n" not in seeded.summary, name
        assert "xapi" in seeded.divergence, name
    assert {seeded.topic for seeded in FAULTS.values()} == set(TOPICS)


def test_list_faults_prints_one_line_per_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--list-faults"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(FAULTS)
    assert all(FAULTS[line.split()[0]].summary in line for line in lines)
