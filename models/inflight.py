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

Cancellation. hard_shutdown and hard_reboot cancel some operations in flight
(message_forwarding.ml ``VM.hard_shutdown``/``hard_reboot`` call ``cancel ~ops``): each such
task is cancelled and waited for, then the hard operation does its work. ``task.cancel`` of an
Async call's task does the same without the wait (xapi_task.ml ``cancel``: it marks the task
``cancel`` and asks xenopsd to cancel the xenopsd task bound to it, then returns). What the
cancelled call does depends on where it is (``cancelled_ends``):

- not begun yet (waiting out a conflict, or its thread not yet at its begin): it ends with
  TASK_CANCELLED [its task] and does nothing (helpers.ml ``retry`` checks
  ``TaskHelper.is_cancelling`` before every try of the begin);
- in flight, an op whose work runs as xenopsd tasks (``CANCELLABLE``): xenopsd checks the
  cancellation before each atomic step (xenops_server.ml ``perform_atomic``), xapi maps its
  ``Cancelled`` to TASK_CANCELLED [task] (xapi_xenops.ml ``transform_xenops_exn``) and
  xenopsd's cleanup (``trigger_cleanup_after_failure``: ``VM_check_state``) leaves the VM as
  its domain is. So the call ends as it would have (the cancellation came after the last
  check: "it might actually have completed, we don't care", ``Xapi_xenops.task_cancel``) or
  with TASK_CANCELLED and no effect; a clean shutdown also with TASK_CANCELLED *and* its effect
  (the guest got the shutdown request before the cancellation: xenops_server.ml
  ``VM_shutdown``'s steps after ``VM_shutdown_domain``), and a start or resume that was not
  asked to stay paused with TASK_CANCELLED and the VM paused (xapi_xenops.ml ``start`` runs
  xenopsd's VM.start and VM.unpause as two tasks; the cancellation may come between them);
- in flight, any other op (destroy, clone, copy, snapshot, revert, provision of the suite's
  disk-less VMs: database work with no check of the cancellation once begun): it ends as it
  would have;
- finished: ``task.cancel`` succeeds and changes nothing (``Xapi_task.cancel`` never looks at
  the status; ``TaskHelper.cancel_this`` touches pending tasks only); once the client has
  destroyed the task, HANDLE_INVALID. Another subject's task needs ``task.destroy/any``
  (``TaskHelper.assert_op_valid``, as ``models.others`` checks).

**Unconfirmed:** which of these a real host gives depends on how far xenopsd got; the model
leaves them all open. Intermediate states other than the two above (a clean reboot cancelled
between its shutdown and its start, a hard shutdown cancelled after its domain was paused) are
not modelled: a real host that shows one is reported as a divergence. The model also runs an
operation's effect on the world at its end (with the checks of its begin passed): what xapi
does when the VM changed under it (only possible for the operations ``is_allowed_concurrently``
lets overlap) is read from the code's shape, not confirmed on a host.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from models.checks import update_vm
from models.outcome import Failure, Success
from models.rpc import ASYNC_PREFIX, apply
from models.transition import Branch, Call, Result
from models.world import Task, World

__all__ = [
    "CANCELLABLE",
    "CANCELLED_BY",
    "EFFECT_DESPITE_CANCEL",
    "FAIL_IMMEDIATELY",
    "IN_FLIGHT_OPERATIONS",
    "Began",
    "Blocked",
    "Start",
    "Transition",
    "begin",
    "cancelled_before_begin",
    "cancelled_by",
    "finish",
    "in_flight",
    "stopped",
    "task_cancel",
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
    "VM.set_memory_dynamic_range": "changing_dynamic_range",
    "VM.set_memory_static_range": "changing_static_range",
    "VM.set_memory_limits": "changing_memory_limits",
    "VM.set_memory": "changing_memory_limits",
    "VM.set_VCPUs_max": "changing_VCPUs",
    "VM.set_VCPUs_number_live": "changing_VCPUs_live",
}
"""Messages message_forwarding.ml wraps in ``with_vm_operation``, with the op they mark (the
memory and VCPU setters: message_forwarding.ml ``VM.set_memory_dynamic_range`` ...
``set_VCPUs_number_live``).

Not here, though xapi wraps them too: ``set_memory_dynamic_min``/``max`` and
``set_memory_static_min``/``max`` (xapi reads the other bound *before* the op begins, so two
of them at once may undo each other: not modelled), NVRAM, shadow memory, data sources,
``set_is_a_template``; the model keeps them atomic."""

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

CANCELLABLE: frozenset[str] = frozenset(
    {
        "start",
        "start_on",
        "clean_shutdown",
        "shutdown",
        "hard_shutdown",
        "clean_reboot",
        "hard_reboot",
        "suspend",
        "resume",
        "resume_on",
        "pause",
        "unpause",
        "pool_migrate",
        "checkpoint",
    }
)
"""Ops whose work waits on xenopsd tasks (xapi_xenops.ml ``sync_with_task`` registers each as
cancellable, ``TaskHelper.register_task``), so a cancellation in flight may stop them. The
others (destroy, clone, copy, snapshot, revert, provision of disk-less VMs) never check it
once begun."""

EFFECT_DESPITE_CANCEL: frozenset[str] = frozenset({"clean_shutdown", "shutdown"})
"""Ops that may answer TASK_CANCELLED with their effect done: the guest had the shutdown
request (xenops_server.ml ``VM_shutdown``: cancellation points after ``VM_shutdown_domain``)."""

_PAUSED_ARG: Mapping[str, int] = {"start": 2, "resume": 2, "start_on": 3, "resume_on": 3}
"""Ops that may be cancelled between xenopsd's start and unpause (xapi_xenops.ml ``start``):
the index of their ``start_paused`` argument (session first)."""


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
    flight set aside (its own checks passed at its begin). A cancelled call of a ``CANCELLABLE``
    op may also end with TASK_CANCELLED [task] (see the module's docstring).
    """
    ref = str(call.args[1]) if len(call.args) > 1 else ""
    if ref not in world.vms:
        return transition(world, call)
    others = {t: o for t, o in in_flight(world, ref).items() if t != task}
    cleared = update_vm(world, ref, {"current_operations": {}}, recompute=False)

    def effect(made: Call) -> list[Branch]:
        return [_unmarked(branch, ref, others) for branch in transition(cleared, made)]

    branches = effect(call)
    if cancelled and vm_operation(call.method) in CANCELLABLE:
        branches.extend(_cancelled_ends(call, task, _marked(world, ref, others), branches, effect))
    return tuple(branches)


def _cancelled_ends(
    call: Call,
    task: str,
    untouched: World,
    completed: list[Branch],
    effect: Callable[[Call], list[Branch]],
) -> list[Branch]:
    """The TASK_CANCELLED ends of a cancelled op in flight: no effect first (what the embedded
    server does), then its effect done (a clean shutdown), then the VM left paused (a start or
    resume cancelled between xenopsd's start and unpause)."""
    failure = Failure("TASK_CANCELLED", (task,))
    ends = [Branch(failure, untouched)]
    op = vm_operation(call.method) or ""
    if op in EFFECT_DESPITE_CANCEL:
        ends.extend(Branch(failure, b.world) for b in completed if isinstance(b.outcome, Success))
    at = _PAUSED_ARG.get(op)
    if at is not None and len(call.args) > at and call.args[at] is False:
        paused = Call(call.method, (*call.args[:at], True, *call.args[at + 1 :]), call.now)
        ends.extend(
            Branch(failure, b.world) for b in effect(paused) if isinstance(b.outcome, Success)
        )
    return ends


def stopped(branches: Result) -> Branch | None:
    """The first TASK_CANCELLED end among ``finish``'s branches (the op stopped, nothing done);
    None when the op cannot be stopped in flight."""
    return next(
        (b for b in branches if isinstance(b.outcome, Failure) and b.outcome.code == _CANCELLED),
        None,
    )


_CANCELLED = "TASK_CANCELLED"


def cancelled_before_begin(world: World, task: str) -> Result:
    """A call whose task was cancelled before its begin: TASK_CANCELLED [task], nothing done
    (helpers.ml ``retry`` checks ``TaskHelper.is_cancelling`` before each try)."""
    return (Branch(Failure(_CANCELLED, (task,)), world),)


def task_cancel(world: World, call: Call, owner: str, *, exists: bool) -> Result:
    """``task.cancel`` (``call``) of an Async call's task made by session ``owner``, while the
    task ``exists`` (pending, or finished and not yet destroyed) or after it was destroyed.
    The answer only: what it does to the call is the caller's (``cancelled_before_begin``,
    ``finish(cancelled=True)``). xapi_task.ml ``cancel`` checks who may (``assert_op_valid``)
    and nothing else."""
    if not exists or len(call.args) < 2:
        return tuple(Branch(b.outcome, world) for b in apply(world, call))
    ref = str(call.args[1])
    pending = Task(ref, "", "", "pending", session=owner)
    with_task = replace(world, tasks=MappingProxyType({**world.tasks, ref: pending}))
    return tuple(Branch(b.outcome, world) for b in apply(with_task, call))


def _unmarked(branch: Branch, ref: str, others: Mapping[str, str]) -> Branch:
    if ref not in branch.world.vms:
        return branch
    return Branch(branch.outcome, _marked(branch.world, ref, others))
