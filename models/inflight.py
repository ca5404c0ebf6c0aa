"""Operations in flight: a VM operation split into its begin and its end, as xapi runs it.

xapi wraps each VM operation in ``Xapi_vm_helpers.with_vm_operation`` (ocaml/xapi/xapi_vm_helpers.ml):
under the global lock it runs ``assert_operation_valid`` (``check_operation_error`` of
ocaml/xapi/xapi_vm_lifecycle.ml, whose step 3 is ``is_allowed_concurrently``), adds
``task -> op`` to the VM's ``current_operations`` and recomputes ``allowed_operations``; then,
with the lock released, it does the work; at the end it removes the entry and recomputes again.
So a call of such an operation is two steps for a linearizability check: **begin** (the checks
and the mark) and **end** (the effect and the unmark). Every other call is one atomic step.

A conflicting call does not fail at once: ``with_vm_operation`` runs inside
``Helpers.retry_with_global_lock`` with ``Policy.standard`` (ocaml/xapi/helpers.ml ``retry``),
which catches OTHER_OPERATION_IN_PROGRESS, sleeps until the conflicting operation ends
(``Early_wakeup``) and checks again, for up to two hours. So its begin is ``Blocked`` (it cannot
happen now), and the call takes effect after the conflict ends. Only messages forwarded with
``Policy.fail_immediately`` (``call_plugin``, ``call_host_plugin``, ``sysprep``:
message_forwarding.ml) answer OTHER_OPERATION_IN_PROGRESS; and the atomic
``VM.assert_operation_valid`` and ``VM.get_allowed_operations`` show the operations in flight.

hard_shutdown and hard_reboot cancel some operations in flight (message_forwarding.ml
``VM.hard_shutdown``/``hard_reboot`` call ``cancel ~ops``): each such task is cancelled and
waited for, then the hard operation does its work. A cancelled call ends either as it would
have (the cancellation came too late) or with TASK_CANCELLED [its task] and no effect.
**Unconfirmed:** which of the two a real host gives depends on how far xenopsd got; the model
leaves both open. The model also runs an operation's effect on the world at its end (with the
checks of its begin passed): what xapi does when the VM changed under it (only possible for
the operations ``is_allowed_concurrently`` lets overlap) is read from the code's shape, not
confirmed on a host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from models.checks import update_vm
from models.outcome import Failure
from models.rpc import ASYNC_PREFIX, apply
from models.transition import Branch, Call, Result
from models.world import World

__all__ = [
    "CANCELLED_BY",
    "FAIL_IMMEDIATELY",
    "IN_FLIGHT_OPERATIONS",
    "Began",
    "Blocked",
    "Start",
    "Transition",
    "begin",
    "cancelled_by",
    "finish",
    "in_flight",
    "vm_operation",
]

Transition = Callable[[World, Call], Result]

IN_FLIGHT_OPERATIONS: Mapping[str, str] = {
    "VM.start": "start",
    "VM.start_on": "start_on",
    "VM.clean_shutdown": "clean_shutdown",
    "VM.shutdown": "shutdown",
    "VM.hard_shutdown": "hard_shutdown",
    "VM.clean_reboot": "clean_reboot",
    "VM.hard_reboot": "hard_reboot",
    "VM.suspend": "suspend",
    "VM.resume": "resume",
    "VM.resume_on": "resume_on",
    "VM.pause": "pause",
    "VM.unpause": "unpause",
    "VM.pool_migrate": "pool_migrate",
    "VM.clone": "clone",
    "VM.copy": "copy",
    "VM.snapshot": "snapshot",
    "VM.checkpoint": "checkpoint",
    "VM.provision": "provision",
    "VM.revert": "revert",
    "VM.destroy": "destroy",
}
"""Messages message_forwarding.ml wraps in ``with_vm_operation``, with the op they mark.

