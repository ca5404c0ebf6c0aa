"""Deterministic sweeps: every lifecycle message in every reachable (power state, VM kind) cell.

The Hypothesis machines explore sequences; the sweeps guarantee the oracle tables are covered
on every run, each cell from a fresh VM, so a failing cell is already a minimal reproducer.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial

from conformance.areas import strategies
from conformance.engine.harness import Connection, Harness
from conformance.errors import ProtocolError, TargetUnreachable
from conformance.judge.divergence import Desynced, Divergence
from conformance.judge.refs import RUN_TAG, run_label
from conformance.targets import Target, other_protocol
from models import catalogue
from models.catalogue import MessageKind, kind_of
from models.checks import update_vm
from models.coverage import EDGE_CELLS, REACHABLE_STATES
from models.outcome import Success, Value
from models.transition import as_map
from models.world import NULL_REF

__all__ = [
    "CELLS",
    "GETTERS",
    "LIFECYCLE_MESSAGES",
    "blocked_sweep",
    "fields_sweep",
    "lifecycle_sweep",
    "memory_sweep",
    "picked",
    "placement_sweep",
    "pool_templates",
    "pool_templates_sweep",
    "run_all",
    "vm_case",
]

MIB = 2**20

LIFECYCLE_MESSAGES = (
    "start",
    "start_on",
    "clean_shutdown",
    "hard_shutdown",
    "shutdown",
    "clean_reboot",
    "hard_reboot",
    "pause",
    "unpause",
    "suspend",
    "resume",
    "resume_on",
    "checkpoint",
    "snapshot",
    "clone",
    "copy",
    "destroy",
    "provision",
    "revert",
    "power_state_reset",
    "pool_migrate",
    "set_is_a_template",
)
"""The messages whose behaviour the power-state × VM-kind matrix decides (semantics §2.2)."""

CELLS = REACHABLE_STATES
"""(power state, VM kind) pairs a client can reach through the API."""

BLOCKABLE = tuple(
    m
    for m in LIFECYCLE_MESSAGES
    if m not in ("resume_on", "revert", "power_state_reset", "pool_migrate", "set_is_a_template")
)
"""Messages a blocked_operations key of the same name stops."""


def vm_record(connection: Connection, **overrides: Value) -> dict[str, Value]:
    """A plain, valid VM.create record tagged with the connection's run id."""
    return strategies.vm_record(connection.run_id, name_label="xapi-conformance sweep", **overrides)


def _ref(outcome: object) -> str:
    return str(outcome.value) if isinstance(outcome, Success) else NULL_REF


def reach(harness: Harness, state: str, kind: str) -> str:
    """A suite VM in ``state`` of ``kind``, built through the API (each step compared)."""
    connection = harness.connection
    if kind == "snapshot":
        source = reach(harness, "Running" if state == "Suspended" else "Halted", "plain")
        return _ref(
            harness.call(
                "VM.checkpoint" if state == "Suspended" else "VM.snapshot", source, "sweep snapshot"
            )
        )
    if kind in ("template", "default_template"):
        other = {RUN_TAG: connection.run_id}
        if kind == "default_template":
            other["default_template"] = "true"
        return _ref(
            harness.call("VM.create", vm_record(connection, is_a_template=True, other_config=other))
        )
    ref = _ref(harness.call("VM.create", vm_record(connection)))
    if state != "Halted":
        harness.call("VM.start", ref, state == "Paused", False)
    if state == "Suspended":
        harness.call("VM.suspend", ref)
    return ref


def _args(harness: Harness, message: str) -> tuple[Value, ...]:
    hosts = sorted(harness.world.hosts)
    return {
        "start": (False, False),
        "resume": (False, False),
        "start_on": (hosts[-1], False, False),
        "resume_on": (hosts[-1], False, False),
        "checkpoint": ("sweep checkpoint",),
        "snapshot": ("sweep snapshot",),
        "clone": ("sweep clone",),
        "copy": ("sweep copy", NULL_REF),
        "pool_migrate": (hosts[-1], {}),
        "set_is_a_template": (True,),
    }.get(message, ())


@dataclass(frozen=True)
class Cell:
    """One sweep case: a message, in a state, on a kind of VM, optionally blocked first."""

    message: str
    state: str
    kind: str
    blocked: bool = False

    def __call__(self, connection: Connection, area: str) -> None:
        """Build the VM, make the call, check the state; always clean up."""
        _run_case(connection, area, self.state, self.kind, self._act)

    def _act(self, harness: Harness, ref: str) -> None:
        if self.blocked:
            harness.call("VM.add_to_blocked_operations", ref, self.message, "xapi-conformance")
        harness.call(f"VM.{self.message}", ref, *_args(harness, self.message))


def _run_case(
    connection: Connection,
    area: str,
    state: str,
    kind: str,
    act: Callable[[Harness, str], None],
) -> None:
    """One case from a fresh VM: reach the cell, ``act`` on the VM, compare records
    (``Harness.finish``: the full comparison, then a teardown as short as the model allows).

    A waived divergence the model cannot step past ends the case (``Desynced``), not the sweep.
    """
    _run_on(connection, area, lambda harness: [reach(harness, state, kind)], act)


def _run_on(
    connection: Connection,
    area: str,
    subjects: Callable[[Harness], list[str]],
    act: Callable[[Harness, str], None],
) -> None:
    """``act`` on each VM ``subjects`` gives (none: the case ends), then the records compared."""
    harness = Harness(connection, area)
    connection.tally.examples += 1
    try:
        refs = [ref for ref in subjects(harness) if ref != NULL_REF]
        for ref in refs:
            act(harness, ref)
    except BaseException as error:
        harness.teardown()
        if isinstance(error, Desynced):
            return
        raise
    if not refs:
        harness.teardown()
        return
    with contextlib.suppress(Desynced):
        harness.finish()


