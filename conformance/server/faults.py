"""Seeded faults: deliberately wrong variants of the embedded server, for the suite's own tests.

A fault wraps the model's transition. It sees the world and the call, may run the honest
transition on an altered world or call, and returns (possibly altered) branches. Faults are
pure, like the model. Each is documented with the divergence a conformance run must report.

``compose`` stacks faults around the honest transition in order: the first wraps ``apply``
directly, each later one wraps the stack built so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Protocol

from conformance.errors import UsageError
from models.checks import update_vm
from models.outcome import Failure, Success, Value
from models.rpc import ASYNC_PREFIX, apply
from models.transition import Branch, Call, Result
from models.world import SessionInfo, World, with_vm

__all__ = [
    "FAULTS",
    "BlockedIgnored",
    "Fault",
    "LostAsyncError",
    "MemoryOrderUnchecked",
    "StaleRecord",
    "Transition",
    "WrongErrorParam",
    "WrongStateAllowed",
    "compose",
    "known",
    "lookup",
    "summary",
]

Transition = Callable[[World, Call], Result]
"""The shape of ``models.rpc.apply``: a world and a call in, every acceptable branch out."""


class Fault(Protocol):
    """A deliberate deviation from the model, applied around the honest transition."""

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The branches the faulty server takes for ``call`` in ``world``."""
        ...


def _vm_arg(world: World, call: Call) -> str | None:
    """The VM ref of a ``VM.*(session, vm, …)`` call, if it names a VM of ``world``."""
    ref = call.args[1] if len(call.args) > 1 else None
    return ref if isinstance(ref, str) and ref in world.vms else None


def _map_branches(result: Result, change: Callable[[Branch], Branch]) -> Result:
    """``result`` with ``change`` applied to every branch."""
    return tuple(change(branch) for branch in result)


@dataclass(frozen=True)
class WrongErrorParam:
    """VM_BAD_POWER_STATE's ``expected`` states are joined with ``separator`` instead of ", ".

    Only errors with several expected states change. Divergence: VM.hard_shutdown on a Halted VM
    answers ``VM_BAD_POWER_STATE [vm, "paused;suspended;running", "halted"]`` where xapi answers
    ``[vm, "paused, suspended, running", "halted"]``. Synchronous answers only.
    """

    separator: str = ";"

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """Rewrite the separator in every VM_BAD_POWER_STATE branch."""
        return _map_branches(honest(world, call), self._rewrite)

    def _rewrite(self, branch: Branch) -> Branch:
        outcome = branch.outcome
        if not (isinstance(outcome, Failure) and outcome.code == "VM_BAD_POWER_STATE"):
            return branch
        params = list(outcome.params)
        if len(params) > 1:
            params[1] = params[1].replace(", ", self.separator)
        return replace(branch, outcome=Failure(outcome.code, tuple(params)))


@dataclass(frozen=True)
class WrongStateAllowed:
    """VM.suspend on a Paused VM succeeds and moves it to Suspended, as if Paused were allowed.

    Divergence: xapi answers ``VM_BAD_POWER_STATE [vm, "running", "paused"]`` and the VM stays
    Paused; the faulty server answers ``Success("")`` and the VM is Suspended (domid -1, a
    suspend_VDI). Runs the honest model as if the VM were Running.
    """

    method: str = "VM.suspend"

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest result, unless it refuses a Paused VM: then the Running one's."""
        result = honest(world, call)
        ref = _vm_arg(world, call)
        if call.method != self.method or ref is None or not _refused_paused(result):
            return result
        running = with_vm(world, ref, {**world.vms[ref], "power_state": "Running"})
        allowed = honest(running, call)
        return allowed if all(isinstance(b.outcome, Success) for b in allowed) else result


def _refused_paused(result: Result) -> bool:
    """Every branch is VM_BAD_POWER_STATE with actual state "paused"."""
    return all(
        isinstance(b.outcome, Failure)
        and b.outcome.code == "VM_BAD_POWER_STATE"
        and b.outcome.params[-1:] == ("paused",)
        for b in result
    )


