"""Seeded faults over real HTTP: the honest server answers as the model, the faulty one does not.

Each test drives two embedded servers with the same configuration and the same call sequence;
they differ only in ``ServerConfig.faults``. Refs are deterministic, so both sides name the same
VM and every expected outcome is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import pytest

from conformance.errors import ExitCode, UsageError
from conformance.faults import FAULTS, compose, lookup
from conformance.runner.cli import main
from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer, start_in_thread
from conformance.targets import XmlRpcTarget
from conformance.wire import xmlrpc as xml_codec
from models.outcome import Failure, Outcome, Success, Value
from models.rpc import apply
from models.transition import Call
from tests.conformance.conftest import PASSWORD
from tests.models.helpers import GIB, MIB, driver, vm_args

OK = Success("")


@dataclass
class _Client:
    """One logged-in XML-RPC client of one embedded server."""

    server: RunningServer
    target: XmlRpcTarget
    session: str

    @classmethod
    def of(cls, server: RunningServer) -> _Client:
        target = XmlRpcTarget(server.url)
        login = target.call("session.login_with_password", "root", PASSWORD, "1.0", "tests")
        assert isinstance(login, Success), login
        return cls(server, target, str(login.value))

    def call(self, method: str, *args: Value) -> Outcome:
        return self.target.call(method, self.session, *args)

    def ok(self, method: str, *args: Value) -> Value:
        outcome = self.call(method, *args)
        assert isinstance(outcome, Success), (method, outcome)
        return outcome.value

    def predicted(self, method: str, *args: Value) -> Outcome:
        """What the model answers to this call in the server's current world, as XML-RPC shows it."""
        call = Call(method, (self.session, *args))
        outcome = apply(self.server.state.world, call)[0].outcome
        return xml_codec.decode_response(xml_codec.encode_response(outcome))

    def checked(self, method: str, *args: Value) -> tuple[Outcome, Outcome]:
        """``(model's prediction, server's answer)`` for one call."""
        return self.predicted(method, *args), self.call(method, *args)

    def vm(self, state: str = "Halted", **overrides: Value) -> str:
        """A new VM (``vm_args(**overrides)``) brought to ``state`` (Halted, Running or Paused)."""
        ref = str(self.ok("VM.create", cast(Value, vm_args(**overrides))))
        if state != "Halted":
            self.ok("VM.start", ref, state == "Paused", False)
        return ref


Pair = Callable[[str], tuple[_Client, _Client]]


@pytest.fixture
def pair() -> Iterator[Pair]:
    """``pair(fault)`` → (honest client, faulty client) on two fresh, otherwise equal servers."""
    running: list[RunningServer] = []

    def start(fault: str) -> tuple[_Client, _Client]:
        honest = start_in_thread(ServerConfig(password=PASSWORD))
        faulty = start_in_thread(ServerConfig(password=PASSWORD, faults=(fault,)))
        running.extend((honest, faulty))
        return _Client.of(honest), _Client.of(faulty)

    try:
        yield start
    finally:
        for server in running:
            server.stop()


def _same_vm(honest: _Client, faulty: _Client, state: str = "Halted", **overrides: Value) -> str:
    ref = honest.vm(state, **overrides)
    assert faulty.vm(state, **overrides) == ref
    return ref


def _assert_diverges(
    honest: _Client, faulty: _Client, expected: Outcome, wrong: Outcome, method: str, *args: Value
) -> None:
    """Honest: model == answer == ``expected``; faulty: model says ``expected``, answer ``wrong``."""
    assert honest.checked(method, *args) == (expected, expected)
    assert faulty.checked(method, *args) == (expected, wrong)


def _assert_reads_differ(
    honest: _Client, faulty: _Client, expected: Outcome, wrong: Outcome, method: str, *args: Value
) -> None:
    """A read after the faulty call: the honest answer is the model's, the faulty one differs.

    The faulty server's own world already holds the wrong state, so the reference for its read
    is the honest side (as a conformance run's model, fed only with expected answers, would be).
    """
    assert honest.checked(method, *args) == (expected, expected)
    assert faulty.call(method, *args) == wrong


def test_wrong_error_param_joins_expected_states_with_semicolons(pair: Pair) -> None:
    honest, faulty = pair("wrong-error-param")
    vm = _same_vm(honest, faulty)
    expected = Failure("VM_BAD_POWER_STATE", (vm, "paused, suspended, running", "halted"))
    wrong = Failure("VM_BAD_POWER_STATE", (vm, "paused;suspended;running", "halted"))
    _assert_diverges(honest, faulty, expected, wrong, "VM.hard_shutdown", vm)
    single = Failure("VM_BAD_POWER_STATE", (vm, "running", "halted"))
    _assert_diverges(honest, faulty, single, single, "VM.clean_shutdown", vm)


def test_wrong_state_allowed_suspends_a_paused_vm(pair: Pair) -> None:
    honest, faulty = pair("wrong-state-allowed")
    vm = _same_vm(honest, faulty, "Paused")
    expected = Failure("VM_BAD_POWER_STATE", (vm, "running", "paused"))
    _assert_diverges(honest, faulty, expected, OK, "VM.suspend", vm)
    assert honest.ok("VM.get_power_state", vm) == "Paused"
    assert faulty.ok("VM.get_power_state", vm) == "Suspended"
    assert faulty.ok("VM.get_domid", vm) == "-1"


