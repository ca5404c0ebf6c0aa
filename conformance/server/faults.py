"""Seeded faults: deliberately wrong variants of the embedded server, for the suite's own tests.

A fault wraps the model's transition. It sees the world and the call, may run the honest
transition on an altered world or call, and returns (possibly altered) branches. Faults are
pure, like the model. Each is catalogued (``FAULTS``) with the area of the suite that finds it,
a one-line summary (``serve --list-faults``) and the divergence a conformance run must report.
Each imitates a mistake a reimplementation of xapi plausibly makes.

``compose`` stacks faults around the honest transition in order: the first wraps ``apply``
directly, each later one wraps the stack built so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal, Protocol

from conformance.errors import UsageError
from conformance.wire import Quirks
from models.catalogue import roles_at_least
from models.checks import update_vm
from models.inflight import IN_FLIGHT_OPERATIONS
from models.outcome import Failure, Success, Value
from models.rpc import ASYNC_PREFIX, apply
from models.transition import Branch, Call, Result
from models.world import NULL_REF, Record, SessionInfo, Task, World

__all__ = [
    "FAULTS",
    "TOPICS",
    "BranchFault",
    "CallAltered",
    "CheckLifted",
    "Fault",
    "MemoryOrderUnchecked",
    "Raced",
    "RbacIgnored",
    "Seeded",
    "Transition",
    "Unvalidated",
    "WronglyTyped",
    "compose",
    "known",
    "lookup",
    "races",
    "summary",
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
        int_typed=any(q.int_typed for q in quirks), bool_text=any(q.bool_text for q in quirks)
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
    """Role-limited sessions may call anything: the permission check is skipped."""

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        """The honest transition run as if the caller's session were a superuser's."""
        session = call.args[0] if call.args else None
        info = world.sessions.get(session) if isinstance(session, str) else None
        if info is None or info.superuser:
            return honest(world, call)
        elevated = MappingProxyType({**world.sessions, session: replace(info, superuser=True)})
        result = honest(replace(world, sessions=elevated), call)
        return tuple(replace(b, world=_demoted(b.world, str(session), info)) for b in result)


def _demoted(world: World, session: str, info: SessionInfo) -> World:
    if session not in world.sessions:
        return world
    return replace(world, sessions=MappingProxyType({**world.sessions, session: info}))


# ---- branch changes, one per fault --------------------------------------------------------------


def _rewrite_failure(
    code: str, params: Callable[[World, Call, tuple[str, ...]], tuple[str, ...]]
) -> BranchChange:
    """A change that rewrites the parameters of every failure with ``code``."""

    def change(world: World, call: Call, branch: Branch) -> Branch:
        outcome = branch.outcome
        if not (isinstance(outcome, Failure) and outcome.code == code):
            return branch
        return replace(branch, outcome=Failure(code, params(world, call, outcome.params)))

    return change


def _semicolons(_w: World, _c: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    if len(params) < 2:
        return params
    return (params[0], params[1].replace(", ", ";"), *params[2:])


def _capitalised_state(_w: World, _c: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    return (*params[:-1], params[-1].capitalize()) if params else params


def _lowercase_class(_w: World, _c: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    return (params[0].lower(), *params[1:]) if params else params


def _operation_not_reason(_w: World, call: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    return (*params[:1], _sync(call).removeprefix("VM."))


def _uuid_not_ref(world: World, _c: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    vm = world.vms.get(params[2]) if len(params) > 2 else None
    return (*params[:2], str(vm["uuid"]), *params[3:]) if vm else params


def _counting_session(_w: World, _c: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    if len(params) < 3 or not (params[1].isdigit() and params[2].isdigit()):
        return params
    return params[0], str(int(params[1]) + 1), str(int(params[2]) + 1)


def _no_params(_w: World, _c: Call, _p: tuple[str, ...]) -> tuple[str, ...]:
    return ()


def _type_error_text(_w: World, _c: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    if not params or not params[0].startswith("Expected "):
        return params
    return (params[0].replace("Expected ", "type error: expected ", 1),)


def _wire_case_permission(_w: World, call: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    if not params or "/" in params[0]:
        return params
    return (_sync(call), *params[1:])


def _refusal_accepted(world: World, call: Call, branch: Branch) -> Branch:
    return Branch(Success(""), world) if isinstance(branch.outcome, Failure) else branch


def _success_without_effect(world: World, call: Call, branch: Branch) -> Branch:
    return replace(branch, world=world) if isinstance(branch.outcome, Success) else branch


def _template_as_not_allowed(world: World, call: Call, branch: Branch) -> Branch:
    outcome = branch.outcome
    if isinstance(outcome, Failure) and outcome.code == "VM_IS_TEMPLATE":
        reason = f"VM is a template: {outcome.params[-1]}"
        return replace(branch, outcome=Failure("OPERATION_NOT_ALLOWED", (reason,)))
    return branch


def _unpause_running_accepted(world: World, call: Call, branch: Branch) -> Branch:
    outcome = branch.outcome
    if (
        isinstance(outcome, Failure)
        and outcome.code == "VM_BAD_POWER_STATE"
        and outcome.params[-1:] == ("running",)
    ):
        return Branch(Success(""), world)
    return branch


def _suspended_refused(world: World, call: Call, branch: Branch) -> Branch:
    ref = _vm_arg(world, call)
    if ref is None or world.vms[ref]["power_state"] != "Suspended":
        return branch
    return Branch(Failure("VM_BAD_POWER_STATE", (ref, "paused, running", "suspended")), world)


def _running_refused(world: World, call: Call, branch: Branch) -> Branch:
    ref = _vm_arg(world, call)
    if ref is None or world.vms[ref]["power_state"] != "Running":
        return branch
    return Branch(Failure("VM_BAD_POWER_STATE", (ref, "halted", "running")), world)


def _orphan_revert_refused(world: World, call: Call, branch: Branch) -> Branch:
    """VM.revert of a snapshot whose VM was destroyed fails and makes nothing."""
    snapshot = _vm_arg(world, call)
    old = str(world.vms[snapshot]["snapshot_of"]) if snapshot is not None else NULL_REF
    if snapshot is None or old == NULL_REF or old in world.vms:
        return branch
    return Branch(Failure("VM_REVERT_FAILED", (snapshot, old)), world)


def _kept(*fields: str) -> BranchChange:
    """A success that leaves ``fields`` of the call's VM as they were before it."""

    def change(world: World, call: Call, branch: Branch) -> Branch:
        ref = _vm_arg(world, call)
        if ref is None or not isinstance(branch.outcome, Success):
            return branch
        return _edit_vm(branch, ref, {name: world.vms[ref][name] for name in fields})

    return change