def lifecycle_sweep() -> Iterator[Callable[[Connection, str], None]]:
    """The placement checks (``placement_sweep``), every lifecycle message in every reachable
    cell, then the fields of every kind of copy
    and revert of a shaped VM (``copies_sweep``), then the pool's default templates as a
    client picks one (``pool_templates_sweep``), then VM.create in each power state a client
    may ask for (``creates_sweep``), the start of each configuration a start refuses or lets
    through (``crash_actions_sweep``, ``nested_virt_sweep``), a VM started after its domain
    type changed (``retyped_sweep``), the guest plugin called in a row
    (``_plugin_calls``) and a running VM's power_state_reset on each host (``_reset_on``)."""
    yield from placement_sweep()
    for state, kind in CELLS:
        for message in LIFECYCLE_MESSAGES:
            yield Cell(message, state, kind)
    yield from copies_sweep()
    yield from pool_templates_sweep()
    yield from creates_sweep()
    yield from crash_actions_sweep()
    yield from nested_virt_sweep()
    yield from retyped_sweep()
    for first in PLUGIN_FUNCTIONS:
        yield vm_case(partial(_plugin_calls, first=first), "Running")
    for host in (0, -1):
        yield vm_case(partial(_reset_on, host=host))


def placement_sweep() -> Iterator[Case]:
    """xapi_vm_helpers.ml ``assert_can_boot_here`` against each host of the pool, with
    VM.get_possible_hosts, then VM.start_on and VM.start: for a VM whose virtual hardware
    platform version no host offers (3), and one every host offers (2); and for a VM with
    more VCPUs than any host has CPUs, asked (never started) before and after platform
    ``vcpu-unrestricted``; then VM.start of a VM whose affinity is the pool's last host; then
    each host's control domain (``_control_domains_placed``)."""
    for version in (3, 2):
        yield vm_case(partial(_placed, version=version))
    yield vm_case(_over_cpus)
    yield vm_case(_started_by_affinity)
    yield vm_case(_control_domains_placed)


def _control_domains_placed(harness: Harness, _ref: str) -> None:
    """Each control domain asked about every host and started on each: xapi refuses a host
    other than its affinity (OPERATION_NOT_ALLOWED with its reason) before anything else, and
    a start on its own host by its power state, so nothing changes on a real pool either."""
    world = harness.world
    for dom0 in sorted(r for r, vm in world.vms.items() if vm["is_control_domain"] is True):
        _ask_every_host(harness, dom0)
        for host in sorted(world.hosts):
            harness.call("VM.start_on", dom0, host, False, False)


def _ask_every_host(harness: Harness, ref: str) -> None:
    for host in sorted(harness.world.hosts):
        harness.call("VM.assert_can_boot_here", ref, host)
    harness.call("VM.get_possible_hosts", ref)


def _placed(harness: Harness, ref: str, version: int) -> None:
    harness.call("VM.set_hardware_platform_version", ref, version)
    _ask_every_host(harness, ref)
    harness.call("VM.start_on", ref, sorted(harness.world.hosts)[-1], False, False)
    if harness.world.vms[ref]["power_state"] == "Halted":
        harness.call("VM.start", ref, False, False)


def _started_by_affinity(harness: Harness, ref: str) -> None:
    """xapi ranks a VM's affinity host first (``rank_hosts_by_placement``): a VM whose affinity
    is the pool's last host starts there, where the model's own choice would be the first."""
    harness.call("VM.set_affinity", ref, sorted(harness.world.hosts)[-1])
    harness.call("VM.start", ref, False, False)
    harness.call("VM.get_resident_on", ref)


def _over_cpus(harness: Harness, ref: str) -> None:
    most = max(host.cpu_count for host in harness.world.hosts.values())
    harness.call("VM.set_VCPUs_max", ref, most + 1)
    _ask_every_host(harness, ref)
    harness.call("VM.add_to_platform", ref, "vcpu-unrestricted", "true")
    _ask_every_host(harness, ref)


SUSPEND_DATA: dict[str, Value] = {
    "last_booted_record": "booted",
    "last_boot_CPU_flags": {"vendor": "x"},
}
"""What a suspended VM's record carries besides its suspend VDI."""
NAMELESS_VDI = "OpaqueRef:00000000-0000-0000-0000-0000000c0ffe"
"""A suspend VDI ref a client may put in any VM.create record; it names no VDI (xapi stores it
only for a Suspended VM, which is never asked for with it)."""
CREATED_STATES: tuple[tuple[str, dict[str, Value]], ...] = (
    ("Running", {}),
    ("Paused", {}),
    ("Suspended", {}),
    ("Suspended", SUSPEND_DATA),
    ("Halted", {**SUSPEND_DATA, "suspend_VDI": NAMELESS_VDI}),
    ("Running", {**SUSPEND_DATA, "suspend_VDI": NAMELESS_VDI}),
)
"""Power states VM.create is asked for, with the suspend data a client may give: xapi_vm.ml
create makes any VM but a Suspended one Halted, with no suspend data (no booted record, no CPU
flags, a NULL suspend VDI, whatever the record held), and refuses a Suspended one unless it has
CPU flags, a booted record and a suspend VDI (VM_BAD_POWER_STATE naming the ref it drew)."""


