"""Simulated xapi latency: ``serve --latency PROFILE`` makes each call take the time it takes on a pool.

A profile gives seconds per message class (getters, setters, create, clone, start, ...). A call
refused by its checks costs the ``failure`` figure, as xapi refuses before doing any work. A
synchronous call answers after its delay; its effect lands when it answers. An ``Async.`` call
answers at once with a task that stays ``pending`` (its ``progress`` rising from 0 to 1) for
the call's delay plus the ``async`` overhead, then finishes with the call's effect and outcome,
as xapi's tasks do.

The built-in profile ``xapi`` estimates a LAN pool of recent XCP-ng / XenServer hosts driving
the small disk-less VMs the suite creates; ``XAPI_SOURCES`` says where each figure comes from.
A TOML file may give its own figures (see ``load_profile``).
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from conformance.server.inflight import Flights, new_task_ref
from conformance.server.overlap import Overlap
from conformance.server.profiles import LatencyProfile
from models.inflight import Blocked, vm_operation
from models.outcome import Failure, Outcome, Success
from models.rpc import ASYNC_PREFIX
from models.transition import Call
from models.world import Task, World, new_ids

if TYPE_CHECKING:
    from conformance.server.state import ServerState

__all__ = ["SlowCalls"]

Sleep = Callable[[float], None]
Schedule = Callable[[float, Callable[[], None]], None]
"""``schedule(seconds, action)``: run ``action`` once, ``seconds`` from now, on another thread."""


def _timer(seconds: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()


Spawn = Callable[[Callable[[], None]], None]
"""``spawn(action)``: run ``action`` now on another thread."""


def _thread(action: Callable[[], None]) -> None:
    threading.Thread(target=action, daemon=True).start()


@dataclass
class _InFlight:
    """A pending task: when it started and how long it takes."""

    started: float
    seconds: float


class SlowCalls:
    """The server's hook: delays calls and keeps ``Async.`` tasks pending as a profile says."""

    def __init__(
        self,
        profile: LatencyProfile,
        sleep: Sleep = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule = _timer,
        spawn: Spawn = _thread,
        overlap: Overlap | None = None,
    ) -> None:
        self.profile = profile
        self.overlap = overlap
        self._sleep = sleep
        self._clock = clock
        self._schedule = schedule
        self._lock = threading.Lock()
        self._in_flight: dict[str, _InFlight] = {}
        self._flights: Flights | None = None
        self._spawn = spawn

    def call(self, state: ServerState, method: str, params: tuple[object, ...]) -> Outcome:
        """Answer ``method`` after its delay; an Async call answers a pending task at once.

        A VM operation is in flight for its delay (``conformance.server.inflight``)."""
        self._advance(state)
        if method.startswith(ASYNC_PREFIX):
            return self._async(state, method, params)
        flights = self.flights(state)
        seconds = flights.seconds(method, self.profile.delay(method, succeeded=True))
        if flights.handles(method) and seconds > 0:
            refused = self.profile.delay(method, succeeded=False)
            return flights.run(method, params, new_task_ref(), seconds, self._pause, refused)
        ahead = None if self.profile.uniform(method) else state.look_ahead(method, params)
        succeeded = ahead is None or isinstance(ahead.branch.outcome, Success)
        self._sleep(self.profile.delay(method, succeeded=succeeded))
        outcome = state.call(method, params, ahead)
        if method == "task.cancel" and isinstance(outcome, Success) and len(params) > 1:
            flights.cancel(str(params[1]))
        flights.arrived(new_task_ref(), method)
        return outcome

    def flights(self, state: ServerState) -> Flights:
        """The operations in flight on ``state`` (one ``Flights`` per server state)."""
        with self._lock:
            if self._flights is None or self._flights.state is not state:
                self._flights = Flights(state, self.overlap)
            return self._flights

    def _pause(self, seconds: float, cancelled: threading.Event) -> None:
        """Spend an operation's time: on the real clock until done or cancelled, else through
        the injected ``sleep`` (tests with fake time)."""
        if self._sleep is time.sleep:
            cancelled.wait(seconds)
        else:
            self._sleep(seconds)

    def _async(self, state: ServerState, method: str, params: tuple[object, ...]) -> Outcome:
        ahead = state.look_ahead(method, params)
        branch, outcome = ahead.branch, ahead.branch.outcome
        flights = self.flights(state)
        if not isinstance(outcome, Success):  # refused before a task exists
            self._sleep(self.profile.delay(method.removeprefix(ASYNC_PREFIX), succeeded=False))
            flights.arrived(new_task_ref(), method)
            return state.call(method, params, ahead)
        task = branch.world.tasks[str(outcome.value)]
        seconds = self.profile.delay(method, succeeded=task.status == "success")
        name = method.removeprefix(ASYNC_PREFIX)
        conflict = task.error_info[:1] == ("OTHER_OPERATION_IN_PROGRESS",)
        flying = flights.handles(name) and (task.status == "success" or conflict)
        if flying:
            seconds = flights.seconds(method, seconds)
        if seconds <= 0:
            flights.arrived(new_task_ref(), method)
            return state.call(method, params, ahead)
        ref = self._start_task(state, task, seconds)
        if flying:
            self._fly(state, ref, Call(method, params, _now()), seconds)
        else:
            flights.arrived(ref, method)
            self._schedule(seconds, lambda: self._finish(state, ref, method, params))
        return Success(ref)

    def _fly(self, state: ServerState, ref: str, call: Call, seconds: float) -> None:
        """An Async VM operation in flight as its task: begun now (or, when a conflict is in
        flight, on a thread of its own that waits it out), ended ``seconds`` later."""
        flights = self.flights(state)
        if vm_operation(call.method) is None:
            self._spawn(
                lambda: self._ended(
                    state, ref, flights.run(call.method, call.args, ref, seconds, self._pause)
                )
            )
            return
        flights.register(ref)
        started = flights.attempt(call, ref)
        if isinstance(started, Blocked):
            self._spawn(
                lambda: self._ended(
                    state, ref, flights.run(call.method, call.args, ref, seconds, self._pause)
                )
            )
        elif isinstance(started, Failure | Success):
            self._schedule(seconds, lambda: self._ended(state, ref, started))
        else:
            self._after(
                seconds,
                flights.register(ref),
                lambda: self._ended(state, ref, flights.end(call, ref, started)),
                flights.hold,
            )

    def _after(
        self,
        seconds: float,
        cancelled: threading.Event,
        action: Callable[[], None],
        hold: Callable[[threading.Event], None],
    ) -> None:
        """Run ``action`` once held (``hold``) and ``seconds`` have passed, or the task is
        cancelled (on the real clock; with injected time, when the schedule says)."""
        if self._sleep is not time.sleep:
            self._schedule(seconds, action)
            return

        def run() -> None:
            hold(cancelled)
            cancelled.wait(seconds)
            action()

        self._spawn(run)

    def _ended(self, state: ServerState, ref: str, outcome: Outcome) -> None:
        """The Async call behind task ``ref`` has ended with ``outcome``."""
        self.flights(state).unregister(ref)
        with self._lock:
            self._in_flight.pop(ref, None)
        state.update(lambda world: _task_ended(world, ref, outcome))

    def _start_task(self, state: ServerState, model: Task, seconds: float) -> str:
        refs: list[str] = []

        def add_pending(world: World) -> World:
            ref, uuid, world = new_ids(world)
            refs.append(ref)
            pending = replace(model, ref=ref, uuid=uuid, status="pending", result="", progress=0.0)
            return _with_task(world, pending)

        state.update(add_pending)
        with self._lock:
            self._in_flight[refs[0]] = _InFlight(self._clock(), seconds)
        return refs[0]

    def _finish(
        self, state: ServerState, ref: str, method: str, params: tuple[object, ...]
    ) -> None:
        with self._lock:
            self._in_flight.pop(ref, None)
        state.update(lambda world: _finished(state, world, ref, method, params))

    def _advance(self, state: ServerState) -> None:
        """Refresh the progress of pending tasks (a database write, as on xapi)."""
        with self._lock:
            if not self._in_flight:
                return
            progress = {
                ref: round(min((self._clock() - f.started) / f.seconds, 0.99), 2)
                for ref, f in self._in_flight.items()
            }
        state.update(lambda world: _progressed(world, progress))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _with_task(world: World, task: Task) -> World:
    return replace(world, tasks=MappingProxyType({**world.tasks, task.ref: task}))


