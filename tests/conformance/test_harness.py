"""The harness without a socket: the embedded server's WSGI app behind an in-process transport.

Each verdict is shown both ways: the honest server conforms, a server (or transport) that is
wrong in one precise way gives the divergence that names it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from conformance.areas.machines import AREAS
from conformance.areas.strategies import vm_record
from conformance.areas.sweeps import picked, pool_templates
from conformance.engine.harness import Connection, Harness, sweep_run_vms
from conformance.engine.importer import Login
from conformance.errors import TargetTimeout
from conformance.faults import Transition
from conformance.judge.divergence import Desynced, Divergence
from conformance.judge.refs import run_label
from conformance.judge.waivers import Waiver, Waivers
from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.state import ServerState
from conformance.targets.base import Protocol_, TargetSettings
from conformance.targets.inprocess import InProcessTarget
from models.features import ALL_FEATURES, restrictions
from models.outcome import Failure, Outcome, Success, Value
from models.rpc import apply
from models.setup import initial_world
from models.transition import Branch, Call, Result
from models.world import Account, Facts, World

PASSWORD = "s3cret-harness-pw"
ROLE_ACCOUNTS = (Account("op", "op-pw", "vm-operator"), Account("ro", "ro-pw", "read-only"))
FAST = settings(
    max_examples=4,
    stateful_step_count=8,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


class Fault:
    """A server-side fault: rewrites the honest branches of calls ``applies`` selects."""

    def __init__(
        self, applies: Callable[[Call], bool], rewrite: Callable[[World, Call, Result], Result]
    ) -> None:
        self.applies, self.rewrite = applies, rewrite

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        result = honest(world, call)
        return self.rewrite(world, call, result) if self.applies(call) else result


@dataclass
class Wrapped:
    """An in-process target seen through a transport of a test's making."""

    inner: InProcessTarget

    @property
    def settings(self) -> TargetSettings:
        return self.inner.settings

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def protocol(self) -> Protocol_:
        return self.inner.protocol

    def close(self) -> None:
        self.inner.close()


@dataclass
class Tampered(Wrapped):
    """A transport-level fault: the decoded answer to ``method`` replaced by ``answer``."""

    method: str
    answer: Callable[[Outcome], Outcome]

    def call(self, method: str, *params: Value) -> Outcome:
        outcome = self.inner.call(method, *params)
        return self.answer(outcome) if method == self.method else outcome


def _server(
    guest_agent: bool = True,
    faults: tuple[Fault, ...] = (),
    *,
    hosts: int = 2,
    dmc: bool = True,
    restricted: frozenset[str] = frozenset(),
    templates: bool = False,
) -> ServerState:
    config = ServerConfig(password=PASSWORD, accounts=ROLE_ACCOUNTS, guest_agent=guest_agent)
    world = initial_world(
        hosts=hosts,
        accounts=config.all_accounts(),
        dmc_enabled=dmc,
        features=ALL_FEATURES - restricted,
        templates=templates,
        facts=Facts(guest_has_pv_drivers=guest_agent),
        salt="harness-tests",
    )
    return ServerState(world, faults)


def connect(
    state: ServerState | None = None,
    *,
    protocol: Protocol_ = "xmlrpc",
    facts: Facts | None = None,
    waivers: Waivers | None = None,
    wrap: Callable[[InProcessTarget], object] | None = None,
) -> Connection:
    """A connection to an in-process embedded server, logged in as root and two roles."""
    inner = InProcessTarget(XenAPIApp(state or _server()), protocol)
    target = wrap(inner) if wrap else inner
    accounts = (Account("root", PASSWORD, "pool-admin", superuser=True), *ROLE_ACCOUNTS)
    logins = []
    for account in accounts:
        session = inner.call("session.login_with_password", account.name, account.password)
        assert isinstance(session, Success)
        logins.append(Login(str(session.value), account))
    return Connection(
        target=target,  # type: ignore[arg-type]
        root=logins[0],
        roles={login.account.role: login for login in logins[1:]},
        facts=facts or Facts(),
        run_id="harness-tests",
        waivers=waivers or Waivers(),
        task_timeout=5.0,
    )


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness(connect(), "lifecycle")
    yield h
    h.teardown()