def creates_sweep() -> Iterator[Case]:
    """VM.create of each of ``CREATED_STATES``; what it made read back."""
    for state, data in CREATED_STATES:
        yield partial(_created_in, state=state, data=data)


def _created_in(connection: Connection, area: str, state: str, data: dict[str, Value]) -> None:
    record = {"power_state": state, **data}
    _created_then(connection, area, record, partial(_call, method="VM.get_record", args=()))


def _created_then(
    connection: Connection,
    area: str,
    record: dict[str, Value],
    act: Callable[[Harness, str], None],
) -> None:
    """``act`` on a VM made by VM.create of the run's record with ``record``'s fields."""

    def made(harness: Harness) -> list[str]:
        return [_ref(harness.call("VM.create", vm_record(connection, **record)))]

    _run_on(connection, area, made, act)


PLUGIN_FUNCTIONS = ("xapi-conformance-no-fn", "request-rdp-on", "run-script")
"""Functions of the guest plugin: one it has not, one the guest cannot run, the run-script
function a pool allows or not (pool other_config:allow_guest_agent_run_script)."""


def _plugin_calls(harness: Harness, ref: str, first: str) -> None:
    """VM.call_plugin on a running VM in a row: a plugin there is not (refused before the rate
    limit), the function ``first`` (let through: it counts), then the others within the rate
    limit's interval (VM_CALL_PLUGIN_RATE_LIMIT, unless the host's clock has moved past it)."""
    harness.call("VM.call_plugin", ref, "xapi-conformance-no-plugin", "x", {})
    for fn in (first, *(f for f in PLUGIN_FUNCTIONS if f != first)):
        harness.call("VM.call_plugin", ref, "guest-agent-operation", fn, {})


def _reset_on(harness: Harness, ref: str, host: int) -> None:
    """VM.power_state_reset of a VM running on the first or the last host (of two, one is the
    master): xapi refuses it with DOMAIN_EXISTS on the pool master and HOST_IS_LIVE on a live
    slave (the cells' VMs run where VM.start puts them, always the same host)."""
    harness.call("VM.start_on", ref, sorted(harness.world.hosts)[host], False, False)
    harness.call("VM.power_state_reset", ref)


BOOT_POLICIES = ("BIOS order", "")
"""An HVM guest and a PV one (no HVM boot policy: domain type pv)."""


def crash_actions_sweep() -> Iterator[Case]:
    """Each actions_after_crash on an HVM and a PV guest, started on a host and then anywhere:
    xapi_vm_helpers.ml refuses rename_restart everywhere and the coredump actions on an HVM
    guest (VALUE_NOT_SUPPORTED on the host asked for; NO_HOSTS_AVAILABLE when it picks)."""
    for policy in BOOT_POLICIES:
        for action in catalogue.ENUMS["on_crash_behaviour"]:
            yield partial(_configured_start, policy=policy, action=action)


def _configured_start(connection: Connection, area: str, policy: str, action: str) -> None:
    def start(harness: Harness, ref: str) -> None:
        harness.call("VM.start_on", ref, sorted(harness.world.hosts)[-1], False, False)
        harness.call("VM.start", ref, False, False)

    record: dict[str, Value] = {"HVM_boot_policy": policy, "actions_after_crash": action}
    _created_then(connection, area, record, start)


NESTED_VIRT_VALUES = ("true", "1", "yes")
"""platform:nested-virt values of an unpinned VM's start: xapi_vm.ml start refuses a nested
one whose memory is not pinned at static max unless forced (MEMORY_CONSTRAINT_VIOLATION_MAXPIN,
CP-18860), and vm_platform.ml a value that is not a boolean (INVALID_VALUE)."""


def nested_virt_sweep() -> Iterator[Case]:
    """An unpinned VM asking for nested virt (``NESTED_VIRT_VALUES``) started unforced: each
    start is refused, so nothing runs on a real pool."""
    for value in NESTED_VIRT_VALUES:
        yield partial(_nested_start, value=value)


def _nested_start(connection: Connection, area: str, value: str) -> None:
    _created_then(connection, area, {"platform": {"nested-virt": value}}, _unforced_start)


def _unforced_start(harness: Harness, ref: str) -> None:
    harness.call("VM.start", ref, False, False)


RETYPERS = ("VM.set_domain_type", "VM.set_HVM_boot_policy")
"""The setters that turn a PV guest into an HVM one (each sets the other field too)."""


def retyped_sweep() -> Iterator[Case]:
    """A PV guest made HVM by each of ``RETYPERS``, then started: neither setter refreshes the
    stored memory_overhead (xapi_vm.ml), and message_forwarding.ml start does, before it places
    the VM (``update_memory_overhead``), so the running VM shows the overhead of an HVM guest."""
    for setter in RETYPERS:
        yield partial(_retyped_start, setter=setter)


def _retyped_start(connection: Connection, area: str, setter: str) -> None:
    def start(harness: Harness, ref: str) -> None:
        harness.call(setter, ref, "hvm" if setter == "VM.set_domain_type" else "BIOS order")
        harness.call("VM.start", ref, False, False)

    _created_then(connection, area, {"HVM_boot_policy": ""}, start)


def blocked_sweep() -> Iterator[Cell]:
    """Every blockable message, blocked, on a plain VM in every power state."""
    for state, kind in CELLS[:4]:
        for message in BLOCKABLE:
            yield Cell(message, state, kind, blocked=True)