def _tag_appended(world: World, call: Call, branch: Branch) -> Branch:
    ref = _vm_arg(world, call)
    if ref is None or not isinstance(branch.outcome, Success) or len(call.args) < 3:
        return branch
    tags = world.vms[ref]["tags"]
    old = tuple(tags) if isinstance(tags, tuple) else ()
    tag = call.args[2]
    if not isinstance(tag, str) or tag not in old:
        return branch
    return _edit_vm(branch, ref, {"tags": (*old, tag)})


def _new_vm_edited(changes: Mapping[str, Value], *, running_source: bool = False) -> BranchChange:
    """The VM a copy creates gets ``changes`` (only for a Running source if asked)."""

    def change(world: World, call: Call, branch: Branch) -> Branch:
        source = _vm_arg(world, call)
        if running_source and (source is None or world.vms[source]["power_state"] != "Running"):
            return branch
        return _edit_vm(branch, _new_vm(world, branch), changes)

    return change


def _record_without(field: str) -> BranchChange:
    def change(world: World, call: Call, branch: Branch) -> Branch:
        outcome = branch.outcome
        if not (isinstance(outcome, Success) and isinstance(outcome.value, Mapping)):
            return branch
        value = outcome.value
        if call.method == "VM.get_record":
            trimmed: Value = {k: v for k, v in value.items() if k != field}
        else:
            trimmed = {
                ref: {k: v for k, v in rec.items() if k != field}
                if isinstance(rec, Mapping)
                else rec
                for ref, rec in value.items()
            }
        return replace(branch, outcome=Success(trimmed))

    return change


_OPERATOR_DENIED = _vm_methods("start", "clean_shutdown", "hard_shutdown", "clean_reboot")