def new_vm(h: Harness, **overrides: Value) -> str:
    outcome = h.call("VM.create", vm_record("harness-tests", **overrides))
    assert isinstance(outcome, Success)
    return str(outcome.value)


def run_area(area: str, connection: Connection) -> None:
    machine = AREAS[area]
    bound = type(f"{machine.__name__}Bound", (machine,), {"connection": connection})
    run_state_machine_as_test(bound, settings=FAST)


# ---- the honest server conforms, whatever the protocol or what the suite knows ---------------


@pytest.mark.parametrize("area", list(AREAS))
@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_every_area_conforms_on_the_honest_server(area: str, protocol: Protocol_) -> None:
    connection = connect(protocol=protocol)
    run_area(area, connection)
    assert connection.tally.steps > 0
    assert sweep_run_vms(connection.target, connection.root.session, "harness-tests") == []


SERVER_FACTS = {
    "default": {},
    "no-guest-agent": {"guest_agent": False},
    "restrict-dmc": {"dmc": False},
    "hosts-1": {"hosts": 1},
    "no-agent-no-dmc-1-host": {"guest_agent": False, "dmc": False, "hosts": 1},
}
"""The fact configurations of ``serve`` (--no-guest-agent, --restrict-dmc, --hosts 1, mixed)."""


@pytest.mark.parametrize("facts", list(SERVER_FACTS))
@pytest.mark.parametrize(
    "area", ["lifecycle", "memory", "operations", "fields", "async", "rpc", "events"]
)
def test_unknown_facts_conform_in_every_server_configuration(facts: str, area: str) -> None:
    """As against an external target: the suite cannot see drivers or free memory."""
    unknown = Facts(guest_has_pv_drivers=None, host_memory_sufficient=None)
    connection = connect(_server(**SERVER_FACTS[facts]), facts=unknown)  # type: ignore[arg-type]
    run_area(area, connection)


LICENSED_OFF = frozenset({"Checkpoint", "Live_set_vcpus", "VMSS"})


def _checkpoint_and_live_vcpus(h: Harness) -> tuple[Outcome, Outcome]:
    vm = new_vm(h)
    h.call("VM.start", vm, False, False)
    return h.call("VM.checkpoint", vm, "cp"), h.call("VM.set_VCPUs_number_live", vm, 1)


def test_the_suite_judges_by_the_pools_licence_flags() -> None:
    """The model reads pool.restrictions at the start of each example (importer.py): a pool
    licensed without Checkpoint and Live_set_vcpus refusing them conforms."""
    h = Harness(connect(_server(restricted=LICENSED_OFF)), "lifecycle")
    checkpoint, vcpus = _checkpoint_and_live_vcpus(h)
    assert checkpoint == Failure("LICENSE_RESTRICTION", ("Checkpoint",))
    assert vcpus == Failure("LICENSE_RESTRICTION", ("Live_set_vcpus",))
    h.teardown()


def test_a_pool_that_ignores_its_licence_flags_diverges() -> None:
    """A server whose restrictions say Checkpoint is licensed off but which checkpoints."""
    licensed = restrictions(ALL_FEATURES)

    def unlicensed(world: World, call: Call, _: Result) -> Result:
        pool = replace(world.pool, restrictions=licensed)
        return apply(replace(world, pool=pool), call)

    fault = Fault(lambda call: call.method == "VM.checkpoint", unlicensed)
    h = Harness(connect(_server(faults=(fault,), restricted=LICENSED_OFF)), "lifecycle")
    with pytest.raises(Divergence, match="LICENSE_RESTRICTION"):
        _checkpoint_and_live_vcpus(h)
    h.teardown()


def test_a_read_of_allowed_operations_fixes_the_unknown_driver_fact() -> None:
    state = _server(guest_agent=False)
    h = Harness(connect(state, facts=Facts(guest_has_pv_drivers=None)), "fields")
    vm = new_vm(h)
    h.call("VM.start", vm, False, False)
    assert h.world.facts.guest_has_pv_drivers is None
    ops = h.call("VM.get_allowed_operations", vm)
    assert isinstance(ops, Success) and "clean_shutdown" not in ops.value  # type: ignore[operator]
    assert h.world.facts.guest_has_pv_drivers is False
    failure = h.call("VM.clean_shutdown", vm)
    assert isinstance(failure, Failure) and failure.code == "VM_LACKS_FEATURE"
    h.teardown()