MEMORY_CASES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("set_memory_dynamic_range", (256 * MIB, 512 * MIB)),
    ("set_memory_dynamic_range", (512 * MIB, 256 * MIB)),
    ("set_memory_dynamic_range", (64 * MIB, 256 * MIB)),
    ("set_memory_dynamic_range", (512 * MIB, 512 * MIB)),
    ("set_memory_static_range", (128 * MIB, 1024 * MIB)),
    ("set_memory_static_range", (384 * MIB, 1024 * MIB)),
    ("set_memory_static_range", (128 * MIB, 384 * MIB)),
    ("set_memory_limits", (128 * MIB, 1024 * MIB, 256 * MIB, 512 * MIB)),
    ("set_memory_limits", (128 * MIB, 1024 * MIB, 512 * MIB, 256 * MIB)),
    ("set_memory_limits", (512 * MIB, 512 * MIB, 512 * MIB, 512 * MIB)),
    ("set_memory_dynamic_min", (600 * MIB,)),
    ("set_memory_dynamic_max", (200 * MIB,)),
    ("set_memory_static_max", (300 * MIB,)),
    ("set_memory_static_min", (300 * MIB,)),
    ("set_memory", (768 * MIB,)),
    ("set_VCPUs_at_startup", (0,)),
    ("set_VCPUs_at_startup", (1,)),
    ("set_VCPUs_at_startup", (2,)),
    ("set_VCPUs_at_startup", (64,)),
    ("set_VCPUs_max", (0,)),
    ("set_VCPUs_max", (1,)),
    ("set_VCPUs_max", (4,)),
)
"""Memory and VCPU setters with ordered, disordered and pinned values, and each VCPU rule on
both sides of its bound (semantics §6, §14; xapi_vm_helpers.ml validate_VCPUs: 0 <
VCPUs_at_startup <= VCPUs_max; the sweep's VMs have 2 VCPUs, 1 at startup)."""


SETTER_CELLS = (
    ("Halted", "plain"),
    ("Running", "plain"),
    ("Halted", "template"),
    ("Halted", "snapshot"),
)
"""Where the setters are tried: a plain VM halted and running, a template and a snapshot
(xapi validates a template's values as a VM's, and refuses most changes to a snapshot)."""


MAXIMISED: tuple[tuple[int, bool], ...] = (
    (4 * 2**30, False),
    (4 * 2**30, True),
    (300 * MIB, False),
    (0, False),
    (-1, False),
)
"""VM.maximise_memory's (total, approximate): a host's worth, as if with 64 vCPUs, a total
barely above the VM's needs, nothing, and a negative one (helpers.ml bisect's first assert:
INTERNAL_ERROR naming the line)."""


def memory_sweep() -> Iterator[Callable[[Connection, str], None]]:
    """Each memory case on a Halted and a Running plain VM, a template and a snapshot; then
    the memory a VM could have within a total (``MAXIMISED``) for an HVM and a PV guest with
    a shadow multiplier of 4 (memory_check.ml counts it for HVM guests only); then a VM with
    its memory pinned started (``_pinned_then_started``)."""
    for method, values in MEMORY_CASES:
        for state, kind in SETTER_CELLS:
            yield _memory_case(method, values, state, kind)
    for policy in BOOT_POLICIES:
        yield partial(_maximised, policy=policy)
    yield vm_case(_pinned_then_started)


def _pinned_then_started(harness: Harness, ref: str) -> None:
    """A VM whose four memory values are one (static_min = static_max) starts: the boot
    check refuses only static_max < static_min or dynamic_max < dynamic_min."""
    harness.call("VM.set_memory_limits", ref, *(512 * MIB,) * 4)
    harness.call("VM.start", ref, False, False)


def _maximised(connection: Connection, area: str, policy: str) -> None:
    def made(harness: Harness) -> list[str]:
        record = vm_record(connection, HVM_boot_policy=policy, HVM_shadow_multiplier=4.0)
        return [_ref(harness.call("VM.create", record))]

    def ask(harness: Harness, ref: str) -> None:
        harness.call("VM.compute_memory_overhead", ref)
        for total, approximate in MAXIMISED:
            harness.call("VM.maximise_memory", ref, total, approximate)

    _run_on(connection, area, made, ask)


def _memory_case(
    method: str, values: tuple[int, ...], state: str, kind: str = "plain"
) -> Callable[[Connection, str], None]:
    def run(connection: Connection, area: str) -> None:
        _run_case(
            connection, area, state, kind, lambda h, ref: _call(h, ref, f"VM.{method}", values)
        )

    return run


def _call(harness: Harness, ref: str, method: str, args: tuple[Value, ...]) -> None:
    harness.call(method, ref, *args)


GETTERS = tuple(
    m.wire_name
    for m in catalogue.MESSAGES.values()
    if kind_of(m)[0] is MessageKind.GET_FIELD and len(m.params) == 1 and not m.removed
)
"""Every VM field getter the catalogue declares (the VM its only parameter)."""


def fields_sweep() -> Iterator[Callable[[Connection, str], None]]:
    """Every field getter in every reachable cell, on one VM per cell: what each field reads
    in each power state and VM kind, compared with the model (reads change nothing, so the
    records are compared once, at the cell's end); then values at the edges of their types
    (``edges_sweep``), the pool-wide queries after every kind of change (``queries_sweep``),
    every setter (``setters_sweep``) and every map's keys edited (``_every_map_edited``)."""
    for state, kind in CELLS:
        yield _getters_case(state, kind)
    yield from edges_sweep()
    yield from queries_sweep()
    yield from setters_sweep()
    yield vm_case(_every_map_edited)


def _getters_case(state: str, kind: str) -> Callable[[Connection, str], None]:
    def run(connection: Connection, area: str) -> None:
        _run_case(connection, area, state, kind, _read_every_field)

    return run


