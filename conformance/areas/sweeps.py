"""Deterministic sweeps: every lifecycle message in every reachable (power state, VM kind) cell.

The Hypothesis machines explore sequences; the sweeps guarantee the oracle tables are covered
on every run, each cell from a fresh VM, so a failing cell is already a minimal reproducer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from conformance.areas import strategies
from conformance.engine.harness import Connection, Harness
from conformance.judge.divergence import Desynced, Divergence
from conformance.judge.refs import RUN_TAG
from models import catalogue
from models.catalogue import MessageKind, kind_of
from models.coverage import REACHABLE_STATES
from models.outcome import Success, Value
from models.world import NULL_REF

__all__ = [
    "CELLS",
    "GETTERS",
    "LIFECYCLE_MESSAGES",
    "blocked_sweep",
    "fields_sweep",
    "lifecycle_sweep",
    "memory_sweep",
    "run_all",
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
    harness = Harness(connection, area)
    connection.tally.examples += 1
    try:
        ref = reach(harness, state, kind)
        if ref != NULL_REF:
            act(harness, ref)
    except BaseException as error:
        harness.teardown()
        if isinstance(error, Desynced):
            return
        raise
    if ref == NULL_REF:
        harness.teardown()
        return
    with contextlib.suppress(Desynced):
        harness.finish()


def lifecycle_sweep() -> Iterator[Cell]:
    """Every lifecycle message in every reachable cell."""
    for state, kind in CELLS:
        for message in LIFECYCLE_MESSAGES:
            yield Cell(message, state, kind)


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
    ("set_VCPUs_at_startup", (64,)),
    ("set_VCPUs_max", (0,)),
    ("set_VCPUs_max", (4,)),
)
"""Memory and VCPU setters with ordered, disordered and pinned values (semantics §6, §14;
xapi_vm_helpers.ml validate_VCPUs: 0 < VCPUs_at_startup <= VCPUs_max)."""


def memory_sweep() -> Iterator[Callable[[Connection, str], None]]:
    """Each memory case on a Halted and a Running plain VM."""
    for method, values in MEMORY_CASES:
        for state in ("Halted", "Running"):
            yield _memory_case(method, values, state)


def _memory_case(
    method: str, values: tuple[int, ...], state: str
) -> Callable[[Connection, str], None]:
    def run(connection: Connection, area: str) -> None:
        _run_case(
            connection, area, state, "plain", lambda h, ref: _call(h, f"VM.{method}", ref, values)
        )

    return run


def _call(harness: Harness, method: str, ref: str, args: tuple[Value, ...]) -> None:
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
    records are compared once, at the cell's end)."""
    for state, kind in CELLS:
        yield _getters_case(state, kind)


def _getters_case(state: str, kind: str) -> Callable[[Connection, str], None]:
    def run(connection: Connection, area: str) -> None:
        _run_case(connection, area, state, kind, _read_every_field)

    return run


def _read_every_field(harness: Harness, ref: str) -> None:
    for getter in GETTERS:
        harness.call(getter, ref)


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