@pytest.mark.parametrize(
    ("state", "method", "args", "after"),
    [
        ("Halted", "VM.start", (False, False), "Running"),
        ("Running", "VM.clean_shutdown", (), "Halted"),
    ],
)
def test_blocked_ignored_runs_a_blocked_operation(
    pair: Pair, state: str, method: str, args: tuple[Value, ...], after: str
) -> None:
    honest, faulty = pair("blocked-ignored")
    vm = _same_vm(honest, faulty, state)
    blocked = {method.removeprefix("VM."): "maintenance"}
    for client in (honest, faulty):
        client.ok("VM.set_blocked_operations", vm, blocked)
    expected = Failure("OPERATION_BLOCKED", (vm, "maintenance"))
    _assert_diverges(honest, faulty, expected, OK, method, vm, *args)
    assert honest.ok("VM.get_power_state", vm) == state
    assert faulty.ok("VM.get_power_state", vm) == after
    assert faulty.ok("VM.get_blocked_operations", vm) == blocked


@pytest.mark.parametrize(
    ("method", "args", "stored"),
    [
        ("VM.set_memory_dynamic_range", (GIB, 640 * MIB), (GIB, 640 * MIB)),
        ("VM.set_memory_dynamic_min", (896 * MIB,), (896 * MIB, 768 * MIB)),
        ("VM.set_memory_dynamic_max", (384 * MIB,), (512 * MIB, 384 * MIB)),
    ],
)
def test_memory_order_unchecked_stores_min_above_max(
    pair: Pair, method: str, args: tuple[int, ...], stored: tuple[int, int]
) -> None:
    honest, faulty = pair("memory-order-unchecked")
    vm = _same_vm(honest, faulty, memory_dynamic_max=str(768 * MIB))
    wire = tuple(str(value) for value in args)
    expected = Failure("MEMORY_CONSTRAINT_VIOLATION_ORDER")
    _assert_diverges(honest, faulty, expected, OK, method, vm, *wire)
    low, high = (str(value) for value in stored)
    before = {"dynamic_min": str(512 * MIB), "target": "0", "dynamic_max": str(768 * MIB)}
    after = {"dynamic_min": low, "target": low, "dynamic_max": high}
    for field, value in before.items():
        getter = f"VM.get_memory_{field}"
        _assert_reads_differ(honest, faulty, Success(value), Success(after[field]), getter, vm)


def test_memory_order_unchecked_still_checks_the_static_range(pair: Pair) -> None:
    honest, faulty = pair("memory-order-unchecked")
    vm = _same_vm(honest, faulty)
    expected = Failure("MEMORY_CONSTRAINT_VIOLATION_ORDER")
    beyond = (str(2 * GIB), str(768 * MIB))
    _assert_diverges(honest, faulty, expected, expected, "VM.set_memory_dynamic_range", vm, *beyond)


def test_stale_record_keeps_the_old_name(pair: Pair) -> None:
    honest, faulty = pair("stale-record")
    vm = _same_vm(honest, faulty)
    _assert_diverges(honest, faulty, OK, OK, "VM.set_name_label", vm, "renamed")
    _assert_reads_differ(
        honest, faulty, Success("renamed"), Success("test-vm"), "VM.get_name_label", vm
    )


def test_lost_async_error_reports_a_failed_task_as_successful(pair: Pair) -> None:
    honest, faulty = pair("lost-async-error")
    vm = _same_vm(honest, faulty)
    task = honest.ok("Async.VM.hard_shutdown", vm)
    assert faulty.ok("Async.VM.hard_shutdown", vm) == task
    assert isinstance(task, str)
    error = ("VM_BAD_POWER_STATE", vm, "paused, suspended, running", "halted")
    _assert_reads_differ(
        honest, faulty, Success("failure"), Success("success"), "task.get_status", task
    )
    for client in (honest, faulty):
        assert client.ok("task.get_error_info", task) == error


def test_rbac_ignored_lets_a_read_only_session_start_a_vm() -> None:
    from conformance.targets import XmlRpcTarget
    from models.world import Account

    accounts = (Account("ro", "ro-pw", "read-only"),)
    servers = [
        start_in_thread(ServerConfig(password=PASSWORD, accounts=accounts, faults=faults))
        for faults in ((), ("rbac-ignored",))
    ]
    try:
        answers = []
        for server in servers:
            target = XmlRpcTarget(server.url)
            root = target.call("session.login_with_password", "root", PASSWORD)
            ro = target.call("session.login_with_password", "ro", "ro-pw")
            assert isinstance(root, Success) and isinstance(ro, Success)
            vm = target.call("VM.create", root.value, cast(Value, vm_args()))
            assert isinstance(vm, Success)
            answers.append(target.call("VM.start", ro.value, vm.value, False, False))
        honest, faulty = answers
        assert isinstance(honest, Failure) and honest.code == "RBAC_PERMISSION_DENIED"
        assert honest.params[0] == "vm.start"
        assert faulty == Success("")
    finally:
        for server in servers:
            server.stop()


def test_faults_compose_in_order() -> None:
    d = driver()
    vm = d.new_vm()
    transition = compose(lookup(["wrong-error-param", "lost-async-error"]))
    branch = transition(d.world, Call("Async.VM.hard_shutdown", (d.session, vm)))[0]
    assert isinstance(branch.outcome, Success)
    task = branch.world.tasks[str(branch.outcome.value)]
    assert (task.status, task.error_info[2]) == ("success", "paused, suspended, running")


def test_unknown_fault_in_config_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="known faults: wrong-state-allowed, start-paused-ignored"):
        start_in_thread(ServerConfig(faults=("nope",)))


def test_serve_rejects_an_unknown_fault(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--fault", "nope"]) == ExitCode.USAGE
    message = capsys.readouterr().err
    assert "unknown fault 'nope'" in message
    assert all(name in message for name in FAULTS)


def test_serve_help_lists_the_fault_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    shown = capsys.readouterr().out
    assert "--fault NAME" in shown and "--list-faults" in shown