def test_a_known_fact_that_is_wrong_is_a_divergence() -> None:
    h = Harness(connect(_server(guest_agent=False), facts=Facts()), "lifecycle")
    vm = new_vm(h)
    h.call("VM.start", vm, False, False)
    with pytest.raises(Divergence, match="VM_LACKS_FEATURE"):
        h.call("VM.clean_shutdown", vm)
    h.teardown()


# ---- answers of the wrong type or shape are divergences that name the place ---------------------


def _wrong(method: str, value: Value) -> Callable[[InProcessTarget], Tampered]:
    return lambda inner: Tampered(inner, method, lambda _: Success(value))


@pytest.mark.parametrize(
    ("protocol", "method", "value", "where"),
    [
        ("xmlrpc", "VM.get_name_label", 7, "result: xapi sends string"),
        ("jsonrpc", "VM.get_name_label", 7, "result: xapi sends string"),
        ("xmlrpc", "VM.get_VCPUs_max", 2, "xapi sends int as a bare string over xmlrpc"),
        ("jsonrpc", "VM.get_VCPUs_max", "2", "xapi sends int as a number over jsonrpc"),
        ("xmlrpc", "VM.get_is_a_template", "true", "xapi sends bool as a bool"),
    ],
)
def test_a_wrongly_typed_answer_is_a_divergence(
    protocol: Protocol_, method: str, value: Value, where: str
) -> None:
    h = Harness(connect(protocol=protocol, wrap=_wrong(method, value)), "fields")
    vm = new_vm(h)
    with pytest.raises(Divergence) as raised:
        h.call(method, vm)
    assert where in raised.value.info.reason
    assert raised.value.info.reproducer
    h.teardown()


def test_a_record_field_of_the_wrong_type_is_named() -> None:
    def bad_record(outcome: Outcome) -> Outcome:
        assert isinstance(outcome, Success) and isinstance(outcome.value, dict)
        return Success({**outcome.value, "is_a_template": "false"})

    tamper = lambda inner: Tampered(inner, "VM.get_record", bad_record)  # noqa: E731
    h = Harness(connect(wrap=tamper), "fields")
    new_vm(h)
    with pytest.raises(Divergence, match="field is_a_template: xapi sends bool"):
        h.check_state()
    h.teardown()


def _task_result(text: str) -> Callable[[Outcome], Outcome]:
    def rewrite(outcome: Outcome) -> Outcome:
        assert isinstance(outcome, Success) and isinstance(outcome.value, dict)
        return Success({**outcome.value, "result": text})

    return rewrite


def test_an_empty_task_result_for_a_void_async_call_is_a_divergence() -> None:
    tamper = lambda inner: Tampered(inner, "task.get_record", _task_result(""))  # noqa: E731
    h = Harness(connect(wrap=tamper), "async")
    vm = new_vm(h)
    with pytest.raises(Divergence) as raised:
        h.call_async("VM.start", vm, False, False)
    assert raised.value.info.reason.startswith("task.result")
    assert raised.value.info.kind == "async"
    h.teardown()


def test_a_lost_task_is_reported_as_the_targets_not_invented() -> None:
    tamper = lambda inner: Tampered(  # noqa: E731
        inner, "task.get_record", lambda _: Failure("HANDLE_INVALID", ("task", "x"))
    )
    h = Harness(connect(wrap=tamper), "async")
    vm = new_vm(h)
    with pytest.raises(Divergence, match=r"task\.get_record of the call's own task failed"):
        h.call_async("VM.start", vm, False, False)
    h.teardown()


def test_a_pending_task_past_the_deadline_is_a_target_error() -> None:
    from conformance.errors import TargetError

    tamper = lambda inner: Tampered(inner, "task.get_status", lambda _: Success("pending"))  # noqa: E731
    connection = replace(connect(wrap=tamper), task_timeout=0.1)
    h = Harness(connection, "async")
    vm = new_vm(h)
    with pytest.raises(TargetError, match="still pending"):
        h.call_async("VM.start", vm, False, False)
    h.teardown()