def _operator_denied(world: World, call: Call, branch: Branch) -> Branch:
    session = call.args[0] if call.args else None
    info = world.sessions.get(session) if isinstance(session, str) else None
    if info is None or info.superuser or info.role != "vm-operator":
        return branch
    roles = ", ".join(roles_at_least("vm-admin"))
    text = f"No permission in user session. (Roles with this permission: {roles})"
    return Branch(Failure("RBAC_PERMISSION_DENIED", (call.method.lower(), text)), world)


def _failed_as_success(world: World, call: Call, branch: Branch) -> Branch:
    return _with_task(
        branch, lambda t: replace(t, status="success") if t.status == "failure" else None
    )


def _result_dropped(world: World, call: Call, branch: Branch) -> Branch:
    return _with_task(
        branch,
        lambda t: (
            replace(t, result="")
            if t.status == "success" and t.result not in ("", NULL_REF)
            else None
        ),
    )


def _error_code_only(world: World, call: Call, branch: Branch) -> Branch:
    return _with_task(
        branch, lambda t: replace(t, error_info=t.error_info[:1]) if len(t.error_info) > 1 else None
    )


def _effect_lost(world: World, call: Call, branch: Branch) -> Branch:
    """The task is created and succeeds, but the VMs are as they were before the call."""
    outcome = branch.outcome
    task = branch.world.tasks.get(str(outcome.value)) if isinstance(outcome, Success) else None
    if task is None or task.status != "success":
        return branch
    kept = replace(branch.world, vms=world.vms)
    return replace(branch, world=kept)


def _without_key(
    field: str, key: Callable[[Call], str]
) -> Callable[[Call, Record], Mapping[str, Value]]:
    def lift(call: Call, vm: Record) -> Mapping[str, Value]:
        current = vm[field]
        mapping = current if isinstance(current, Mapping) else {}
        return {field: {k: v for k, v in mapping.items() if k != key(call)}}

    return lift


def _default_template(_call: Call) -> str:
    return "default_template"


def _operation(call: Call) -> str:
    return _sync(call).removeprefix("VM.")


def _paused_as_running(call: Call, vm: Record) -> Mapping[str, Value]:
    return {"power_state": "Running"} if vm["power_state"] == "Paused" else {}


def _not_template(call: Call, vm: Record) -> Mapping[str, Value]:
    return {"is_a_template": False}


def _started_unpaused(call: Call) -> Call:
    paused_index = 3 if _sync(call).endswith("_on") else 2
    args = list(call.args)
    if len(args) > paused_index:
        args[paused_index] = False
    return replace(call, args=tuple(args))


def _stored_value(field: str) -> Callable[[Call, Record], Mapping[str, Value]]:
    def store(call: Call, vm: Record) -> Mapping[str, Value]:
        value = call.args[2] if len(call.args) > 2 else None
        return (
            {field: int(value)}
            if isinstance(value, int | str) and str(value).lstrip("-").isdigit()
            else {}
        )

    return store


def _session_kept(world: World, call: Call, branch: Branch) -> Branch:
    """A logout that answers success but leaves the session valid."""
    if not isinstance(branch.outcome, Success):
        return branch
    return replace(branch, world=replace(branch.world, sessions=world.sessions))


def _blocked_operations_inherited(world: World, call: Call, branch: Branch) -> Branch:
    """The new VM of a clone or copy keeps its source's blocked_operations."""
    source = _vm_arg(world, call)
    if source is None:
        return branch
    inherited = {"blocked_operations": world.vms[source]["blocked_operations"]}
    return _edit_vm(branch, _new_vm(world, branch), inherited)


# ---- the catalogue --------------------------------------------------------------------------------

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
)
"""What a fault gets wrong (``Seeded.topic``): power states (lifecycle), error codes and
parameters, memory, blocked and allowed operations, templates and snapshots, fields and records,
the RPC layer, roles, Async tasks."""


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


_BLOCKABLE_LIFECYCLE = _vm_methods(
    "start", "start_on", "clean_shutdown", "hard_shutdown", "shutdown", "clean_reboot",
    "hard_reboot", "pause", "unpause", "suspend", "resume", "checkpoint", "snapshot", "clone",
    "copy", "destroy", "provision",
)  # fmt: skip

