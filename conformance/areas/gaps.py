"""The cells no other test of the run judged: each remaining message sent once in each
(power state, VM kind) the run has not called it in, so that the map has no holes by chance.

Run after the machines and sweeps of its process: it reads the connection's tally and aims at
what is left. The messages that move a VM to another power state or kind (the lifecycle sweep's)
are not among them; a message that moves the VM anyway ends its group, and the rest of the
group continues on a fresh VM. Arguments after the VM are the empty value of their type (a
host or SR ref names the first the target has), so each call is judged as xapi answers it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial

from conformance.areas.sweeps import LIFECYCLE_MESSAGES, query_pool, reach
from conformance.engine.harness import Connection, Harness, vm_kind
from conformance.judge.divergence import Desynced
from models import catalogue
from models.coverage import coverage_cells
from models.outcome import Value
from models.records import type_default
from models.schema import XType
from models.world import NULL_REF

__all__ = ["GAP_MESSAGES", "gap_cases", "unjudged"]

GAP_MESSAGES = frozenset(
    f"VM.{m.name}"
    for m in catalogue.MESSAGES.values()
    if m.params and m.name not in LIFECYCLE_MESSAGES
)
"""The messages the gap cases send: every VM message but the lifecycle sweep's."""

Cell = tuple[str, str, str]


def unjudged(done: Counter[Cell]) -> dict[tuple[str, str], list[str]]:
    """The messages of ``GAP_MESSAGES`` not yet called in each (power state, VM kind)."""
    left: dict[tuple[str, str], list[str]] = {}
    for message, state, kind in coverage_cells():
        if message in GAP_MESSAGES and not done[message, state, kind]:
            left.setdefault((state, kind), []).append(message)
    return left


POOL_QUERIES = ("VM.get_all", "VM.get_all_records", "VM.get_by_uuid", "VM.get_by_name_label")
"""Queries over the whole pool (no VM argument), judged on the suite's own VMs."""
IMPORTS: tuple[tuple[str, tuple[Value, ...]], ...] = (
    ("VM.import", ("http://127.0.0.1:9/xapi-conformance.xva", NULL_REF, False, False)),
    ("VM.import_convert", ("xva", "", "", NULL_REF, {})),
)
"""The imports, with a null SR: refused before anything is fetched or made."""


def gap_cases(connection: Connection) -> Iterator[Callable[[Connection, str], None]]:
    """One case per (power state, VM kind) with messages left, as the tally stands now, and
    one for the pool-wide queries not yet sent."""
    for (state, kind), messages in unjudged(connection.tally.coverage).items():
        yield _case(state, kind, messages)
    if any(not connection.tally.messages[q] for q in (*POOL_QUERIES, *dict(IMPORTS))):
        yield _queries


def _example(connection: Connection, area: str, act: Callable[[Harness], None]) -> None:
    """``act`` on a fresh harness, then the full record comparison; always clean up."""
    harness = Harness(connection, area)
    connection.tally.examples += 1
    try:
        act(harness)
        harness.finish()
    except Desynced:
        harness.teardown()
    except BaseException:
        harness.teardown()
        raise


def _queries(connection: Connection, area: str) -> None:
    """The pool-wide queries (``query_pool``), with a suite VM on the target to find, and
    the imports (``IMPORTS``)."""

    def act(harness: Harness) -> None:
        query_pool(harness, reach(harness, "Halted", "plain"))
        for method, args in IMPORTS:
            harness.call(method, *args)

    _example(connection, area, act)


def _case(state: str, kind: str, messages: list[str]) -> Callable[[Connection, str], None]:
    def run(connection: Connection, area: str) -> None:
        left = list(messages)
        while left:
            before = len(left)
            _example(connection, area, partial(_one_vm, state=state, kind=kind, left=left))
            if len(left) == before:  # the cell could not be reached: nothing more to aim at
                return

    return run


def _one_vm(harness: Harness, *, state: str, kind: str, left: list[str]) -> None:
    """Send messages of ``left`` (removing each sent) to one fresh VM while it stays in the
    cell."""
    ref = reach(harness, state, kind)
    while left and _in_cell(harness, ref, state, kind):
        message = left.pop(0)
        harness.call(message, ref, *_arguments(harness, message))


def _in_cell(harness: Harness, ref: str, state: str, kind: str) -> bool:
    vm = harness.world.vms.get(ref)
    return vm is not None and vm["power_state"] == state and vm_kind(vm) == kind


def _arguments(harness: Harness, message: str) -> tuple[Value, ...]:
    spec = catalogue.MESSAGES[message.removeprefix("VM.")]
    return tuple(_value(harness, p.type) for p in spec.params[1:])


def _value(harness: Harness, xtype: XType) -> Value:
    if xtype.kind != "ref":
        return type_default(xtype)
    known = {"host": harness.world.hosts, "SR": harness.world.srs}.get(xtype.name, {})
    return sorted(known)[0] if known else NULL_REF