def test_the_async_poll_starts_at_milliseconds_and_backs_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    import conformance.engine.answers

    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    pending = iter(range(12))  # the first 12 polls see the task pending

    def status(outcome: Outcome) -> Outcome:
        return Success("pending") if next(pending, None) is not None else outcome

    connection = connect(wrap=lambda inner: Tampered(inner, "task.get_status", status))
    h = Harness(connection, "async")
    h.call_async("VM.start", new_vm(h), False, False)
    h.teardown()
    first, longest = conformance.engine.answers.TASK_POLL_BACKOFF_S
    assert pauses[:4] == [first, 2 * first, 4 * first, 8 * first]
    assert len(pauses) == 12 and max(pauses) == longest == pauses[-1]


# ---- seeded faults of the kinds the ci profile once missed ----------------------------------


def _success_instead(_: World, __: Call, result: Result) -> Result:
    return tuple(
        Branch(Success(""), b.world) if isinstance(b.outcome, Failure) else b for b in result
    )


def _logout_keeps_session(world: World, call: Call, result: Result) -> Result:
    return tuple(Branch(b.outcome, world) for b in result)


def _clone_keeps_blocked(world: World, call: Call, result: Result) -> Result:
    source = world.vms[str(call.args[1])]
    branches = []
    for branch in result:
        new = str(branch.outcome.value) if isinstance(branch.outcome, Success) else ""
        if new in branch.world.vms:
            record = {**branch.world.vms[new], "blocked_operations": source["blocked_operations"]}
            vms = {**branch.world.vms, new: record}
            branches.append(Branch(branch.outcome, replace(branch.world, vms=vms)))
        else:
            branches.append(branch)
    return tuple(branches)


def test_a_logout_that_leaves_the_session_valid_is_found() -> None:
    fault = Fault(lambda c: c.method == "session.logout", _logout_keeps_session)
    h = Harness(connect(_server(faults=(fault,))), "rpc")
    vm = new_vm(h)
    session = h.call("session.login_with_password", "root", PASSWORD, "2.21", "t")
    assert isinstance(session, Success)
    h.call("session.logout", session=str(session.value))
    with pytest.raises(Divergence, match="SESSION_INVALID") as raised:
        h.call("VM.get_power_state", vm, session=str(session.value))
    assert PASSWORD not in str(raised.value) + repr(raised.value.info)
    h.teardown()


def test_the_rpc_machine_finds_a_logout_that_leaves_the_session_valid() -> None:
    fault = Fault(lambda c: c.method == "session.logout", _logout_keeps_session)
    with pytest.raises(Divergence, match=r"(SESSION|HANDLE)_INVALID"):
        run_state_machine_as_test(
            type("Rpc", (AREAS["rpc"],), {"connection": connect(_server(faults=(fault,)))}),
            settings=replace_settings(max_examples=60, phases=DETECT),
        )


DETECT = (Phase.explicit, Phase.reuse, Phase.generate)
"""Find, do not shrink: these tests ask whether the machine reaches the fault."""


def replace_settings(**changes: object) -> settings:
    return settings(FAST, **changes)  # type: ignore[arg-type]


def test_a_clone_that_keeps_blocked_operations_is_found() -> None:
    fault = Fault(lambda c: c.method == "VM.clone", _clone_keeps_blocked)
    h = Harness(connect(_server(faults=(fault,))), "operations")
    vm = new_vm(h)
    h.call("VM.add_to_blocked_operations", vm, "start", "true")
    h.call("VM.clone", vm, "copy")
    with pytest.raises(Divergence, match="field blocked_operations") as raised:
        h.check_state()
    assert raised.value.info.method == "VM.get_blocked_operations"


def test_the_operations_machine_finds_a_clone_that_keeps_blocked_operations() -> None:
    fault = Fault(lambda c: c.method == "VM.clone", _clone_keeps_blocked)
    connection = connect(_server(faults=(fault,)))
    machine = type("Ops", (AREAS["operations"],), {"connection": connection})
    with pytest.raises(Divergence, match="blocked_operations"):
        run_state_machine_as_test(
            machine, settings=replace_settings(max_examples=300, phases=DETECT)
        )