_ENTRIES: tuple[tuple[str, Seeded], ...] = (
    # -- power states
    (
        "wrong-state-allowed",
        Seeded(
            CheckLifted(
                _vm_methods("suspend"), "VM_BAD_POWER_STATE", _paused_as_running, restore=False
            ),
            "lifecycle",
            "lifecycle",
            "VM.suspend on a Paused VM succeeds and moves it to Suspended, as if Paused were allowed.",
            'xapi answers VM_BAD_POWER_STATE [vm, "running", "paused"] and the VM stays Paused; the '
            "faulty server answers success and the VM is Suspended.",
        ),
    ),
    (
        "start-paused-ignored",
        Seeded(
            CallAltered(
                _started_unpaused,
                _vm_methods("start", "start_on", "resume", "resume_on", asynchronous=True),
            ),
            "lifecycle",
            "lifecycle",
            "VM.start (and start_on, resume, resume_on) ignore start_paused: the VM always runs.",
            "after VM.start(vm, true, false) xapi's VM is Paused; the faulty server's is Running, so "
            'VM.unpause then answers VM_BAD_POWER_STATE [vm, "paused", "running"].',
        ),
    ),
    (
        "suspend-keeps-host",
        Seeded(
            BranchFault(_kept("resident_on"), _vm_methods("suspend", asynchronous=True)),
            "lifecycle",
            "lifecycle",
            "A suspended VM stays resident on its host (resident_on is not cleared).",
            "after VM.suspend, xapi's record has resident_on OpaqueRef:NULL; the faulty one keeps the "
            "host.",
        ),
    ),
    (
        "shutdown-keeps-domid",
        Seeded(
            BranchFault(
                _kept("domid"),
                _vm_methods("hard_shutdown", "clean_shutdown", "shutdown", asynchronous=True),
            ),
            "lifecycle",
            "lifecycle",
            "A VM shut down keeps its domain id (domid is not reset to -1).",
            "after VM.hard_shutdown of a Running VM, xapi's record has domid -1; the faulty one keeps "
            "the running domain's id.",
        ),
    ),
    (
        "unpause-running-accepted",
        Seeded(
            BranchFault(_unpause_running_accepted, _vm_methods("unpause")),
            "lifecycle",
            "lifecycle",
            "VM.unpause of a Running VM succeeds as a no-op.",
            'xapi answers VM_BAD_POWER_STATE [vm, "paused", "running"]; the faulty server answers '
            "success.",
        ),
    ),
    (
        "hard-shutdown-suspended-refused",
        Seeded(
            BranchFault(_suspended_refused, _vm_methods("hard_shutdown")),
            "lifecycle",
            "lifecycle",
            "VM.hard_shutdown refuses a Suspended VM (xapi discards its suspend image and halts it).",
            "xapi answers success and the VM is Halted; the faulty server answers VM_BAD_POWER_STATE "
            '[vm, "paused, running", "suspended"].',
        ),
    ),
    # -- error codes and parameters
    (
        "wrong-error-param",
        Seeded(
            BranchFault(_rewrite_failure("VM_BAD_POWER_STATE", _semicolons)),
            "errors",
            "lifecycle",
            "VM_BAD_POWER_STATE joins its expected states with ';' instead of ', '.",
            'VM.hard_shutdown on a Halted VM answers [vm, "paused;suspended;running", "halted"] where '
            'xapi answers [vm, "paused, suspended, running", "halted"].',
        ),
    ),
    (
        "power-state-capitalised",
        Seeded(
            BranchFault(_rewrite_failure("VM_BAD_POWER_STATE", _capitalised_state)),
            "errors",
            "lifecycle",
            "VM_BAD_POWER_STATE names the actual power state capitalised (Halted, not halted).",
            'VM.clean_shutdown on a Halted VM answers [vm, "running", "Halted"] where xapi answers '
            '[vm, "running", "halted"].',
        ),
    ),
    (
        "handle-invalid-lowercase",
        Seeded(
            BranchFault(_rewrite_failure("HANDLE_INVALID", _lowercase_class)),
            "errors",
            "rpc",
            "HANDLE_INVALID names the class in lower case (vm, not VM).",
            'VM.get_record(OpaqueRef:NULL) answers HANDLE_INVALID ["vm", ref] where xapi answers '
            '["VM", ref].',
        ),
    ),
    (
        "blocked-reason-lost",
        Seeded(
            BranchFault(_rewrite_failure("OPERATION_BLOCKED", _operation_not_reason)),
            "errors",
            "operations",
            "OPERATION_BLOCKED gives the blocked operation's name instead of the reason stored.",
            'a VM.start blocked with reason R answers OPERATION_BLOCKED [vm, "start"] where xapi '
            "answers [vm, R].",
        ),
    ),
    (
        "template-error-code",
        Seeded(
            BranchFault(_template_as_not_allowed),
            "errors",
            "lifecycle",
            "Operations refused on templates answer OPERATION_NOT_ALLOWED instead of VM_IS_TEMPLATE.",
            'VM.start on a template answers OPERATION_NOT_ALLOWED ["VM is a template: start"] where '
            'xapi answers VM_IS_TEMPLATE [vm, "start"].',
        ),
    ),
    (
        "map-duplicate-uuid",
        Seeded(
            BranchFault(_rewrite_failure("MAP_DUPLICATE_KEY", _uuid_not_ref)),
            "errors",
            "fields",
            "MAP_DUPLICATE_KEY names the VM by its uuid instead of its ref.",
            'adding an existing other_config key answers MAP_DUPLICATE_KEY ["VM", "other_config", '
            'uuid, key] where xapi answers ["VM", "other_config", ref, key].',
        ),
    ),
    # -- memory
    (
        "memory-order-unchecked",
        Seeded(
            MemoryOrderUnchecked(),
            "memory",
            "memory",
            "On a Halted VM, the dynamic memory setters accept dynamic_min > dynamic_max.",
            "xapi answers MEMORY_CONSTRAINT_VIOLATION_ORDER [] and keeps the record; the faulty "
            "server answers success and stores dynamic_min above dynamic_max.",
        ),
    ),
    (
        "target-not-following",
        Seeded(
            BranchFault(_kept("memory_target"), frozenset(_DYNAMIC_SETTERS)),
            "memory",
            "memory",
            "The dynamic memory setters leave memory_target where it was.",
            "after VM.set_memory_dynamic_range(vm, low, high), xapi's memory_target is low; the "
            "faulty server's is the old target.",
        ),
    ),
    (
        "static-max-unchecked",
        Seeded(
            Unvalidated(
                _vm_methods("set_memory_static_max"),
                "MEMORY_CONSTRAINT_VIOLATION_ORDER",
                _stored_value("memory_static_max"),
            ),
            "memory",
            "memory",
            "VM.set_memory_static_max accepts a value below dynamic_max (the order is not checked).",
            "xapi answers MEMORY_CONSTRAINT_VIOLATION_ORDER []; the faulty server answers success "
            "and stores static_max below dynamic_max.",
        ),
    ),
    (
        "vcpus-unchecked",
        Seeded(
            Unvalidated(
                _vm_methods("set_VCPUs_at_startup"),
                "INVALID_VALUE",
                _stored_value("VCPUs_at_startup"),
            ),
            "memory",
            "memory",
            "VM.set_VCPUs_at_startup accepts any count, also above VCPUs_max or below 1.",
            'xapi answers INVALID_VALUE ["VCPU values must satisfy: 0 < VCPUs_at_startup ≤ '
            'VCPUs_max", n]; the faulty server answers success and stores n.',
        ),
    ),
    (
        "dynamic-range-running-refused",
        Seeded(
            BranchFault(_running_refused, frozenset(_DYNAMIC_SETTERS)),
            "memory",
            "memory",
            "The dynamic memory setters refuse a Running VM (xapi changes a running VM's balloon).",
            "xapi answers success on a Running VM; the faulty server answers VM_BAD_POWER_STATE "
            '[vm, "halted", "running"].',
        ),
    ),
    # -- blocked and allowed operations
    (
        "blocked-ignored",
        Seeded(
            CheckLifted(
                _vm_methods("start", "clean_shutdown", asynchronous=True),
                "OPERATION_BLOCKED",
                _without_key("blocked_operations", _operation),
                accept="any",
            ),
            "operations",
            "operations",
            "blocked_operations are ignored for VM.start and VM.clean_shutdown (also Async).",
            "on a VM whose blocked_operations has start: R, xapi answers OPERATION_BLOCKED [vm, R] "
            "and the VM stays Halted; the faulty server answers success and the VM is Running.",
        ),
    ),
    (
        "blocked-checked-late",
        Seeded(
            CheckLifted(
                _BLOCKABLE_LIFECYCLE,
                "OPERATION_BLOCKED",
                _without_key("blocked_operations", _operation),
                accept="failure",
            ),
            "operations",
            "operations",
            "blocked_operations are checked after the power state instead of first.",
            "VM.unpause, blocked, on a Halted VM answers VM_BAD_POWER_STATE where xapi answers "
            "OPERATION_BLOCKED [vm, R].",
        ),
    ),
    (
        "allowed-ops-stale",
        Seeded(
            BranchFault(
                _kept("allowed_operations"), _vm_methods("start", "start_on", asynchronous=True)
            ),
            "operations",
            "operations",
            "VM.start does not recompute allowed_operations: a running VM lists a halted VM's ops.",
            "after VM.start, xapi's allowed_operations has clean_shutdown and no start; the faulty "
            "server's still has start.",
        ),
    ),
    (
        "assert-valid-lax",
        Seeded(
            BranchFault(_refusal_accepted, _vm_methods("assert_operation_valid")),
            "operations",
            "operations",
            "VM.assert_operation_valid always succeeds.",
            'VM.assert_operation_valid(vm, "unpause") on a Halted VM answers success where xapi '
            'answers VM_BAD_POWER_STATE [vm, "paused", "halted"].',
        ),
    ),
    (
        "unblock-ignored",
        Seeded(
            BranchFault(_kept("blocked_operations"), _vm_methods("remove_from_blocked_operations")),
            "operations",
            "operations",
            "VM.remove_from_blocked_operations succeeds but the operation stays blocked.",
            "after the removal, xapi's blocked_operations lacks the key; the faulty server's keeps it.",
        ),
    ),
    # -- templates and snapshots
    (
        "template-startable",
        Seeded(
            CheckLifted(_vm_methods("start", asynchronous=True), "VM_IS_TEMPLATE", _not_template),
            "templates",
            "lifecycle",
            "A template can be started (the template check is skipped for VM.start).",
            "VM.start on a template answers success and the template runs, where xapi answers "
            'VM_IS_TEMPLATE [vm, "start"].',
        ),
    ),
    (
        "default-template-destroyable",
        Seeded(
            CheckLifted(
                _vm_methods("destroy"),
                "VM_IS_TEMPLATE",
                _without_key("other_config", _default_template),
                restore=False,
            ),
            "templates",
            "lifecycle",
            "VM.destroy removes a default template.",
            'xapi answers VM_IS_TEMPLATE [vm, "destroy"] and keeps it; the faulty server answers '
            "success and the template is gone.",
        ),
    ),
    (
        "snapshot-of-unset",
        Seeded(
            BranchFault(
                _new_vm_edited({"snapshot_of": NULL_REF}),
                _vm_methods("snapshot", "checkpoint", asynchronous=True),
            ),
            "templates",
            "lifecycle",
            "Snapshots do not record their VM: snapshot_of stays OpaqueRef:NULL.",
            "after VM.snapshot(vm, name), xapi's snapshot has snapshot_of vm; the faulty server's "
            "has OpaqueRef:NULL (and vm's snapshots list lacks it).",
        ),
    ),
    (
        "revert-orphan-refused",
        Seeded(
            BranchFault(_orphan_revert_refused, _vm_methods("revert")),
            "templates",
            "lifecycle",
            "VM.revert of a snapshot whose VM was destroyed answers VM_REVERT_FAILED "
            "instead of making the VM again.",
            "after VM.destroy of a snapshot's VM, xapi's VM.revert(snapshot) recreates the VM "
            "(create_vm_from_snapshot) and succeeds; the faulty server answers "
            "VM_REVERT_FAILED [snapshot, vm].",
        ),
    ),
    (
        "checkpoint-without-memory",
        Seeded(
            BranchFault(
                _new_vm_edited(
                    {"power_state": "Halted", "suspend_VDI": NULL_REF}, running_source=True
                ),
                _vm_methods("checkpoint", asynchronous=True),
            ),
            "templates",
            "lifecycle",
            "A checkpoint of a Running VM is a Halted snapshot (its memory image is not kept).",
            "after VM.checkpoint of a Running VM, xapi's snapshot is Suspended with a suspend_VDI; "
            "the faulty server's is Halted with none.",
        ),
    ),
    # -- fields and records
    (
        "stale-record",
        Seeded(
            BranchFault(_success_without_effect, _vm_methods("set_name_label")),
            "fields",
            "fields",
            "VM.set_name_label succeeds but the record keeps its old name.",
            'after VM.set_name_label(vm, "renamed") answers success, VM.get_name_label(vm) answers '
            'the old name where xapi answers "renamed".',
        ),
    ),
    (
        "tags-duplicated",
        Seeded(
            BranchFault(_tag_appended, _vm_methods("add_tags")),
            "fields",
            "fields",
            "VM.add_tags appends a tag that is already there (tags is a set).",
            'after VM.add_tags(vm, "a") twice, xapi\'s tags are ["a"]; the faulty server\'s are '
            '["a", "a"].',
        ),
    ),
    (
        "record-missing-field",
        Seeded(
            BranchFault(
                _record_without("hardware_platform_version"),
                frozenset({"VM.get_record", "VM.get_all_records"}),
            ),
            "fields",
            "fields",
            "VM.get_record and get_all_records leave out the hardware_platform_version field.",
            "the record read after any step lacks hardware_platform_version, which xapi's has.",
        ),
    ),
    # -- the RPC layer
    (
        "param-count-with-session",
        Seeded(
            BranchFault(_rewrite_failure("MESSAGE_PARAMETER_COUNT_MISMATCH", _counting_session)),
            "rpc",
            "rpc",
            "MESSAGE_PARAMETER_COUNT_MISMATCH counts the session among the parameters.",
            'VM.start(session, vm) answers ["VM.start", "4", "2"] where xapi answers '
            '["VM.start", "3", "1"].',
        ),
    ),
    (
        "unknown-method-bare",
        Seeded(
            BranchFault(_rewrite_failure("MESSAGE_METHOD_UNKNOWN", _no_params)),
            "rpc",
            "rpc",
            "MESSAGE_METHOD_UNKNOWN does not name the unknown method.",
            'VM.frobnicate answers MESSAGE_METHOD_UNKNOWN [] where xapi answers ["VM.frobnicate"].',
        ),
    ),
    (
        "type-error-text",
        Seeded(
            BranchFault(_rewrite_failure("INTERNAL_ERROR", _type_error_text)),
            "rpc",
            "rpc",
            "A wrongly typed argument's INTERNAL_ERROR words the type error its own way.",
            'VM.set_is_a_template(vm, "yes") answers INTERNAL_ERROR ["type error: expected bool, '
            "got 'S(yes)'\"] where xapi answers [\"Expected bool, got 'S(yes)'\"].",
        ),
    ),
    # -- roles
    (
        "rbac-ignored",
        Seeded(
            RbacIgnored(),
            "roles",
            "roles",
            "Role-limited sessions may call anything: the permission check is skipped.",
            "a read-only session's VM.start(vm, false, false) answers success where xapi answers "
            'RBAC_PERMISSION_DENIED ["vm.start", "No permission in user session. (…)"].',
        ),
    ),
    (
        "rbac-permission-case",
        Seeded(
            BranchFault(_rewrite_failure("RBAC_PERMISSION_DENIED", _wire_case_permission)),
            "roles",
            "roles",
            "RBAC_PERMISSION_DENIED names the permission as the wire method (VM.start, not vm.start).",
            'a read-only session\'s VM.start answers RBAC_PERMISSION_DENIED ["VM.start", …] where '
            'xapi answers ["vm.start", …].',
        ),
    ),
    (
        "operator-denied-start",
        Seeded(
            BranchFault(_operator_denied, _OPERATOR_DENIED),
            "roles",
            "roles",
            "vm-operator sessions are refused VM.start and the shutdowns (xapi allows them).",
            "a vm-operator session's VM.start answers RBAC_PERMISSION_DENIED where xapi starts the "
            "VM.",
        ),
    ),
    # -- Async tasks
    (
        "lost-async-error",
        Seeded(
            BranchFault(_failed_as_success),
            "async",
            "async",
            "An Async call that fails records its error in a task whose status is success.",
            'after Async.VM.hard_shutdown on a Halted VM, xapi\'s task has status "failure" and '
            'error_info [VM_BAD_POWER_STATE, …]; the faulty server\'s has status "success".',
        ),
    ),
    (
        "async-result-dropped",
        Seeded(
            BranchFault(
                _result_dropped, _async_only(_vm_methods("clone", "copy", "snapshot", "checkpoint"))
            ),
            "async",
            "async",
            "The task of a successful Async clone or snapshot has an empty result.",
            "after Async.VM.clone, xapi's task result is the new VM's ref; the faulty server's is "
            "empty.",
        ),
    ),
    (
        "async-error-code-only",
        Seeded(
            BranchFault(_error_code_only),
            "async",
            "async",
            "A failed Async task's error_info holds the error code without its parameters.",
            "after Async.VM.hard_shutdown on a Halted VM, the task's error_info is "
            '["VM_BAD_POWER_STATE"] where xapi\'s has the VM and the states.',
        ),
    ),
    (
        "async-effect-lost",
        Seeded(
            BranchFault(_effect_lost, _async_only(_BLOCKABLE_LIFECYCLE)),
            "async",
            "async",
            "An Async lifecycle call's task succeeds but the VM is not changed.",
            "after Async.VM.start succeeds, xapi's VM is Running; the faulty server's is still "
            "Halted.",
        ),
    ),
)

