"""The kinds of seeded fault: how a fault wraps the model's transition.

A fault sees the world and the call, may run the honest transition on an altered world or call,
and returns (possibly altered) branches. Faults are pure, like the model. ``compose`` stacks
faults around the honest transition: the first wraps ``apply`` directly, each later one wraps
the stack built so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal, Protocol

from conformance.wire import Quirks
from models.checks import update_vm
from models.outcome import Failure, Success, Value
from models.rpc import ASYNC_PREFIX, apply
from models.transition import Branch, Call, Result
from models.world import Record, SessionInfo, Task, World

__all__ = [
    "RACE_WINDOW",
    "TOPICS",
    "BranchFault",
    "CallAltered",
    "CheckLifted",
    "Fault",
    "MemoryOrderUnchecked",
    "RaceQuirk",
    "Raced",
    "RbacIgnored",
    "Rewired",
    "Seeded",
    "Transition",
    "Unvalidated",
    "WronglyTyped",
    "compose",
    "races",
    "wire_quirks",
]

Transition = Callable[[World, Call], Result]
"""The shape of ``models.rpc.apply``: a world and a call in, every acceptable branch out."""


class Fault(Protocol):
    """A deliberate deviation from the model, applied around the honest transition."""

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The branches the faulty server takes for ``call`` in ``world``."""
        ...


# ---- helpers ---------------------------------------------------------------------------------


def _sync(call: Call) -> str:
    """The call's method without its ``Async.`` prefix."""
    return call.method.removeprefix(ASYNC_PREFIX)


def _vm_arg(world: World, call: Call) -> str | None:
    """The VM ref of a ``VM.*(session, vm, …)`` call, if it names a VM of ``world``."""
    ref = call.args[1] if len(call.args) > 1 else None
    return ref if isinstance(ref, str) and ref in world.vms else None


def _failure_of(branch: Branch) -> Failure | None:
    """The branch's failure: its answer, or for an ``Async.`` call the error in its task."""
    outcome = branch.outcome
    if isinstance(outcome, Failure):
        return outcome
    task = branch.world.tasks.get(outcome.value) if isinstance(outcome.value, str) else None
    if task is None or task.status != "failure" or not task.error_info:
        return None
    return Failure(task.error_info[0], task.error_info[1:])


def _failed_with(result: Result, code: str) -> bool:
    """Every branch is a failure with ``code`` (in its task for an ``Async.`` call)."""
    return all((f := _failure_of(b)) is not None and f.code == code for b in result)


def _succeeded(result: Result) -> bool:
    """Every branch is a success (of its task for an ``Async.`` call)."""
    return all(_failure_of(b) is None for b in result)


def _vm_methods(*names: str, asynchronous: bool = False) -> frozenset[str]:
    """``VM.<name>`` for each name, and the ``Async.`` forms when ``asynchronous``."""
    methods = {f"VM.{name}" for name in names}
    if asynchronous:
        methods |= {ASYNC_PREFIX + m for m in methods}
    return frozenset(methods)


def _async_only(methods: frozenset[str]) -> frozenset[str]:
    """The ``Async.`` forms of ``methods``."""
    return frozenset(ASYNC_PREFIX + m for m in methods)


def _new_vm(before: World, branch: Branch) -> str | None:
    """The VM a successful branch created (a clone, copy or snapshot), if any."""
    value = branch.outcome.value if isinstance(branch.outcome, Success) else None
    return (
        value
        if isinstance(value, str) and value in branch.world.vms and value not in before.vms
        else None
    )


def _edit_vm(branch: Branch, ref: str | None, changes: Mapping[str, Value]) -> Branch:
    """``branch`` with VM ``ref``'s ``changes`` stored as they are (allowed ops not recomputed)."""
    if ref is None or ref not in branch.world.vms:
        return branch
    return replace(branch, world=update_vm(branch.world, ref, changes, recompute=False))


def _with_task(branch: Branch, change: Callable[[Task], Task | None]) -> Branch:
    """``branch`` with the task it answers changed (``None`` from ``change``: unchanged)."""
    outcome = branch.outcome
    task = branch.world.tasks.get(str(outcome.value)) if isinstance(outcome, Success) else None
    changed = change(task) if task is not None else None
    if changed is None:
        return branch
    tasks = MappingProxyType({**branch.world.tasks, changed.ref: changed})
    return replace(branch, world=replace(branch.world, tasks=tasks))