def _read_every_field(harness: Harness, ref: str) -> None:
    for getter in GETTERS:
        harness.call(getter, ref)


# ---- values at the edges of their types -------------------------------------------------------

INT_FIELDS = ("user_version", "start_delay", "shutdown_delay", "order")
"""int64 fields a client sets freely (start_delay, shutdown_delay and order must not be
negative: xapi_vm.ml's setters)."""


Case = Callable[[Connection, str], None]
Act = Callable[[Harness, str], None]


def vm_case(act: Act, state: str = "Halted", kind: str = "plain") -> Case:
    """A sweep case: ``act`` on a fresh VM in ``state`` of ``kind``."""

    def run(connection: Connection, area: str) -> None:
        _run_case(connection, area, state, kind, act)

    return run


def edges_sweep() -> Iterator[Case]:
    """Each int64 edge into every free int field, each edge text into the label, description
    and an other_config value (found again by get_by_name_label), each double into the shadow
    multiplier: written, read back one by one and in the record; over the run's protocol, then
    over the other (``over_both_protocols``); and text that is not UTF-8 over JSON-RPC."""
    cases = [vm_case(partial(_write_ints, number=n)) for n in strategies.EDGE_INTS]
    cases += [vm_case(partial(_write_texts, text=t)) for t in strategies.EDGE_TEXTS]
    doubles = (*strategies.EDGE_FLOATS, 1.0, 4.0)
    cases += [vm_case(partial(_write_double, double=d)) for d in doubles]
    yield from cases
    yield from (over_the_other_protocol(case) for case in cases)
    yield over_json_rpc(vm_case(_write_not_utf8))


NOT_UTF8 = ("\ud800", "xapi-conformance \udfff half", "\udc80\ud800")
"""Texts no UTF-8 holds (lone UTF-16 halves): a JSON-RPC client can send them as ``\\u``
escapes; xapi refuses each string parameter holding one with INVALID_VALUE (server_helpers.ml
checks every parameter before the call). XML cannot carry them at all."""


def _write_not_utf8(harness: Harness, ref: str) -> None:
    _edge_asked(harness, "text no UTF-8 holds")
    for text in NOT_UTF8:
        harness.call("VM.set_name_label", ref, text)
        harness.call("VM.set_name_description", ref, text)
        harness.call("VM.add_to_other_config", ref, "xapi-conformance-edge", text)
        harness.call("VM.add_to_other_config", ref, text, "x")
        harness.call("VM.get_by_name_label", text)
    harness.call("VM.get_record", ref)


def over_the_other_protocol(case: Case) -> Case:
    """``case`` run over the protocol the run does not speak (to the same target, with the
    same sessions); nothing where the target cannot say."""

    def run(connection: Connection, area: str) -> None:
        twin = other_protocol(connection.target)
        if twin is None:
            return
        try:
            if _serves(twin, connection.root.session):
                case(replace(connection, target=twin), area)
        finally:
            twin.close()

    return run


def _serves(twin: Target, session: str) -> bool:
    """Whether ``twin`` gets XenAPI answers at all: a target that serves one protocol only
    (a 404 at /jsonrpc, a connection closed) leaves the other protocol's cases unjudged, their
    coverage cells not exercised, instead of ending the run as a tool error."""
    try:
        twin.call("pool.get_all", session)
    except (ProtocolError, TargetUnreachable):
        return False
    return True


def over_json_rpc(case: Case) -> Case:
    """``case`` over JSON-RPC: the run's own protocol, or the other."""
    other = over_the_other_protocol(case)

    def run(connection: Connection, area: str) -> None:
        (case if connection.target.protocol == "jsonrpc" else other)(connection, area)

    return run


def _edge_asked(harness: Harness, kind: str) -> None:
    """Count the edge case in its coverage cell (``EDGE_CELLS``: the kind of value, over the
    protocol the case speaks)."""
    protocol = harness.connection.target.protocol
    harness.connection.tally.coverage[EDGE_CELLS[0][0], protocol, kind] += 1


def _write_ints(harness: Harness, ref: str, number: int) -> None:
    _edge_asked(harness, "int64")
    for field in INT_FIELDS:
        harness.call(f"VM.set_{field}", ref, number)
        harness.call(f"VM.get_{field}", ref)
    harness.call("VM.get_record", ref)


def _write_texts(harness: Harness, ref: str, text: str) -> None:
    _edge_asked(harness, "text")
    harness.call("VM.set_name_label", ref, text)
    harness.call("VM.get_name_label", ref)
    harness.call("VM.get_by_name_label", text)
    harness.call("VM.set_name_description", ref, text)
    harness.call("VM.get_name_description", ref)
    harness.call("VM.add_to_other_config", ref, "xapi-conformance-edge", text)
    harness.call("VM.get_other_config", ref)
    harness.call("VM.get_record", ref)


def _write_double(harness: Harness, ref: str, double: float) -> None:
    _edge_asked(harness, "double")
    harness.call("VM.set_HVM_shadow_multiplier", ref, double)
    harness.call("VM.get_HVM_shadow_multiplier", ref)


SETTERS = tuple(
    (m.wire_name, field)
    for m in catalogue.MESSAGES.values()
    for kind, field in (kind_of(m),)
    if kind is MessageKind.SET_FIELD and len(m.params) == 2 and not m.removed and field
)
"""Every VM field setter the catalogue declares, with its field."""


MAP_EDITORS = tuple(
    (m.wire_name, f"VM.remove_from_{field}", field)
    for m in catalogue.MESSAGES.values()
    for kind, field in (kind_of(m),)
    if kind is MessageKind.MAP_ADD
    and not m.removed
    and field
    and f"remove_from_{field}" in catalogue.MESSAGES
)
"""Every VM map field a client edits key by key (add_to_…, remove_from_…), with its field."""