def test_a_task_reporting_success_for_a_failed_call_is_found() -> None:
    fault = Fault(lambda c: c.method.startswith("Async."), _success_instead_async)
    h = Harness(connect(_server(faults=(fault,))), "async")
    vm = new_vm(h)
    h.call("VM.start", vm, False, False)
    with pytest.raises(Divergence) as raised:
        h.call_async("VM.start", vm, False, False)
    assert raised.value.info.kind == "async"
    assert "xapi fails with VM_BAD_POWER_STATE" in raised.value.info.reason


def _success_instead_async(world: World, call: Call, result: Result) -> Result:
    branches = []
    for branch in result:
        tasks = dict(branch.world.tasks)
        for ref, task in tasks.items():
            if task.error_info:
                tasks[ref] = replace(task, status="success", error_info=(), result="")
        branches.append(Branch(branch.outcome, replace(branch.world, tasks=tasks)))
    return tuple(branches)


# ---- waivers ---------------------------------------------------------------------------------


def _waivers(method: str, code: str = "") -> Waivers:
    waiver = Waiver(method, code, "known, CA-1", datetime.date(2999, 1, 1))
    return Waivers((waiver,))


def test_a_waived_failure_is_recorded_once_and_the_model_stays_in_step() -> None:
    fault = Fault(lambda c: c.method == "VM.start", _fail_start)
    connection = connect(
        _server(faults=(fault,)), waivers=_waivers("VM.start", "NO_HOSTS_AVAILABLE")
    )
    h = Harness(connection, "lifecycle")
    vm = new_vm(h)
    for _ in range(3):
        outcome = h.call("VM.start", vm, False, False)
        assert isinstance(outcome, Failure)
    h.check_state()
    assert h.world.vms[vm]["power_state"] == "Halted"
    waived = connection.tally.divergences
    assert len(waived) == 1 and waived[0].waived
    assert waived[0].waiver_expires == datetime.date(2999, 1, 1)
    h.teardown()


def _fail_start(world: World, _: Call, __: Result) -> Result:
    return (Branch(Failure("NO_HOSTS_AVAILABLE", ()), world),)


def test_a_waived_success_the_model_cannot_follow_ends_the_example() -> None:
    fault = Fault(lambda c: c.method == "VM.pause", _success_instead)
    connection = connect(_server(faults=(fault,)), waivers=_waivers("VM.pause"))
    h = Harness(connection, "lifecycle")
    vm = new_vm(h)
    with pytest.raises(Desynced):
        h.call("VM.pause", vm)
    assert len(connection.tally.divergences) == 1
    h.teardown()


def test_an_expired_waiver_does_not_waive() -> None:
    fault = Fault(lambda c: c.method == "VM.start", _fail_start)
    expired = Waivers(
        (Waiver("VM.start", "", "old", datetime.date(2000, 1, 1)),), datetime.date(2026, 1, 1)
    )
    h = Harness(connect(_server(faults=(fault,)), waivers=expired), "lifecycle")
    vm = new_vm(h)
    with pytest.raises(Divergence, match="a waiver for this expired on 2000-01-01"):
        h.call("VM.start", vm, False, False)
    h.teardown()


# ---- reasons, reproducers, secrets -----------------------------------------------------------


def test_a_wrong_error_parameter_is_named_with_both_values() -> None:
    def lower(_: World, __: Call, result: Result) -> Result:
        return tuple(
            Branch(Failure(b.outcome.code, (*b.outcome.params[:2], "Halted")), b.world)
            if isinstance(b.outcome, Failure)
            else b
            for b in result
        )

    h = Harness(connect(_server(faults=(Fault(lambda c: c.method == "VM.pause", lower),))), "x")
    vm = new_vm(h)
    with pytest.raises(Divergence) as raised:
        h.call("VM.pause", vm)
    info = raised.value.info
    assert info.reason == "error parameter 3: expected 'halted', got 'Halted'"
    assert "VM.pause(vm1)" in info.message and "OpaqueRef" not in info.message
    assert "VM.pause" in info.reproducer and "call('VM.create'" in info.reproducer