# ---- the shapes of faults ------------------------------------------------------------------------

BranchChange = Callable[[World, Call, Branch], Branch]
"""How a fault alters one honest branch: the world before, the call, the branch."""


@dataclass(frozen=True)
class BranchFault:
    """The honest branches of ``methods`` (every method when empty), each altered by ``change``."""

    change: BranchChange
    methods: frozenset[str] = frozenset()

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """Run the honest transition, then alter its branches."""
        result = honest(world, call)
        if self.methods and call.method not in self.methods:
            return result
        return tuple(self.change(world, call, branch) for branch in result)


@dataclass(frozen=True)
class Rewired:
    """A fault written as a whole transition: ``run(world, call, honest)``."""

    run: Callable[[World, Call, Transition], Result]

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """Whatever ``run`` makes of the call, the honest transition at hand."""
        return self.run(world, call, honest)


@dataclass(frozen=True)
class WronglyTyped:
    """The model's answers, written on the wire with ``quirks`` (ints or bools wrongly typed)."""

    quirks: Quirks

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest transition: only the encoding of its answer is wrong."""
        return honest(world, call)


def wire_quirks(faults: Iterable[Fault]) -> Quirks:
    """The wire quirks the ``faults`` call for, together (none: values typed as xapi's)."""
    typed = [fault.fault if isinstance(fault, Seeded) else fault for fault in faults]
    quirks = [fault.quirks for fault in typed if isinstance(fault, WronglyTyped)]
    return Quirks(
        **{name: any(getattr(q, name) for q in quirks) for name in Quirks.__dataclass_fields__}
    )


@dataclass(frozen=True)
class CallAltered:
    """Calls of ``methods`` are run as ``alter`` rewrites them (an argument ignored or swapped)."""

    alter: Callable[[Call], Call]
    methods: frozenset[str]

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest transition of the altered call."""
        return honest(world, self.alter(call) if call.method in self.methods else call)


Accept = Literal["success", "failure", "any"]


@dataclass(frozen=True)
class CheckLifted:
    """A check skipped or reordered: when ``methods`` are refused with ``code``, the call runs
    again on a world where ``lift`` removed the reason (fields of the VM), and that answer is
    kept if it is a success, a failure or anything (``accept``). With ``restore`` the lifted
    fields are put back afterwards (the reason stays visible in the record)."""

    methods: frozenset[str]
    code: str
    lift: Callable[[Call, Record], Mapping[str, Value]]
    accept: Accept = "success"
    restore: bool = True

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest answer, or the one without the check."""
        result = honest(world, call)
        ref = _vm_arg(world, call)
        if call.method not in self.methods or ref is None or not _failed_with(result, self.code):
            return result
        vm = world.vms[ref]
        lifted = self.lift(call, vm)
        again = honest(update_vm(world, ref, lifted, recompute=False), call)
        if not self._accepted(again):
            return result
        if not self.restore:
            return again
        original = {name: vm[name] for name in lifted}
        return tuple(_edit_vm(b, ref, original) for b in again)

    def _accepted(self, result: Result) -> bool:
        if self.accept == "any":
            return True
        return _succeeded(result) == (self.accept == "success")


@dataclass(frozen=True)
class Unvalidated:
    """A validation skipped: when ``methods`` are refused with ``code``, the call succeeds and
    ``store`` says what it writes into the VM record anyway."""

    methods: frozenset[str]
    code: str
    store: Callable[[Call, Record], Mapping[str, Value]]

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest answer, unless it is the refusal: then success with the stored values."""
        result = honest(world, call)
        ref = _vm_arg(world, call)
        if call.method not in self.methods or ref is None or not _failed_with(result, self.code):
            return result
        stored = self.store(call, world.vms[ref])
        return (Branch(Success(""), update_vm(world, ref, stored, recompute=False)),)


# ---- faults with rules of their own ---------------------------------------------------------------

_DYNAMIC_SETTERS = (
    "VM.set_memory_dynamic_range",
    "VM.set_memory_dynamic_min",
    "VM.set_memory_dynamic_max",
)


@dataclass(frozen=True)
class MemoryOrderUnchecked:
    """On a Halted VM, the dynamic memory setters accept dynamic_min > dynamic_max and store it.

    Implemented by running the honest setter with the two values swapped, then swapping them
    back in the stored record (values outside the static range are still refused).
    """

    methods: tuple[str, ...] = _DYNAMIC_SETTERS

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest result, unless it is an order violation on a Halted VM."""
        result = honest(world, call)
        ref = _vm_arg(world, call)
        order = Failure("MEMORY_CONSTRAINT_VIOLATION_ORDER")
        if (
            call.method not in self.methods
            or ref is None
            or world.vms[ref]["power_state"] != "Halted"
            or any(b.outcome != order for b in result)
        ):
            return result
        swapped = honest(world, replace(call, method=self.methods[0], args=_swapped(world, call)))
        if not _succeeded(swapped):
            return result
        return tuple(replace(b, world=_unswapped(b.world, ref)) for b in swapped)


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
class RbacIgnored:
    """Role-limited sessions may call anything: the permission check is skipped (only for
    ``methods`` and sessions of ``roles``, each when not empty)."""

    methods: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest transition run as if the caller's session were a superuser's."""
        session = call.args[0] if call.args else None
        info = world.sessions.get(session) if isinstance(session, str) else None
        if info is None or info.superuser or not self._covers(call.method, info.role):
            return honest(world, call)
        elevated = MappingProxyType({**world.sessions, session: replace(info, superuser=True)})
        result = honest(replace(world, sessions=elevated), call)
        return tuple(replace(b, world=_demoted(b.world, str(session), info)) for b in result)

    def _covers(self, method: str, role: str) -> bool:
        return (not self.methods or method in self.methods) and (
            not self.roles or role in self.roles
        )


def _demoted(world: World, session: str, info: SessionInfo) -> World:
    if session not in world.sessions:
        return world
    return replace(world, sessions=MappingProxyType({**world.sessions, session: info}))


TOPICS = (
    "lifecycle",
    "errors",
    "memory",
    "operations",
    "templates",
    "fields",
    "rpc",
    "roles",
    "async",
    "events",
)
"""What a fault gets wrong (``Seeded.topic``): power states (lifecycle), error codes and
parameters, memory, blocked and allowed operations, templates and snapshots, fields and records,
the RPC layer, roles, Async tasks, events."""


@dataclass(frozen=True)
class Seeded:
    """A catalogued fault: what it gets wrong (``topic``), the suite area whose divergence shows
    it (``area``), a one-line ``summary`` and the ``divergence`` a run must report."""

    fault: Fault
    topic: str
    area: str
    summary: str
    divergence: str

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The fault's branches."""
        return self.fault.apply(world, call, honest)


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


# ---- races: faults that show only while calls overlap (issue 12) ------------------------------

RaceQuirk = Literal[
    "unmarked", "fail-fast", "stale-write", "stale-allowed", "cancel-effect", "cancels-all", "none"
]
"""How a racy server runs operations in flight (``conformance.server.inflight``): ``unmarked``
checks at the begin but marks nothing and trusts that check at the end; ``fail-fast`` answers a
conflict at once instead of waiting it out; ``stale-write`` reads a map at the call's start and
writes it back at its end; ``stale-allowed`` marks current_operations without recomputing
allowed_operations; ``cancel-effect`` answers TASK_CANCELLED to a cancelled operation in flight
but does its work all the same; ``cancels-all`` makes ``methods`` (hard_shutdown, hard_reboot)
cancel every operation in flight on their VM, not only those xapi's cancel; ``none`` only keeps operations in flight for ``window``."""


RACE_WINDOW = 0.05
"""The least time an operation in flight takes under a race fault, so that calls overlap."""


@dataclass(frozen=True)
class Raced:
    """A fault of the embedded server's concurrency: ``quirk`` acts on ``methods`` (sync names),
    each of which takes at least ``window`` seconds, and every in-flight operation at least
    ``RACE_WINDOW`` (or a smaller ``window``), so that calls overlap even without
    ``--latency``. ``inner`` alters the transition too."""

    quirk: RaceQuirk
    methods: frozenset[str]
    window: float = RACE_WINDOW
    inner: Fault | None = None

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest transition (or ``inner``'s): the race is in how the server runs it."""
        return self.inner.apply(world, call, honest) if self.inner else honest(world, call)


def races(faults: Iterable[Fault]) -> tuple[Raced, ...]:
    """The race faults among ``faults`` (catalogued or bare)."""
    found = (f.fault if isinstance(f, Seeded) else f for f in faults)
    return tuple(f for f in found if isinstance(f, Raced))