def _every_map_edited(harness: Harness, ref: str) -> None:
    """Each map of a Halted VM: a key added, added again (MAP_DUPLICATE_KEY, its parameters
    naming the class, the field, the VM and the key), removed, removed again (nothing to do);
    then added once more and the whole map set without it (a setter replaces the map)."""
    for add, remove, field in MAP_EDITORS:
        key_type = catalogue.FIELDS[field].type.key
        keys = catalogue.ENUMS[key_type.name] if key_type and key_type.kind == "enum" else ()
        key = keys[0] if keys else "xapi-conformance-key"
        for method, args in (
            (add, (key, "x")),
            (add, (key, "y")),
            (remove, (key,)),
            (remove, (key,)),
            (add, (key, "x")),
        ):
            harness.call(method, ref, *args)
        _map_set_without(harness, ref, field, key)


def _map_set_without(harness: Harness, ref: str, field: str, key: str) -> None:
    """VM.set_<field> with the map the VM holds, ``key`` left out; the map read back."""
    vm = harness.world.vms.get(ref)
    held = vm.get(field) if vm is not None else None
    if not isinstance(held, Mapping):
        return
    harness.call(f"VM.set_{field}", ref, {k: v for k, v in held.items() if k != key})
    harness.call(f"VM.get_{field}", ref)


def setters_sweep() -> Iterator[Case]:
    """Every setter on a plain VM (Halted and Running), a template and a snapshot, each
    writing the field's current value: the checks a setter makes before it writes (power
    state, template, snapshot, validation of the value) whatever the value."""
    for state, kind in SETTER_CELLS:
        yield vm_case(_every_setter, state, kind)


def _every_setter(harness: Harness, ref: str) -> None:
    for method, field in SETTERS:
        vm = harness.world.vms.get(ref)
        if vm is None or field not in vm:
            return
        harness.call(method, ref, vm[field])


# ---- pool-wide queries after every kind of change ---------------------------------------------

BOGUS_UUID = "00000000-0000-0000-0000-000000000000"


def learn_uuid(harness: Harness, ref: str) -> str | None:
    """VM ``ref``'s uuid as the target chose it (read with get_uuid, judged by shape), which the
    model then holds, so that get_by_uuid and the records name it exactly."""
    uuid = harness.call("VM.get_uuid", ref)
    if not isinstance(uuid, Success) or ref not in harness.world.vms:
        return None
    harness.adopt(update_vm(harness.world, ref, {"uuid": str(uuid.value)}, recompute=False))
    return str(uuid.value)


def query_pool(harness: Harness, ref: str) -> None:
    """Every query a client finds VMs with, after a change to VM ``ref``: by uuid (its own, in
    capitals, and one nobody has), by its label (and in capitals: xapi compares both exactly),
    all refs, all records (the suite's VMs compared exactly)."""
    for vm in harness.suite_vms():
        uuid = learn_uuid(harness, vm)
        if uuid is not None and vm == ref:
            for asked in dict.fromkeys((uuid, uuid.upper())):
                harness.call("VM.get_by_uuid", asked)
    harness.call("VM.get_by_uuid", BOGUS_UUID)
    if ref in harness.world.vms:
        label = str(harness.world.vms[ref]["name_label"])
        for asked in dict.fromkeys((label, label.upper())):
            harness.call("VM.get_by_name_label", asked)
    harness.call("VM.get_all")
    harness.call("VM.get_all_records")
    if ref in harness.world.vms:
        query_where(harness, harness.world.vms[ref])


def query_where(harness: Harness, vm: Mapping[str, Value]) -> None:
    """The filtered queries (VM.get_all_records_where, get_all_where) about ``vm``: one that
    selects it, one whose ``not`` reaches past an ``and`` (it binds loosest) and leaves it out,
    one whose ``or`` selects it by its one side that holds, one naming a field by its API name
    (the column is ``name__label``) and one with text outside the language."""
    label, state = (f'"{vm[field]}"' for field in ("name_label", "power_state"))
    template = f'"{str(vm["is_a_template"]).lower()}"'
    if label.count('"') > 2:  # a label no literal of the language can hold
        return
    harness.call(
        "VM.get_all_where",
        f'field "name__label" = {label} and field "power_state" = {state}',
    )
    harness.call(
        "VM.get_all_records_where",
        f'not field "name__label" = {label} and field "is_a_template" = {template}',
    )
    harness.call(
        "VM.get_all_records_where",
        f'field "name__label" = {label} or field "name__label" = "xapi-conformance other"',
    )
    harness.call("VM.get_all_records_where", f'field "name_label" = {label}')
    harness.call("VM.get_all_where", f"field \"power_state\" = '{vm['power_state']}'")


def queries_sweep() -> Iterator[Case]:
    """The queries after each kind of change: a VM made, started, suspended; a template, a
    default template, a snapshot and a checkpoint; a clone and a copy (whose labels begin with
    their source's); a rename; a revert; a destroy; then the pool, its hosts and SRs as a
    client's object cache finds them (``_standing_objects_queried``)."""
    for state, kind in CELLS:
        yield vm_case(query_pool, state, kind)
    for op in ("clone", "copy"):
        yield vm_case(partial(_copied_then_queried, op=op))
    yield vm_case(_renamed_then_queried)
    yield vm_case(_reverted_then_queried)
    yield vm_case(_destroyed_then_queried)
    yield vm_case(_standing_objects_queried)


