"""Blind spots the mutation benchmark showed (docs/mutation.md), each now asked about and
judged both ways: the reference server conforms, a target whose answer to the one call is
wrong diverges.

- VM.create in each power state (``creates_sweep``): a Suspended VM without its suspend image
  is refused with VM_BAD_POWER_STATE naming the ref xapi drew for it;
- each VCPU rule on both sides of its bound (the memory sweep's ``set_VCPUs_max(1)``);
- reads of other classes' objects by refs and uuids that name nothing (the rpc area);
- the start of each crash action on an HVM and a PV guest (``crash_actions_sweep``);
- the guest plugin called in a row on a running VM, each function first (``_plugin_calls``);
- power_state_reset of a VM running on the master and on a slave;
- the memory an HVM and a PV guest could have within a total (VM.maximise_memory);
- each host's control domain asked about, and started on, every host (refused by its affinity).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from conformance.areas import sweeps
from conformance.areas.machines import OTHER_CLASS_READS, RpcMachine
from conformance.areas.strategies import MADE_UP_REF, UNWRITTEN_REF, vm_record
from conformance.engine.harness import Connection, Harness
from conformance.judge.divergence import Divergence
from conformance.server.app import XenAPIApp
from conformance.targets.inprocess import InProcessTarget
from models.outcome import Failure, Outcome, Success
from tests.conformance.test_harness import PASSWORD, Tampered, _server, connect

Rewrite = Callable[[Outcome], Outcome]


def _last_param_dropped(outcome: Outcome) -> Outcome:
    if isinstance(outcome, Failure):
        return Failure(outcome.code, outcome.params[:-1])
    return outcome


def _refused(outcome: Outcome) -> Outcome:
    return Failure(
        "INVALID_VALUE", ("VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max", "1")
    )


def _a_mib_more(outcome: Outcome) -> Outcome:
    """An int64 answer a MiB larger (over XML-RPC it arrives as its digits)."""
    if isinstance(outcome, Success) and str(outcome.value).isdigit():
        return Success(str(int(str(outcome.value)) + 2**20))
    return outcome


def _connection(method: str, rewrite: Rewrite | None) -> Connection:
    if rewrite is None:
        return connect()

    def wrap(inner: InProcessTarget) -> Tampered:
        return Tampered(inner, method, rewrite)

    return connect(wrap=wrap)


def _creates(connection: Connection) -> None:
    for case in sweeps.creates_sweep():
        case(connection, "lifecycle")


def _vcpus_max_at_its_bound(connection: Connection) -> None:
    sweeps._memory_case("set_VCPUs_max", (1,), "Halted")(connection, "memory")


def _crash_actions(connection: Connection) -> None:
    for case in sweeps.crash_actions_sweep():
        case(connection, "lifecycle")


def _plugin_calls(connection: Connection) -> None:
    for first in sweeps.PLUGIN_FUNCTIONS:
        sweeps.vm_case(partial(sweeps._plugin_calls, first=first), "Running")(
            connection, "lifecycle"
        )


def _resets(connection: Connection) -> None:
    for host in (0, -1):
        sweeps.vm_case(partial(sweeps._reset_on, host=host))(connection, "lifecycle")


def _maximised(connection: Connection) -> None:
    for policy in sweeps.BOOT_POLICIES:
        sweeps._maximised(connection, "memory", policy)


def _other_class_reads(connection: Connection) -> None:
    machine = RpcMachine(connection)
    for message in OTHER_CLASS_READS:
        machine.other_class_read("OpaqueRef:NULL", message)
    machine.teardown()


def _standing_objects(connection: Connection) -> None:
    sweeps.vm_case(sweeps._standing_objects_queried)(connection, "fields")


def _map_edits(connection: Connection) -> None:
    sweeps.vm_case(sweeps._every_map_edited)(connection, "fields")


def _pinned_start(connection: Connection) -> None:
    sweeps.vm_case(sweeps._pinned_then_started)(connection, "memory")


def _control_domains(connection: Connection) -> None:
    sweeps.vm_case(sweeps._control_domains_placed)(connection, "lifecycle")


def _first_left_out(outcome: Outcome) -> Outcome:
    if isinstance(outcome, Success) and isinstance(outcome.value, tuple | list):
        return Success(tuple(outcome.value[1:]))
    return outcome


# (case, the suite's cases, the method a faulty target answers wrongly, how)
CASES: tuple[tuple[str, Callable[[Connection], None], str, Rewrite], ...] = (
    ("suspended create's refusal", _creates, "VM.create", _last_param_dropped),
    ("VCPUs_max at its bound", _vcpus_max_at_its_bound, "VM.set_VCPUs_max", _refused),
    ("other class by uuid", _other_class_reads, "VDI.get_by_uuid", _last_param_dropped),
    ("other class by ref", _other_class_reads, "VIF.get_device", _last_param_dropped),
    ("crash action refused", _crash_actions, "VM.start_on", _last_param_dropped),
    ("plugin calls in a row", _plugin_calls, "VM.call_plugin", _last_param_dropped),
    ("reset of a running VM", _resets, "VM.power_state_reset", _last_param_dropped),
    ("memory maximised", _maximised, "VM.maximise_memory", _a_mib_more),
    ("hosts listed", _standing_objects, "host.get_all", _first_left_out),
    ("NVRAM key added twice", _map_edits, "VM.add_to_NVRAM", _last_param_dropped),
    ("pinned memory started", _pinned_start, "VM.start", _refused),
    ("platform key added twice", _map_edits, "VM.add_to_platform", _last_param_dropped),
    ("SR found by label", _standing_objects, "SR.get_by_name_label", _first_left_out),
    ("control domain asked", _control_domains, "VM.assert_can_boot_here", _last_param_dropped),
    ("control domain started", _control_domains, "VM.start_on", _last_param_dropped),
)


@pytest.mark.parametrize(("case", "run", "method", "rewrite"), CASES, ids=[c[0] for c in CASES])
def test_the_reference_server_conforms(
    case: str, run: Callable[[Connection], None], method: str, rewrite: Rewrite
) -> None:
    del method, rewrite
    connection = _connection("", None)
    run(connection)
    assert not connection.tally.divergences, case


@pytest.mark.parametrize(("case", "run", "method", "rewrite"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_answer_diverges(
    case: str, run: Callable[[Connection], None], method: str, rewrite: Rewrite
) -> None:
    with pytest.raises(Divergence) as raised:
        run(_connection(method, rewrite))
    assert method in raised.value.info.reproducer, case


def test_a_refused_create_spends_its_ref() -> None:
    """The ref the refusal names is not the next VM's (xapi drew it with Ref.make)."""
    harness = Harness(connect(), "lifecycle")
    record = sweeps.vm_record(harness.connection, power_state="Suspended")
    refused = harness.call("VM.create", record)
    made = harness.call("VM.create", sweeps.vm_record(harness.connection))
    assert isinstance(refused, Failure) and refused.params[0] != getattr(made, "value", None)
    harness.finish()
    assert not harness.connection.tally.divergences