def test_the_password_of_a_login_never_appears_in_a_divergence() -> None:
    def refuse(world: World, _: Call, __: Result) -> Result:
        return (Branch(Failure("SESSION_AUTHENTICATION_FAILED", ("root", "x")), world),)

    fault = Fault(lambda c: c.method == "session.login_with_password" and "t" in c.args, refuse)
    h = Harness(connect(_server(faults=(fault,))), "rpc")
    with pytest.raises(Divergence) as raised:
        h.call("session.login_with_password", "root", PASSWORD, "2.21", "t")
    info = raised.value.info
    for text in (str(raised.value), repr(info.params), info.message, info.reproducer):
        assert PASSWORD not in text
    assert "<password>" in info.message


def test_raw_calls_send_the_arguments_exactly() -> None:
    h = Harness(connect(), "rpc")
    outcome = h.raw_call("VM.get_all", ())
    assert isinstance(outcome, Failure) and outcome.code == "MESSAGE_PARAMETER_COUNT_MISMATCH"
    assert h.log[-1].session == ""


def test_whole_pool_queries_are_judged_on_the_examples_own_vms(harness: Harness) -> None:
    vm = new_vm(harness)
    listed = harness.call("VM.get_all")
    assert isinstance(listed, Success) and vm in listed.value  # type: ignore[operator]
    records = harness.call("VM.get_all_records")
    assert isinstance(records, Success)
    harness.call("VM.get_by_name_label", "xapi-conformance")


def test_teardown_removes_blocked_templates_and_copies(harness: Harness) -> None:
    vm = new_vm(harness)
    harness.call("VM.add_to_blocked_operations", vm, "destroy", "true")
    harness.call("VM.clone", vm, "c")
    harness.call("VM.set_is_a_template", vm, True)
    harness.teardown()
    connection = harness.connection
    assert sweep_run_vms(connection.target, connection.root.session, "harness-tests") == []


# ---- the deterministic sweeps ------------------------------------------------------------------


def test_the_sweeps_conform_on_the_honest_server() -> None:
    from conformance.areas.sweeps import blocked_sweep, lifecycle_sweep, memory_sweep, run_all

    connection = connect()
    run_all(list(lifecycle_sweep())[::7], connection, "lifecycle")
    run_all(list(blocked_sweep())[::5], connection, "operations")
    run_all(list(memory_sweep())[::3], connection, "memory")
    assert connection.tally.examples > 20 and not connection.tally.divergences


def test_a_sweep_reports_every_failing_cell() -> None:
    from conformance.areas.sweeps import Cell, run_all

    fault = Fault(lambda c: c.method == "VM.pause", _fail_start)
    connection = connect(_server(faults=(fault,)))
    cells = [Cell("pause", "Running", "plain"), Cell("pause", "Halted", "plain")]
    with pytest.raises(Divergence, match="NO_HOSTS_AVAILABLE"):
        run_all(cells, connection, "lifecycle")
    assert len(connection.tally.divergences) == 1


def test_a_sweep_cell_ends_quietly_when_a_waiver_desyncs_it() -> None:
    from conformance.areas.sweeps import Cell, run_all

    fault = Fault(lambda c: c.method == "VM.pause", _success_instead)
    connection = connect(_server(faults=(fault,)), waivers=_waivers("VM.pause"))
    run_all([Cell("pause", "Halted", "plain")], connection, "lifecycle")
    assert [d.waived for d in connection.tally.divergences] == [True]


def test_a_read_that_reveals_nothing_leaves_the_fact_unknown() -> None:
    """Reading a Halted VM's record says nothing of guest drivers; a running one's does."""
    h = Harness(connect(_server(guest_agent=False), facts=Facts(guest_has_pv_drivers=None)), "x")
    halted, running = new_vm(h), new_vm(h)
    h.call("VM.start", running, False, False)
    h.call("VM.get_record", halted)
    assert h.world.facts.guest_has_pv_drivers is None
    h.check_state(full=True)
    assert h.world.facts.guest_has_pv_drivers is False
    h.finish()


@dataclass
class InterruptedAfter(Wrapped):
    """A transport whose ``method`` call reaches the server, then the caller is interrupted
    (Ctrl-C landing while the answer is read): the target did the call, the model never knew."""

    method: str
    raising: type[BaseException] = KeyboardInterrupt

    def call(self, method: str, *params: Value) -> Outcome:
        outcome = self.inner.call(method, *params)
        if method == self.method:
            raise self.raising()
        return outcome


