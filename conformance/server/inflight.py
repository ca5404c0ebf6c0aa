"""Operations in flight on the embedded server: begin, the work's time, end (models/inflight.py).

With ``--latency`` (or a race fault's window) a VM operation is in flight for its delay: its
begin marks ``current_operations`` and recomputes ``allowed_operations`` (both visible to
other clients and in events), a conflicting call waits until the world changes and checks
again (xapi's ``retry_with_global_lock``), hard_shutdown and hard_reboot cancel what they
cancel and wait for it, ``task.cancel`` cancels an Async operation (one in flight stops at
once and ends with TASK_CANCELLED and no effect where the model lets it stop; one waiting out a
conflict ends with TASK_CANCELLED), and the end applies the effect and removes the mark. Race
faults (``faults.Raced``) bend these steps.
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from conformance.faults import RACE_WINDOW, RaceQuirk, races
from conformance.server.overlap import Overlap, counted
from models.checks import update_vm
from models.inflight import (
    Began,
    Blocked,
    Start,
    Transition,
    begin,
    cancelled_before_begin,
    cancelled_by,
    finish,
    in_flight,
    stopped,
    vm_operation,
)
from models.outcome import Encoded, Failure, Outcome, Success, Value
from models.rpc import ASYNC_PREFIX
from models.transition import Branch, Call, Result
from models.world import World

if TYPE_CHECKING:
    from conformance.server.state import ServerState

__all__ = ["Flights", "Pause", "new_task_ref"]

WAIT_LIMIT_S = 600.0
"""How long a conflicting call waits before it answers OTHER_OPERATION_IN_PROGRESS (xapi's
``Policy.standard`` waits up to two hours)."""
RECHECK_S = 0.5


Pause = Callable[[float, threading.Event], None]
"""``pause(seconds, cancelled)``: spend an operation's time; may return early once set."""


def _wait(seconds: float, cancelled: threading.Event) -> None:
    cancelled.wait(seconds)


def new_task_ref() -> str:
    """A task ref for a synchronous call's own task (xapi makes one for every call)."""
    return f"OpaqueRef:{uuid.uuid4()}"


def _vm_arg(call: Call) -> str:
    return str(call.args[1]) if len(call.args) > 1 else ""