STANDING_CLASSES = ("pool", "host", "SR")
"""Classes a VM's record names (affinity, resident_on, suspend SR) that a client lists and finds
by uuid and label: answered from the records the import read."""


def _standing_objects_queried(harness: Harness, _ref: str) -> None:
    """Each standing class's refs (get_all), and each object found by its uuid and label."""
    for cls in STANDING_CLASSES:
        listed = harness.call(f"{cls}.get_all")
        found = listed.value if isinstance(listed, Success) else ()
        for ref in found if isinstance(found, tuple | list) else ():
            uuid = harness.call(f"{cls}.get_uuid", ref)
            if isinstance(uuid, Success):
                harness.call(f"{cls}.get_by_uuid", uuid.value)
            if cls != "pool":  # xapi's pool class has no get_by_name_label
                label = harness.call(f"{cls}.get_name_label", ref)
                if isinstance(label, Success):
                    harness.call(f"{cls}.get_by_name_label", label.value)
        harness.call(f"{cls}.get_by_uuid", BOGUS_UUID)


def _copied_then_queried(harness: Harness, ref: str, op: str) -> None:
    label = f"{harness.world.vms[ref]['name_label']} {op}"
    sr: tuple[Value, ...] = (NULL_REF,) if op == "copy" else ()
    copy = _ref(harness.call(f"VM.{op}", ref, label, *sr))
    query_pool(harness, ref)
    if copy != NULL_REF:
        query_pool(harness, copy)


def _renamed_then_queried(harness: Harness, ref: str) -> None:
    harness.call("VM.set_name_label", ref, "xapi-conformance renamed")
    query_pool(harness, ref)
    harness.call("VM.get_by_name_label", "xapi-conformance sweep")


def _reverted_then_queried(harness: Harness, ref: str) -> None:
    snapshot = _ref(harness.call("VM.snapshot", ref, "xapi-conformance sweep snapshot"))
    harness.call("VM.set_name_label", ref, "xapi-conformance renamed")
    if snapshot != NULL_REF:
        harness.call("VM.revert", snapshot)
    query_pool(harness, ref)


def _destroyed_then_queried(harness: Harness, ref: str) -> None:
    uuid = learn_uuid(harness, ref)
    harness.call("VM.destroy", ref)
    if uuid is not None:
        harness.call("VM.get_by_uuid", uuid)
    harness.call("VM.get_by_name_label", "xapi-conformance sweep")
    harness.call("VM.get_all_records")


# ---- the fields of every copy, snapshot, checkpoint and revert ----------------------------------

SHAPE_CALLS: tuple[tuple[str, tuple[Value, ...]], ...] = (
    ("set_name_description", ("shaped by xapi-conformance",)),
    ("add_to_other_config", ("folder", "/xapi-conformance")),
    ("add_to_other_config", ("k1", "v1")),
    ("add_tags", ("a",)),
    ("add_to_blocked_operations", ("pause", "shaped")),
    ("set_user_version", (7,)),
    ("set_start_delay", (3,)),
    ("set_order", (2,)),
    ("set_VCPUs_max", (4,)),
    ("set_memory_static_max", (1024 * MIB,)),
    ("add_to_platform", ("acpi", "1")),
    ("add_to_HVM_boot_params", ("firmware", "bios")),
    ("set_actions_after_crash", ("preserve",)),
)
"""Edits that give a VM fields a copy keeps, resets or drops (xapi_vm_clone.ml
copy_vm_record) and a revert restores (xapi_vm_snapshot.ml do_not_copy)."""

CHANGE_CALLS: tuple[tuple[str, tuple[Value, ...]], ...] = (
    ("set_name_label", ("xapi-conformance changed",)),
    ("set_name_description", ("changed after the snapshot",)),
    ("add_to_other_config", ("k1", "changed")),
    ("remove_from_other_config", ("folder",)),
    ("add_tags", ("b",)),
    ("set_user_version", (9,)),
    ("set_VCPUs_at_startup", (2,)),
    ("set_memory_dynamic_range", (256 * MIB, 768 * MIB)),
    ("remove_from_blocked_operations", ("pause",)),
    ("add_to_blocked_operations", ("suspend", "after")),
    ("set_actions_after_crash", ("restart",)),
)
"""Edits after a snapshot, which a revert must undo or keep as xapi does."""


def _shape(harness: Harness, ref: str) -> None:
    for method, args in SHAPE_CALLS:
        harness.call(f"VM.{method}", ref, *args)


def copies_sweep() -> Iterator[Case]:
    """Each kind of copy of a shaped VM, Halted and Running (every field of the new VM and its
    source compared), and a revert after changes, from a snapshot and from a checkpoint."""
    for state in ("Halted", "Running"):
        for op in ("clone", "copy", "snapshot", "checkpoint"):
            yield vm_case(partial(_shaped_copy, op=op), state)
    for op in ("snapshot", "checkpoint"):
        yield vm_case(partial(_changed_then_reverted, op=op), "Running")
    yield vm_case(partial(_changed_then_reverted, op="snapshot"))


def _shaped_copy(harness: Harness, ref: str, op: str) -> None:
    _shape(harness, ref)
    sr: tuple[Value, ...] = (NULL_REF,) if op == "copy" else ()
    copy = _ref(harness.call(f"VM.{op}", ref, f"xapi-conformance {op}", *sr))
    if copy != NULL_REF:
        harness.call("VM.get_record", copy)
        harness.call("VM.get_snapshot_time", copy)