@dataclass(frozen=True)
class BlockedIgnored:
    """blocked_operations are ignored for VM.start and VM.clean_shutdown (also ``Async.``).

    Divergence: on a VM whose blocked_operations has ``start: REASON``, xapi answers
    ``OPERATION_BLOCKED [vm, REASON]`` to VM.start and the VM stays Halted; the faulty server
    answers ``Success("")`` and the VM is Running. The block itself stays in the record.
    """

    operations: frozenset[str] = frozenset({"start", "clean_shutdown"})

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """Run the call with the op's block removed, then put the block back."""
        op = call.method.removeprefix(ASYNC_PREFIX).removeprefix("VM.")
        ref = _vm_arg(world, call)
        blocked = world.vms[ref].get("blocked_operations") if ref else None
        if ref is None or op not in self.operations or not _has_key(blocked, op):
            return honest(world, call)
        assert isinstance(blocked, Mapping)
        unblocked = {key: value for key, value in blocked.items() if key != op}
        altered = update_vm(world, ref, {"blocked_operations": unblocked})
        restore = {"blocked_operations": blocked}
        return _map_branches(
            honest(altered, call),
            lambda b: _restored(b, world, altered, ref, restore),
        )


def _has_key(value: Value | None, key: str) -> bool:
    return isinstance(value, Mapping) and key in value


def _restored(
    branch: Branch, original: World, altered: World, ref: str, fields: Mapping[str, Value]
) -> Branch:
    """``branch`` with ``fields`` of VM ``ref`` back; an untouched world is the original one."""
    if branch.world is altered:
        return replace(branch, world=original)
    if ref not in branch.world.vms:
        return branch
    return replace(branch, world=update_vm(branch.world, ref, fields))


_DYNAMIC_SETTERS = (
    "VM.set_memory_dynamic_range",
    "VM.set_memory_dynamic_min",
    "VM.set_memory_dynamic_max",
)


@dataclass(frozen=True)
class MemoryOrderUnchecked:
    """On a Halted VM, the dynamic memory setters accept dynamic_min > dynamic_max and store it.

    Applies to VM.set_memory_dynamic_range, _min and _max (synchronous). Divergence: xapi answers
    ``MEMORY_CONSTRAINT_VIOLATION_ORDER []`` and keeps the record; the faulty server answers
    ``Success("")`` and stores dynamic_min (= target) above dynamic_max. Only the dynamic order
    is unchecked: values outside the static range are still refused. Implemented by running the
    honest setter with the two values swapped, then swapping them back in the stored record.
    """

    methods: tuple[str, ...] = _DYNAMIC_SETTERS

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest result, unless it is an order violation on a Halted VM."""
        result = honest(world, call)
        ref = _vm_arg(world, call)
        if (
            call.method not in self.methods
            or ref is None
            or not _order_violation(world, ref, result)
        ):
            return result
        swapped = honest(world, replace(call, method=self.methods[0], args=_swapped(world, call)))
        if not all(isinstance(b.outcome, Success) for b in swapped):
            return result
        return _map_branches(swapped, lambda b: replace(b, world=_unswapped(b.world, ref)))


def _order_violation(world: World, ref: str, result: Result) -> bool:
    halted = world.vms[ref]["power_state"] == "Halted"
    order = Failure("MEMORY_CONSTRAINT_VIOLATION_ORDER")
    return halted and all(b.outcome == order for b in result)


def _swapped(world: World, call: Call) -> tuple[object, ...]:
    """set_memory_dynamic_range's raw args with (low, high) given as (high, low)."""
    session, ref, value = call.args[0], str(call.args[1]), call.args[2]
    vm = world.vms[ref]
    if call.method == "VM.set_memory_dynamic_min":
        return session, ref, vm["memory_dynamic_max"], value
    if call.method == "VM.set_memory_dynamic_max":
        return session, ref, value, vm["memory_dynamic_min"]
    return session, ref, call.args[3], value


def _unswapped(world: World, ref: str) -> World:
    """Swap dynamic_min and dynamic_max back; the target follows dynamic_min as xapi sets it."""
    vm = world.vms[ref]
    low, high = vm["memory_dynamic_max"], vm["memory_dynamic_min"]
    changes = {"memory_dynamic_min": low, "memory_target": low, "memory_dynamic_max": high}
    return update_vm(world, ref, changes)


