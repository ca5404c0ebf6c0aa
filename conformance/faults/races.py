"""Seeded race faults: faults that show only while calls overlap."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from conformance.faults.events import in_flight_hidden
from conformance.faults.kinds import CheckLifted, Raced, Seeded
from models.inflight import IN_FLIGHT_OPERATIONS
from models.outcome import Value
from models.transition import Call
from models.world import Record


def _nothing_in_flight(_call: Call, _vm: Record) -> Mapping[str, Value]:
    return {"current_operations": {}}


# Wider than RACE_WINDOW, for the edits only: on a loaded CI machine two threads released by one
# barrier reached the server more than 50 ms apart, and then no edit was lost.
_STALE_WRITE_WINDOW = 0.25
# Wider for a cancelled Async operation too: the cancel follows the Async call's answer through
# two threads, and at load 11 it reached the server after a 50 ms operation had ended in every
# example of a ci run. Not as wide as an edit's: every Async operation of the run takes it.
_CANCEL_WINDOW = 0.1
_MAP_EDITS = frozenset(
    {"VM.add_to_other_config", "VM.remove_from_other_config", "VM.add_tags", "VM.remove_tags"}
)
_RACED_ENTRIES: tuple[tuple[str, Seeded], ...] = (
    (
        "event-in-flight-hidden",
        Seeded(
            Raced("none", frozenset(), inner=in_flight_hidden),
            "events",
            "concurrency",
            "An operation in flight never shows in events: the mod of marking "
            "current_operations carries the VM's record from before.",
            "while a VM.start is in flight (VM.get_current_operations shows it), xapi's "
            "event.from(['vm/<ref>'], '', 0) answers the VM with the start in "
            "current_operations; the faulty server's snapshot has none: no order of the calls "
            "explains that.",
        ),
    ),
    (
        "concurrent-starts-both-succeed",
        Seeded(
            Raced("unmarked", frozenset({"VM.start"})),
            "lifecycle",
            "concurrency",
            "Two overlapping VM.start calls of one VM both succeed (the op is never marked).",
            "two sessions start one Halted VM at once; xapi makes the second wait and answer "
            "VM_BAD_POWER_STATE, the faulty server answers success to both: no order of the "
            "calls explains that.",
        ),
    ),
    (
        "destroy-succeeds-twice",
        Seeded(
            Raced("unmarked", frozenset({"VM.destroy"})),
            "lifecycle",
            "concurrency",
            "Two overlapping VM.destroy calls of one VM both succeed.",
            "two sessions destroy one VM at once; xapi's second destroy waits and answers "
            "HANDLE_INVALID, the faulty server's succeeds.",
        ),
    ),
    (
        "map-update-lost",
        Seeded(
            Raced("stale-write", _MAP_EDITS, window=_STALE_WRITE_WINDOW),
            "fields",
            "concurrency",
            "Overlapping other_config and tags edits of one VM: the last write wins, "
            "the other edit is lost.",
            "two sessions add different other_config keys at once; xapi's edits are atomic "
            "and both keys stay, the faulty server's final record lacks one of them.",
        ),
    ),
    (
        "conflict-not-waited",
        Seeded(
            Raced("fail-fast", frozenset(IN_FLIGHT_OPERATIONS)),
            "operations",
            "concurrency",
            "A lifecycle call that meets a conflicting one in flight fails at once with "
            "OTHER_OPERATION_IN_PROGRESS (xapi waits and checks again).",
            "a second VM.start sent while a start of the same VM is in flight answers "
            "OTHER_OPERATION_IN_PROGRESS; xapi's waits for the first and answers "
            "VM_BAD_POWER_STATE.",
        ),
    ),
    (
        "in-flight-not-asserted",
        Seeded(
            Raced(
                "none",
                frozenset(),
                inner=CheckLifted(
                    frozenset({"VM.assert_operation_valid"}),
                    "OTHER_OPERATION_IN_PROGRESS",
                    _nothing_in_flight,
                    accept="any",
                ),
            ),
            "operations",
            "concurrency",
            "VM.assert_operation_valid ignores the operations in flight (never "
            "OTHER_OPERATION_IN_PROGRESS).",
            "assert_operation_valid(start) while a start of the VM is in flight succeeds; "
            "xapi answers OTHER_OPERATION_IN_PROGRESS [VM, vm, start, task].",
        ),
    ),
    (
        "allowed-ops-stale-in-flight",
        Seeded(
            Raced("stale-allowed", frozenset(IN_FLIGHT_OPERATIONS)),
            "operations",
            "concurrency",
            "allowed_operations is not recomputed when an operation starts, only when it ends.",
            "VM.get_allowed_operations while a start is in flight still lists start; xapi's "
            "list is empty then.",
        ),
    ),
    (
        "cancelled-op-done",
        Seeded(
            Raced("cancel-effect", frozenset(IN_FLIGHT_OPERATIONS), window=_CANCEL_WINDOW),
            "async",
            "concurrency",
            "An operation whose task is cancelled while in flight answers TASK_CANCELLED but "
            "does its work all the same.",
            "task.cancel of an Async.VM.start in flight; the task ends TASK_CANCELLED and the "
            "VM is Running: xapi's start either completes (success) or stops with the VM "
            "Halted, or Paused when cancelled between xenopsd's start and unpause.",
        ),
    ),
    (
        "hard-shutdown-cancels-all",
        Seeded(
            Raced("cancels-all", frozenset({"VM.hard_shutdown", "VM.hard_reboot"})),
            "lifecycle",
            "concurrency",
            "VM.hard_shutdown and VM.hard_reboot cancel every operation in flight on the VM, "
            "not only the shutdowns, reboots, suspends, migrations and plugin calls xapi's "
            "cancel.",
            "a VM.pause of a running VM is in flight when another session hard-shuts it down; "
            "xapi lets the pause end as it would (hard_shutdown does not cancel it), the faulty "
            "server's pause answers TASK_CANCELLED: no order of the calls explains that.",
        ),
    ),
)

RACED: Mapping[str, Seeded] = MappingProxyType(dict(_RACED_ENTRIES))
"""The race faults by name."""