@pytest.mark.parametrize("raising", [KeyboardInterrupt, TargetTimeout])
def test_an_exchange_cut_short_ends_the_example_without_a_comparison(
    raising: type[BaseException],
) -> None:
    connection = connect(wrap=lambda inner: InterruptedAfter(inner, "VM.snapshot", raising))
    h = Harness(connection, "lifecycle")
    vm = new_vm(h)
    with pytest.raises(raising):
        h.call("VM.snapshot", vm, "snap")
    assert h.off_track
    h.finish()  # compares nothing: the target has a snapshot the model never saw
    # the teardown removed the VM; the run's closing sweep removes the snapshot it never knew
    assert len(sweep_run_vms(connection.target, connection.root.session, "harness-tests")) == 1


def test_a_pool_template_copy_cut_short_before_its_tag_is_still_swept() -> None:
    # A clone of a template the run did not make carries no run tag until the next call: the
    # run's closing sweep finds it by the name it was given, and leaves another run's alone.
    connection = connect(
        _server(templates=True),
        wrap=lambda inner: InterruptedAfter(inner, "VM.clone", KeyboardInterrupt),
    )
    h = Harness(connection, "templates")
    template = pool_templates(h)[0]
    with pytest.raises(KeyboardInterrupt):
        picked(h, template, "clone")
    h.finish()
    other_run = run_label("someone else's copy", "another-run")
    unwrapped = connection.target.inner  # type: ignore[attr-defined]
    unwrapped.call("VM.clone", connection.root.session, template, other_run)
    swept = sweep_run_vms(connection.target, connection.root.session, "harness-tests")
    assert len(swept) == 1
    left = connection.target.call("VM.get_all_records", connection.root.session)
    assert isinstance(left, Success) and isinstance(left.value, dict)
    labels = [record["name_label"] for record in left.value.values()]  # type: ignore[index]
    assert other_run in labels and not any("picked" in str(label) for label in labels)


def test_an_example_in_step_is_compared_at_its_end() -> None:
    # The other side: the same lost snapshot, with the harness unaware of the interrupt.
    connection = connect(wrap=lambda inner: InterruptedAfter(inner, "VM.snapshot"))
    h = Harness(connection, "lifecycle")
    vm = new_vm(h)
    with pytest.raises(KeyboardInterrupt):
        h.call("VM.snapshot", vm, "snap")
    h.off_track = False
    with pytest.raises(Divergence, match="snapshots"):
        h.finish()


def test_a_vm_whose_uuid_changes_is_a_divergence() -> None:
    """xapi never changes a VM's uuid: the second read showing another one diverges."""
    reads: list[str] = []

    def drifting(outcome: Outcome) -> Outcome:
        assert isinstance(outcome, Success) and isinstance(outcome.value, dict)
        reads.append("read")
        suffix = "0" if len(reads) == 1 else "1"
        return Success({**outcome.value, "uuid": outcome.value["uuid"][:-1] + suffix})

    h = Harness(connect(wrap=lambda inner: Tampered(inner, "VM.get_record", drifting)), "fields")
    vm = new_vm(h)
    h.call("VM.get_record", vm)
    with pytest.raises(Divergence, match=r"uuid.*changed from"):
        h.call("VM.get_record", vm)
    h.teardown()


def test_two_vms_with_one_uuid_are_a_divergence() -> None:
    """xapi never gives two live VMs one uuid."""
    same = "11111111-2222-4333-8444-555555555555"

    def one_uuid(outcome: Outcome) -> Outcome:
        assert isinstance(outcome, Success) and isinstance(outcome.value, dict)
        return Success({**outcome.value, "uuid": same})

    h = Harness(connect(wrap=lambda inner: Tampered(inner, "VM.get_record", one_uuid)), "fields")
    first, second = new_vm(h), new_vm(h)
    h.call("VM.get_record", first)
    with pytest.raises(Divergence, match="is also"):
        h.call("VM.get_record", second)
    h.teardown()


def test_honest_uuids_stay_put(harness: Harness) -> None:
    first, second = new_vm(harness), new_vm(harness)
    for vm in (first, second, first, second):
        harness.call("VM.get_record", vm)
    harness.check_state(full=True)