class Flights:
    """Runs the calls that take time on a ``ServerState``: operations in flight, racy edits."""

    def __init__(self, state: ServerState, overlap: Overlap | None = None) -> None:
        self.state = state
        self.overlap = overlap
        raced = races(state.faults)
        self._quirks = [(r.quirk, r.methods, r.window) for r in raced]
        self.window = max((min(r.window, RACE_WINDOW) for r in raced), default=0.0)
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def quirk(self, method: str) -> RaceQuirk | None:
        """The race fault acting on ``method`` (``Async.`` prefix ignored), if any."""
        name = method.removeprefix(ASYNC_PREFIX)
        return next((q for q, methods, _ in self._quirks if name in methods), None)

    def handles(self, method: str) -> bool:
        """Whether ``method`` is run in steps here rather than atomically."""
        return vm_operation(method) is not None or self.quirk(method) == "stale-write"

    def transition(self, call: Call) -> Transition:
        """The server's transition for ``call``; an ``Async.`` call's answer read from its task,
        so that seeded faults of Async tasks apply to operations in flight too."""
        if call.method.startswith(ASYNC_PREFIX):
            return _through_task(self.state.transition)
        return self.state.transition

    def seconds(self, method: str, delay: float) -> float:
        """The time ``method`` stays in flight: its delay, at least a race fault's window (the
        window of the fault acting on it, else the common one of operations in flight)."""
        name = method.removeprefix(ASYNC_PREFIX)
        if not self.handles(name):
            return delay
        is_async = name != method
        own = (
            w
            for quirk, methods, w in self._quirks
            if name in methods and (is_async or quirk != "cancel-effect")
        )  # only an Async call has a task to cancel: a sync one keeps the common window
        return max(delay, next(own, self.window))

    def cancel(self, task: str) -> bool:
        """Ask the operation in flight as ``task`` to stop; whether there was one."""
        with self._lock:
            event = self._cancels.get(task)
        if event is not None:
            event.set()
            self.state.wake()  # a call waiting out a conflict looks again
            if self.overlap is not None:
                self.overlap.cancelled()
        return event is not None

    def arrived(self, key: str, method: str) -> None:
        """The call ``key`` of ``method`` has been checked (for an armed ``Overlap``)."""
        if self.overlap is not None and counted(method):
            self.overlap.arrive(key)

    def hold(self, cancelled: threading.Event) -> None:
        """Wait at an armed ``Overlap`` until the race's calls have all been checked."""
        if self.overlap is not None:
            self.overlap.hold(cancelled)

    # ---- one call -----------------------------------------------------------------------

    def run(
        self,
        method: str,
        params: tuple[object, ...],
        task: str,
        seconds: float,
        pause: Pause = _wait,
        refused_seconds: float = 0.0,
    ) -> Outcome:
        """Answer ``method`` (sync name) as a call that takes ``seconds``, in flight as ``task``
        (``refused_seconds`` when its checks refuse it); ``pause(seconds, cancelled)`` spends
        the time (it may end early once cancelled)."""
        call = Call(method, params, _now())
        if vm_operation(method) is None:
            return self._stale_write(call, task, seconds, pause)
        event = self.register(task)
        try:
            started = self._begun(call, task)
            self.hold(event)
            if isinstance(started, Failure | Success):
                pause(refused_seconds, event)
                return started
            pause(seconds, event)
            return self.end(call, task, started)
        finally:
            self.unregister(task)

    def register(self, task: str) -> threading.Event:
        """The event that cancels ``task`` (``cancel``), until ``unregister`` (registering
        again keeps the event: a cancellation already asked for stays asked)."""
        with self._lock:
            return self._cancels.setdefault(task, threading.Event())

    def unregister(self, task: str) -> None:
        """``task`` is no longer in flight."""
        with self._lock:
            self._cancels.pop(task, None)

    def attempt(self, call: Call, task: str) -> Outcome | Blocked | frozenset[str]:
        """One try at the begin of ``call``: its answer if it ends there, ``Blocked`` if a
        conflict is in flight (xapi waits), else the tasks it cancels (they are told)."""
        (start, victims), _version = self.state.step(lambda w: self._begin(w, call, task))
        self.arrived(task, call.method)
        if isinstance(start, Branch):
            return start.outcome
        if isinstance(start, Blocked):
            return start.failure if self.quirk(call.method) == "fail-fast" else start
        for victim in victims:
            self.cancel(victim)
        return victims

    def end(self, call: Call, task: str, victims: frozenset[str]) -> Outcome:
        """The end of ``call`` once the tasks it cancelled have ended: its effect, unmarked."""
        self._wait_for(_vm_arg(call), victims)
        cancelled = self._is_cancelled(task)
        outcome, _version = self.state.step(lambda w: self._end(w, call, task, cancelled))
        return outcome

    def _is_cancelled(self, task: str) -> bool:
        with self._lock:
            event = self._cancels.get(task)
        return event is not None and event.is_set()

    def _begun(self, call: Call, task: str) -> Outcome | frozenset[str]:
        """The call's answer if it ends at its begin, else the tasks its begin cancels."""
        deadline = time.monotonic() + WAIT_LIMIT_S
        while True:
            version = self.state.version
            if self._is_cancelled(task):  # helpers.ml retry: is_cancelling before each try
                return cancelled_before_begin(self.state.world, task)[0].outcome
            started = self.attempt(call, task)
            if not isinstance(started, Blocked):
                return started
            if time.monotonic() > deadline:
                return started.failure
            self.state.wait_after(version, RECHECK_S)

    def _begin(
        self, world: World, call: Call, task: str
    ) -> tuple[World, tuple[Start, frozenset[str]]]:
        start = begin(world, call, task, self.transition(call))[0]
        if isinstance(start, Blocked):
            return world, (start, frozenset())
        if isinstance(start, Branch):
            return start.world, (start, frozenset())
        return self._marked(world, start, call), (start, self._victims(start.world, call, task))

    def _victims(self, world: World, call: Call, task: str) -> frozenset[str]:
        """The tasks in flight that ``call``'s begin cancels (all of them, on the VM, under a
        ``cancels-all`` fault)."""
        if self.quirk(call.method) != "cancels-all":
            return cancelled_by(world, call, task)
        return frozenset(t for t in in_flight(world, _vm_arg(call)) if t != task)

    def _marked(self, world: World, start: Began, call: Call) -> World:
        quirk = self.quirk(call.method)
        if quirk == "unmarked":
            return world
        if quirk == "stale-allowed":
            ref = _vm_arg(call)
            marked = dict(in_flight(start.world, ref))
            return update_vm(world, ref, {"current_operations": marked}, recompute=False)
        return start.world

    def _wait_for(self, ref: str, tasks: frozenset[str]) -> None:
        """Block until none of ``tasks`` is in flight on VM ``ref`` (xapi's wait_for_tasks)."""
        while True:
            version = self._busy_version(ref, tasks)
            if version is None:
                return
            self.state.wait_after(version, RECHECK_S)

    def _busy_version(self, ref: str, tasks: frozenset[str]) -> int | None:
        def look(world: World) -> tuple[World, bool]:
            return world, bool(tasks & set(in_flight(world, ref)))

        busy, version = self.state.step(look)
        return version if busy else None

    def _end(self, world: World, call: Call, task: str, cancelled: bool) -> tuple[World, Outcome]:
        ends = finish(world, call, task, cancelled=cancelled, transition=self.transition(call))
        chosen = (stopped(ends) if cancelled else None) or ends[0]
        quirk = self.quirk(call.method)
        if quirk == "unmarked" and isinstance(chosen.outcome, Failure):
            return world, Success("")  # the faulty server trusts the check of its begin
        if quirk == "cancel-effect" and chosen is not ends[0]:
            return ends[0].world, chosen.outcome  # stopped, it says, but the work is done
        return chosen.world, chosen.outcome

    def _stale_write(self, call: Call, task: str, seconds: float, pause: Pause) -> Outcome:
        """A map edit that reads at its start and writes the whole field back at its end."""
        before = self.state.world
        branch = self.transition(call)(before, call)[0]
        self.arrived(task, call.method)
        never = threading.Event()
        self.hold(never)
        pause(seconds, never)
        ref = _vm_arg(call)
        after = branch.world.vms.get(ref)
        if after is None or ref not in before.vms:
            return branch.outcome
        changed = {k: v for k, v in after.items() if before.vms[ref].get(k) != v}
        self.state.update(lambda w: _overwritten(w, ref, changed))
        return branch.outcome


def _through_task(transition: Transition) -> Transition:
    def through(world: World, call: Call) -> Result:
        return tuple(_task_outcome(b) for b in transition(world, call))

    return through


def _task_outcome(branch: Branch) -> Branch:
    """An Async call's branch as its task ends it: the task's outcome, the task left out."""
    outcome = branch.outcome
    task = branch.world.tasks.get(str(outcome.value)) if isinstance(outcome, Success) else None
    if task is None:
        return branch
    tasks = MappingProxyType({k: t for k, t in branch.world.tasks.items() if k != task.ref})
    world = replace(branch.world, tasks=tasks)
    if task.status != "success":
        return Branch(Failure(task.error_info[0], task.error_info[1:]), world)
    result = task.result.value if isinstance(task.result, Encoded) else task.result
    return Branch(Success(result), world)


def _overwritten(world: World, ref: str, fields: Mapping[str, Value]) -> World:
    return update_vm(world, ref, fields) if ref in world.vms and fields else world


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