Not here, though xapi wraps them too: the memory and VCPU setters (``changing_*``), NVRAM,
data sources, ``set_is_a_template``; the model keeps them atomic (their work is a database
write, so they are in flight for a moment only)."""

FAIL_IMMEDIATELY: frozenset[str] = frozenset({"call_plugin", "sysprep"})
"""Ops forwarded with ``Policy.fail_immediately``: a conflict is answered, not waited out."""

CANCELLED_BY: Mapping[str, frozenset[str]] = {
    "hard_shutdown": frozenset(
        {
            "clean_shutdown",
            "clean_reboot",
            "hard_reboot",
            "pool_migrate",
            "call_plugin",
            "shutdown",
            "suspend",
        }
    ),
    "hard_reboot": frozenset(
        {"clean_shutdown", "clean_reboot", "pool_migrate", "call_plugin", "suspend"}
    ),
}
"""message_forwarding.ml ``VM.hard_shutdown`` / ``VM.hard_reboot``: the ops they cancel."""


@dataclass(frozen=True)
class Began:
    """The checks passed: the op is marked in ``current_operations`` of ``world``."""

    world: World


@dataclass(frozen=True)
class Blocked:
    """A conflicting op is in flight: xapi waits it out and checks again (no answer yet)."""

    failure: Failure


Start = Branch | Began | Blocked
"""What a call's begin may be: an answer at once (atomic, or refused), in flight, or waiting."""


def vm_operation(method: str) -> str | None:
    """The op ``method`` marks in ``current_operations`` while it runs, or None (atomic)."""
    return IN_FLIGHT_OPERATIONS.get(method.removeprefix(ASYNC_PREFIX))


def _vm_of(world: World, call: Call) -> str | None:
    ref = call.args[1] if len(call.args) > 1 else None
    return ref if isinstance(ref, str) and ref in world.vms else None


def in_flight(world: World, ref: str) -> Mapping[str, str]:
    """VM ``ref``'s ``current_operations`` (task ref -> op); empty for a VM that is gone."""
    vm = world.vms.get(ref)
    value = vm.get("current_operations", {}) if vm is not None else {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _marked(world: World, ref: str, operations: Mapping[str, str]) -> World:
    return update_vm(world, ref, {"current_operations": dict(operations)})


def begin(world: World, call: Call, task: str, transition: Transition = apply) -> tuple[Start, ...]:
    """Every way the begin of ``call`` (sync method name) may go, ``task`` naming its entry.

    An atomic call, or one refused by its checks, answers at once (a ``Branch``). A conflict
    that xapi waits out is ``Blocked``. Otherwise the op is marked and in flight (``Began``).
    """
    op = vm_operation(call.method)
    ref = _vm_of(world, call)
    result = transition(world, call)
    if op is None or ref is None:
        return result
    starts: list[Start] = []
    for branch in result:
        start = _start_of(world, branch, ref, op, task)
        if start not in starts:
            starts.append(start)
    return tuple(starts)


def _start_of(world: World, branch: Branch, ref: str, op: str, task: str) -> Start:
    outcome = branch.outcome
    if isinstance(outcome, Failure):
        if outcome.code == "OTHER_OPERATION_IN_PROGRESS" and op not in FAIL_IMMEDIATELY:
            return Blocked(outcome)
        return branch
    return Began(_marked(world, ref, {**in_flight(world, ref), task: op}))


def cancelled_by(world: World, call: Call, task: str) -> frozenset[str]:
    """The tasks in flight on the call's VM that its op cancels (hard_shutdown, hard_reboot)."""
    op = vm_operation(call.method)
    ref = _vm_of(world, call)
    if op is None or op not in CANCELLED_BY or ref is None:
        return frozenset()
    targets = CANCELLED_BY[op]
    return frozenset(t for t, o in in_flight(world, ref).items() if o in targets and t != task)


def finish(
    world: World,
    call: Call,
    task: str,
    *,
    cancelled: bool = False,
    transition: Transition = apply,
) -> Result:
    """Every way the end of ``call`` (begun as ``task``) may go: its effect, the entry removed.

    The effect is the call's transition on the world as it is now, with the VM's operations in
    flight set aside (its own checks passed at its begin). A cancelled call may also end with
    TASK_CANCELLED [task] and no effect.
    """
    ref = str(call.args[1]) if len(call.args) > 1 else ""
    if ref not in world.vms:
        return transition(world, call)
    others = {t: o for t, o in in_flight(world, ref).items() if t != task}
    cleared = update_vm(world, ref, {"current_operations": {}}, recompute=False)
    branches = [_unmarked(branch, ref, others) for branch in transition(cleared, call)]
    if cancelled:
        branches.append(Branch(Failure("TASK_CANCELLED", (task,)), _marked(world, ref, others)))
    return tuple(branches)


def _unmarked(branch: Branch, ref: str, others: Mapping[str, str]) -> Branch:
    if ref not in branch.world.vms:
        return branch
    return Branch(branch.outcome, _marked(branch.world, ref, others))