@dataclass(frozen=True)
class StaleRecord:
    """VM.set_name_label succeeds but the record keeps its old name.

    Divergence: after ``VM.set_name_label(vm, "renamed")`` answers ``Success("")`` (as xapi
    does), ``VM.get_name_label(vm)`` answers the old name where xapi answers "renamed".
    Synchronous calls only.
    """

    method: str = "VM.set_name_label"

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest outcomes, but a success leaves the world as it was."""
        result = honest(world, call)
        if call.method != self.method:
            return result
        return _map_branches(
            result, lambda b: replace(b, world=world) if isinstance(b.outcome, Success) else b
        )


@dataclass(frozen=True)
class LostAsyncError:
    """An ``Async.`` call that fails records its error in a task whose status is "success".

    Divergence: after ``Async.VM.hard_shutdown`` on a Halted VM, xapi's task has status
    "failure" and error_info ``[VM_BAD_POWER_STATE, vm, "paused, suspended, running",
    "halted"]``; the faulty server's task has status "success" with the same error_info.
    """

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest branches with every failed task relabelled a success."""
        result = honest(world, call)
        if not call.method.startswith(ASYNC_PREFIX):
            return result
        return _map_branches(result, _task_succeeded)


def _task_succeeded(branch: Branch) -> Branch:
    """``branch`` with its task's status "failure" turned into "success"."""
    outcome = branch.outcome
    if not (isinstance(outcome, Success) and isinstance(outcome.value, str)):
        return branch
    task = branch.world.tasks.get(outcome.value)
    if task is None or task.status != "failure":
        return branch
    tasks = {**branch.world.tasks, task.ref: replace(task, status="success")}
    return replace(branch, world=replace(branch.world, tasks=MappingProxyType(tasks)))


@dataclass(frozen=True)
class RbacIgnored:
    """Role-limited sessions may call anything: the permission check is skipped.

    Divergence: a read-only session's ``VM.start(vm, False, False)`` answers ``Success("")``
    where xapi answers ``RBAC_PERMISSION_DENIED ["vm.start"; "No permission in user session.
    (Roles with this permission: …)"]``.
    """

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest transition run as if the caller's session were a superuser's."""
        session = call.args[0] if call.args else None
        info = world.sessions.get(session) if isinstance(session, str) else None
        if info is None or info.superuser:
            return honest(world, call)
        elevated = MappingProxyType({**world.sessions, session: replace(info, superuser=True)})
        result = honest(replace(world, sessions=elevated), call)
        return _map_branches(
            result, lambda b: replace(b, world=_demoted(b.world, str(session), info))
        )


def _demoted(world: World, session: str, info: SessionInfo) -> World:
    if session not in world.sessions:
        return world
    return replace(world, sessions=MappingProxyType({**world.sessions, session: info}))


FAULTS: Mapping[str, Fault] = MappingProxyType(
    {
        "wrong-error-param": WrongErrorParam(),
        "wrong-state-allowed": WrongStateAllowed(),
        "blocked-ignored": BlockedIgnored(),
        "memory-order-unchecked": MemoryOrderUnchecked(),
        "stale-record": StaleRecord(),
        "lost-async-error": LostAsyncError(),
        "rbac-ignored": RbacIgnored(),
    }
)
"""Every seeded fault by the name ``serve --fault`` and ``ServerConfig.faults`` use."""


def summary(fault: Fault) -> str:
    """The first line of the fault's docstring: what ``serve --list-faults`` prints."""
    return (type(fault).__doc__ or "").strip().splitlines()[0].replace("``", "")


def known(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or a UsageError naming the unknown one and every known fault."""
    checked = tuple(names)
    for name in checked:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}")
    return checked


def lookup(names: Iterable[str]) -> tuple[Fault, ...]:
    """The faults called ``names``, in order (UsageError for an unknown name)."""
    return tuple(FAULTS[name] for name in known(names))


def compose(faults: Sequence[Fault], honest: Transition = apply) -> Transition:
    """``honest`` wrapped by ``faults``: the first innermost, the last outermost."""
    transition = honest
    for fault in faults:
        transition = _layer(fault, transition)
    return transition


def _layer(fault: Fault, inner: Transition) -> Transition:
    def transition(world: World, call: Call) -> Result:
        return fault.apply(world, call, inner)

    return transition