def _without_task(world: World, ref: str) -> World:
    return replace(
        world, tasks=MappingProxyType({k: t for k, t in world.tasks.items() if k != ref})
    )


def _finished(
    state: ServerState, world: World, ref: str, method: str, params: tuple[object, ...]
) -> World:
    """The world once the Async call behind pending task ``ref`` has run to its end."""
    branch = state.transition(world, Call(method, params, _now()))[0]
    pending = world.tasks.get(ref)
    outcome: Outcome = branch.outcome
    if isinstance(outcome, Failure):  # e.g. the session was logged out meanwhile
        done = (
            replace(pending, status="failure", error_info=tuple(outcome.description))
            if pending
            else None
        )
        after = branch.world
    else:
        model = branch.world.tasks[str(outcome.value)]
        after = _without_task(branch.world, model.ref)
        done = (
            replace(pending, status=model.status, result=model.result, error_info=model.error_info)
            if pending
            else None
        )
    if done is None or ref not in after.tasks:  # destroyed while it ran: the effect stays
        return after
    return _with_task(after, replace(done, progress=1.0, finished=_now()))


def _task_ended(world: World, ref: str, outcome: Outcome) -> World:
    """Task ``ref`` (if it still exists) with the outcome of its call."""
    pending = world.tasks.get(ref)
    if pending is None:
        return world
    if isinstance(outcome, Failure):
        status = "cancelled" if outcome.code == "TASK_CANCELLED" else "failure"
        done = replace(pending, status=status, error_info=tuple(outcome.description))
    else:
        done = replace(pending, status="success", result=outcome.value)
    return _with_task(world, replace(done, progress=1.0, finished=_now()))


def _progressed(world: World, progress: Mapping[str, float]) -> World:
    tasks = dict(world.tasks)
    changed = False
    for ref, value in progress.items():
        task = tasks.get(ref)
        if task is not None and task.status == "pending" and task.progress != value:
            tasks[ref] = replace(task, progress=value)
            changed = True
    return replace(world, tasks=MappingProxyType(tasks)) if changed else world