def _changed_then_reverted(harness: Harness, ref: str, op: str) -> None:
    _shape(harness, ref)
    snapshot = _ref(harness.call(f"VM.{op}", ref, f"xapi-conformance {op}"))
    if snapshot == NULL_REF:
        return
    if harness.world.vms[ref]["power_state"] != "Halted":
        harness.call("VM.hard_shutdown", ref)
    for method, args in CHANGE_CALLS:
        harness.call(f"VM.{method}", ref, *args)
    harness.call("VM.get_generation_id", ref)  # xapi draws a fresh one on revert
    harness.call("VM.revert", snapshot)
    harness.call("VM.get_record", ref)
    harness.call("VM.get_record", snapshot)


def run_all(
    cases: Iterable[Callable[[Connection, str], None]], connection: Connection, area: str
) -> None:
    """Run every case; a divergence does not stop the sweep, so the report lists every failing
    cell. The first divergence is raised at the end; the others are recorded in the tally."""
    found: list[Divergence] = []
    for case in cases:
        try:
            case(connection, area)
        except Divergence as divergence:
            found.append(divergence)
    if found:
        connection.tally.divergences.extend(d.info for d in found[1:])
        raise found[0]


# ---- the pool's default templates -------------------------------------------------------------

POOL_TEMPLATES_TRIED = 2
"""Default templates a case tries at most (a real pool ships a hundred): the first by label."""

TEMPLATE_OPS = ("destroy", "start", "clone", "copy", "provision", "make_into_template", "export")
"""Operations asked of a pool template with VM.assert_operation_valid, which changes nothing:
xapi_vm_lifecycle.ml check_template lets a template clone, copy, export and provision, and
refuses destroy to a default template (VM_IS_TEMPLATE)."""


def pool_templates(harness: Harness) -> list[str]:
    """The pool's own default templates as the target listed them when the case began (none
    a suite made: those carry a run tag), the first ``POOL_TEMPLATES_TRIED`` by label. The
    suite reads, clones and copies them; it never changes or destroys them."""
    found = [
        (str(vm["name_label"]), ref)
        for ref, vm in harness.world.vms.items()
        if vm["is_default_template"] is True
        and vm["is_a_template"] is True
        and RUN_TAG not in as_map(vm["other_config"])
    ]
    return [ref for _, ref in sorted(found)[:POOL_TEMPLATES_TRIED]]


def pool_templates_sweep() -> Iterator[Case]:
    """A client's "pick a template" step on the pool's default templates: each read and asked
    which operations it allows; cloned and copied, then the copy tagged, provisioned (when its
    disks name no SR, so that nothing is made on a real pool's storage) and turned into a VM;
    and a clone made a default template as the template installer makes one
    (VM.set_is_default_template), then refused and released as xapi does."""
    yield _templates_case(_template_read)
    for op in ("clone", "copy"):
        yield _templates_case(partial(_template_picked, op=op))
    yield _templates_case(_template_lookalike)


def _templates_case(act: Act) -> Case:
    def run(connection: Connection, area: str) -> None:
        _run_on(connection, area, pool_templates, act)

    return run


def _template_read(harness: Harness, template: str) -> None:
    harness.call("VM.get_record", template)
    harness.call("VM.get_is_default_template", template)
    harness.call("VM.get_allowed_operations", template)
    for op in TEMPLATE_OPS:
        harness.call("VM.assert_operation_valid", template, op)


def picked(harness: Harness, template: str, op: str) -> str:
    """A copy of ``template`` (xapi_vm_clone.ml: no longer a default template, and
    other_config:base_template_name names its source), tagged as the suite's at once; its
    name says whose it is until then (``run_label``)."""
    source = harness.world.vms[template]["name_label"]
    label = run_label(f"xapi-conformance picked {source}", harness.connection.run_id)
    sr: tuple[Value, ...] = (NULL_REF,) if op == "copy" else ()
    copy = _ref(harness.call(f"VM.{op}", template, label, *sr))
    if copy != NULL_REF:
        harness.call("VM.add_to_other_config", copy, RUN_TAG, harness.connection.run_id)
    return copy


def _template_picked(harness: Harness, template: str, op: str) -> None:
    copy = picked(harness, template, op)
    if copy == NULL_REF:
        return
    harness.call("VM.get_record", copy)
    if _no_storage_named(harness, copy):
        harness.call("VM.provision", copy)
    harness.call("VM.set_is_a_template", copy, False)
    harness.call("VM.get_allowed_operations", copy)


def _no_storage_named(harness: Harness, ref: str) -> bool:
    """The provision spec (other_config:disks) names no SR: xapi_templates.ml then refuses
    with UUID_INVALID, or makes nothing when there are no disks."""
    disks = str(as_map(harness.world.vms[ref]["other_config"]).get("disks", ""))
    named = re.findall(r'\bsr="([^"]*)"', disks)
    return len(named) == disks.count("<disk ") and not any(named)


def _template_lookalike(harness: Harness, template: str) -> None:
    """A clone made a default template (what the installer calls), then: destroy refused by
    the template check; a VM again, destroy refused for other_config:default_template
    (xapi_vm_helpers.ml destroy: VM_CANNOT_DELETE_DEFAULT_TEMPLATE); released, destroyed."""
    copy = picked(harness, template, "clone")
    if copy == NULL_REF:
        return
    harness.call("VM.set_is_default_template", copy, True)
    for op in TEMPLATE_OPS:
        harness.call("VM.assert_operation_valid", copy, op)
    harness.call("VM.destroy", copy)
    harness.call("VM.set_is_a_template", copy, False)
    harness.call("VM.destroy", copy)
    harness.call("VM.set_is_default_template", copy, False)
    harness.call("VM.destroy", copy)