_ENTRIES += (
    # -- faults the ci profile once missed (issue 7, item 6)
    (
        "logout-keeps-session",
        Seeded(
            BranchFault(_session_kept, frozenset({"session.logout"})),
            "rpc",
            "rpc",
            "session.logout answers success but the session stays valid.",
            "after session.logout(s), xapi answers SESSION_INVALID [s] to any call with s; the "
            "faulty server answers it.",
        ),
    ),
    (
        "clone-keeps-blocked-ops",
        Seeded(
            BranchFault(_blocked_operations_inherited, _vm_methods("clone", "copy")),
            "operations",
            "operations",
            "A clone or copy keeps its source's blocked_operations (xapi_vm_clone.ml resets them).",
            "VM.clone of a VM with blocked_operations {start: …} makes a VM whose "
            "blocked_operations xapi leaves empty; the faulty server copies them.",
        ),
    ),
    (
        "int-typed",
        Seeded(
            WronglyTyped(Quirks(int_typed=True)),
            "fields",
            "fields",
            "Ints are written as <int> over XML-RPC and as strings over JSON-RPC.",
            "VM.get_VCPUs_max answers <value><int>1</int></value> where xapi sends the bare "
            'string <value>1</value> (over JSON-RPC "1" where xapi sends 1).',
        ),
    ),
    (
        "bool-as-text",
        Seeded(
            WronglyTyped(Quirks(bool_text=True)),
            "fields",
            "fields",
            'Bools are written as the strings "true"/"false".',
            'VM.get_is_a_template answers the string "false" where xapi sends '
            "<boolean>0</boolean> (over JSON-RPC false).",
        ),
    ),
)