@pytest.mark.parametrize("read_by", ["a ref setters write", "a ref no example writes"])
def test_another_clients_vm_holding_a_made_up_ref_leaves_other_class_reads_judged(
    read_by: str,
) -> None:
    """Another client (another worker) sets a VM's affinity to the made-up ref setters write,
    after the example read the pool: the server's model, seeing that VM, cannot tell whether
    the ref names a VBD; the example's still expects HANDLE_INVALID. The rpc area reads by a
    ref no example writes, which conforms whatever the VMs hold."""
    state = _server()
    other_client = InProcessTarget(XenAPIApp(state), "xmlrpc")
    session = other_client.call("session.login_with_password", "root", PASSWORD)
    assert isinstance(session, Success)
    vm = other_client.call("VM.create", session.value, vm_record("another client"))
    assert isinstance(vm, Success)
    harness = Harness(connect(state), "rpc")
    set_affinity = ("VM.set_affinity", session.value, vm.value, MADE_UP_REF)
    assert isinstance(other_client.call(*set_affinity), Success)
    if read_by == "a ref setters write":
        with pytest.raises(Divergence, match="MESSAGE_METHOD_UNKNOWN"):
            harness.call("VBD.get_record", MADE_UP_REF)
    else:
        harness.call("VBD.get_record", UNWRITTEN_REF)
    harness.teardown()