FAULTS: Mapping[str, Seeded] = MappingProxyType(dict(_ENTRIES))
"""Every seeded fault by the name ``serve --fault`` and ``ServerConfig.faults`` use."""


def summary(fault: Seeded) -> str:
    """The one line ``serve --list-faults`` prints after the name."""
    return fault.summary


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


# ---- races: faults that show only while calls overlap (issue 12) ------------------------------

RaceQuirk = Literal[
    "unmarked", "fail-fast", "stale-write", "stale-allowed", "cancel-effect", "none"
]
"""How a racy server runs operations in flight (``conformance.server.inflight``): ``unmarked``
checks at the begin but marks nothing and trusts that check at the end; ``fail-fast`` answers a
conflict at once instead of waiting it out; ``stale-write`` reads a map at the call's start and
writes it back at its end; ``stale-allowed`` marks current_operations without recomputing
allowed_operations; ``cancel-effect`` answers TASK_CANCELLED to a cancelled operation in flight
but does its work all the same; ``none`` only keeps operations in flight for ``window``."""


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
)
FAULTS = MappingProxyType({**FAULTS, **dict(_RACED_ENTRIES)})


def races(faults: Iterable[Fault]) -> tuple[Raced, ...]:
    """The race faults among ``faults`` (catalogued or bare)."""
    found = (f.fault if isinstance(f, Seeded) else f for f in faults)
    return tuple(f for f in found if isinstance(f, Raced))
