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
import math
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from conformance.errors import UsageError
from conformance.server.inflight import Flights, new_task_ref
from models.inflight import Blocked, vm_operation
from models.outcome import Failure, Outcome, Success
from models.rpc import ASYNC_PREFIX, REGISTRY
from models.transition import Call
from models.world import Task, World, new_ids

if TYPE_CHECKING:
    from conformance.server.state import ServerState

__all__ = [
    "CLASSES",
    "NO_LATENCY",
    "PROFILES",
    "XAPI_SOURCES",
    "LatencyProfile",
    "SlowCalls",
    "load_profile",
    "message_class",
]

_LIFECYCLE_CLASSES = {
    "start": ("start", "start_on"),
    "clean_shutdown": ("clean_shutdown", "shutdown"),
    "hard_shutdown": ("hard_shutdown",),
    "clean_reboot": ("clean_reboot",),
    "hard_reboot": ("hard_reboot",),
    "suspend": ("suspend",),
    "resume": ("resume", "resume_on"),
    "pause": ("pause", "unpause"),
    "migrate": ("pool_migrate", "migrate_send"),
    "clone": ("clone", "copy", "snapshot", "provision", "snapshot_with_quiesce"),
    "checkpoint": ("checkpoint",),
    "revert": ("revert",),
    "create": ("create",),
    "destroy": ("destroy",),
}
_BY_VM_MESSAGE = {f"VM.{m}": cls for cls, ms in _LIFECYCLE_CLASSES.items() for m in ms}

CLASSES: Mapping[str, str] = MappingProxyType(
    {
        "read": "getters, get_record, get_all*, get_by_*, assert_* and other queries",
        "write": "setters, map and set edits, and every other small database change",
        "login": "session.login_with_password",
        "create": "VM.create",
        "destroy": "VM.destroy",
        "clone": "VM.clone, copy, snapshot, provision (of disk-less VMs)",
        "checkpoint": "VM.checkpoint (a snapshot with the memory image)",
        "revert": "VM.revert",
        "start": "VM.start, start_on",
        "clean_shutdown": "VM.clean_shutdown, shutdown",
        "hard_shutdown": "VM.hard_shutdown",
        "clean_reboot": "VM.clean_reboot",
        "hard_reboot": "VM.hard_reboot",
        "suspend": "VM.suspend",
        "resume": "VM.resume, resume_on",
        "pause": "VM.pause, unpause",
        "migrate": "VM.pool_migrate, migrate_send",
        "failure": "any call refused by xapi's checks (bad power state, blocked, RBAC, ...)",
        "async": "added to every Async. call: its task's creation, updates and completion",
    }
)
"""Message classes a profile gives figures for, and what each covers."""

XAPI: Mapping[str, float] = MappingProxyType(
    {
        "read": 0.004,
        "write": 0.008,
        "login": 0.05,
        "create": 0.03,
        "destroy": 0.05,
        "clone": 0.5,
        "checkpoint": 5.0,
        "revert": 1.0,
        "start": 8.0,
        "clean_shutdown": 15.0,
        "hard_shutdown": 2.0,
        "clean_reboot": 23.0,
        "hard_reboot": 10.0,
        "suspend": 8.0,
        "resume": 6.0,
        "pause": 0.1,
        "migrate": 15.0,
        "failure": 0.005,
        "async": 0.05,
    }
)
"""The ``xapi`` profile: seconds per class (estimates; see XAPI_SOURCES)."""

XAPI_SOURCES: Mapping[str, str] = MappingProxyType(
    {
        "read": "one RPC over TLS on a LAN (stunnel in front of xapi) plus a lookup in xapi's "
        "in-memory database: a few milliseconds; a remote pool adds its round trip (~40 ms "
        "measured in issue 11 for a plausible remote pool: scale or override for that).",
        "write": "a read's round trip plus a database write, which xapi also turns into an event "
        "for every subscriber (Db_cache / Xapi_event): about twice a read.",
        "login": "session.login_with_password authenticates through PAM (a password hash "
        "check, tens of milliseconds) and writes the session record.",
        "create": "VM.create writes the VM record and its VM_metrics record (Xapi_vm.create).",
        "destroy": "VM.destroy removes the VM, its metrics and its (here absent) devices "
        "(Xapi_vm_helpers.destroy).",
        "clone": "Xapi_vm_clone copies the record, VIFs and VBDs and clones each VDI; with no "
        "disks it is database work, a fraction of a second (seconds per disk otherwise).",
        "checkpoint": "a snapshot that also suspends the memory image to a VDI and resumes "
        "(Xapi_vm_snapshot.checkpoint): about a suspend for the suite's 0.5-1 GiB VMs.",
        "revert": "Xapi_vm_snapshot.revert rewrites the record from the snapshot and hard-shuts "
        "down the VM first when it runs: about a second with no disks.",
        "start": "xenopsd's VM_start atomics: create and build the domain, plug devices, start "
        "the device model (qemu) for HVM guests, unpause: several seconds until the call "
        "returns (the guest then still boots).",
        "clean_shutdown": "the guest runs its own shutdown after the PV control request; "
        "xenopsd waits up to domain_shutdown_ack_timeout (60 s) for the ack and xapi up to "
        "domain_shutdown_total_timeout (1200 s): a Linux guest takes 10-20 s.",
        "hard_shutdown": "xenopsd destroys the domain and unplugs its devices: 1-3 s.",
        "clean_reboot": "a clean shutdown and a start (xenopsd's VM_reboot atomics).",
        "hard_reboot": "a hard shutdown and a start.",
        "suspend": "the guest cooperates, then its memory (0.5-1 GiB here) is written to the "
        "suspend VDI at disk speed: 5-10 s.",
        "resume": "the memory image is read back and the domain rebuilt: a little less than a "
        "suspend.",
        "pause": "xenopsd pauses or unpauses the domain: a hypercall and a database write.",
        "migrate": "a live migration copies the memory over the network in rounds: 10-20 s "
        "for 1 GiB on 1 GbE.",
        "failure": "xapi checks power state, blocked and allowed operations and RBAC in "
        "message forwarding on the master before any work (Xapi_vm_lifecycle), so a refused "
        "call costs about a read.",
        "async": "an Async call creates its task, the task's progress and completion are "
        "database writes with events, and the client needs at least one more round trip "
        "to learn the result (TaskHelper).",
    }
)
"""Where each figure of the ``xapi`` profile comes from."""

PROFILES: Mapping[str, Mapping[str, float]] = MappingProxyType({"xapi": XAPI})
"""Built-in profiles by the name ``serve --latency`` takes."""

_READ_PREFIXES = ("get_", "assert_", "compute_", "retrieve_", "query_")


def message_class(method: str) -> str:
    """The class whose figure a successful call of ``method`` costs (``Async.`` prefix ignored)."""
    name = method.removeprefix(ASYNC_PREFIX)
    if name in _BY_VM_MESSAGE:
        return _BY_VM_MESSAGE[name]
    if name == "session.login_with_password":
        return "login"
    if name.partition(".")[2].startswith(_READ_PREFIXES) or name == "system.listMethods":
        return "read"
    return "write"


@dataclass(frozen=True)
class LatencyProfile:
    """Seconds per message class, per-method overrides, and the scale applied to all of them."""

    name: str
    seconds: Mapping[str, float]
    methods: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    scale: float = 1.0

    def delay(self, method: str, *, succeeded: bool) -> float:
        """Seconds a call of ``method`` takes: its class's, or ``failure``'s when refused;
        an ``Async.`` call adds the ``async`` overhead."""
        name = method.removeprefix(ASYNC_PREFIX)
        if not succeeded:
            base = self.seconds["failure"]
        else:
            base = self.methods.get(name, self.seconds[message_class(name)])
        overhead = self.seconds["async"] if method.startswith(ASYNC_PREFIX) else 0.0
        return (base + overhead) * self.scale

    def scaled(self, factor: float) -> LatencyProfile:
        """This profile with every figure multiplied by ``factor`` (0 or more)."""
        if not math.isfinite(factor) or factor < 0:
            raise UsageError(f"--latency-scale must be a number of 0 or more, got {factor}")
        return replace(self, scale=self.scale * factor)

    def uniform(self, method: str) -> bool:
        """Whether ``method`` costs the same refused or not (no need to look ahead)."""
        return self.delay(method, succeeded=True) == self.delay(method, succeeded=False)


NO_LATENCY = LatencyProfile("none", MappingProxyType(dict.fromkeys(CLASSES, 0.0)))
"""Every call at once: what a server with a race fault and no ``--latency`` runs with (the
fault's window then decides how long operations stay in flight)."""


def load_profile(spec: str) -> LatencyProfile:
    """A built-in profile by name, or a TOML file::

    base = "xapi"                 # optional: the profile the file amends (default xapi)
    [classes]                     # seconds per class (see CLASSES); others keep base's
    start = 30.0
    [methods]                     # seconds for single messages, overriding their class
    "VM.clean_shutdown" = 45.0
    """
    if spec in PROFILES:
        return LatencyProfile(spec, PROFILES[spec])
    path = Path(spec)
    if not path.is_file():
        raise UsageError(
            f"--latency {spec!r} is neither a built-in profile ({', '.join(PROFILES)}) "
            "nor a TOML file"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read the latency profile {spec}: {error}") from None
    return _from_toml(spec, data)


def _from_toml(spec: str, data: Mapping[str, object]) -> LatencyProfile:
    unknown = set(data) - {"base", "classes", "methods"}
    if unknown:
        raise UsageError(
            f"{spec}: unknown key {sorted(unknown)[0]!r}; a latency profile has base, "
            "[classes] and [methods]"
        )
    base = data.get("base", "xapi")
    if not isinstance(base, str) or base not in PROFILES:
        raise UsageError(f"{spec}: base must be one of {', '.join(PROFILES)}, got {base!r}")
    classes = _seconds_table(spec, "classes", data.get("classes", {}), CLASSES)
    methods = _seconds_table(spec, "methods", data.get("methods", {}), REGISTRY)
    seconds = MappingProxyType({**PROFILES[base], **classes})
    return LatencyProfile(spec, seconds, MappingProxyType(methods))


def _seconds_table(
    spec: str, table: str, raw: object, known: Mapping[str, object]
) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{spec}: [{table}] must be a table of name = seconds")
    seconds: dict[str, float] = {}
    for name, value in raw.items():
        if name not in known:
            hint = "see CLASSES in conformance/server/latency.py" if table == "classes" else ""
            raise UsageError(f"{spec}: [{table}] has no {name!r} {hint}".rstrip())
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise UsageError(f"{spec}: [{table}] {name} must be seconds (0 or more)")
        seconds[name] = float(value)
    return seconds


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
    ) -> None:
        self.profile = profile
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
        succeeded = self.profile.uniform(method) or _succeeds(state, method, params)
        self._sleep(self.profile.delay(method, succeeded=succeeded))
        outcome = state.call(method, params)
        if method == "task.cancel" and isinstance(outcome, Success) and len(params) > 1:
            flights.cancel(str(params[1]))
        return outcome

    def flights(self, state: ServerState) -> Flights:
        """The operations in flight on ``state`` (one ``Flights`` per server state)."""
        with self._lock:
            if self._flights is None or self._flights.state is not state:
                self._flights = Flights(state)
            return self._flights

    def _pause(self, seconds: float, cancelled: threading.Event) -> None:
        """Spend an operation's time: on the real clock until done or cancelled, else through
        the injected ``sleep`` (tests with fake time)."""
        if self._sleep is time.sleep:
            cancelled.wait(seconds)
        else:
            self._sleep(seconds)

    def _async(self, state: ServerState, method: str, params: tuple[object, ...]) -> Outcome:
        branch = state.transition(state.world, Call(method, params, _now()))[0]
        outcome = branch.outcome
        if not isinstance(outcome, Success):  # refused before a task exists
            self._sleep(self.profile.delay(method.removeprefix(ASYNC_PREFIX), succeeded=False))
            return state.call(method, params)
        task = branch.world.tasks[str(outcome.value)]
        seconds = self.profile.delay(method, succeeded=task.status == "success")
        flights = self.flights(state)
        name = method.removeprefix(ASYNC_PREFIX)
        conflict = task.error_info[:1] == ("OTHER_OPERATION_IN_PROGRESS",)
        flying = flights.handles(name) and (task.status == "success" or conflict)
        if flying:
            seconds = flights.seconds(method, seconds)
        if seconds <= 0:
            return state.call(method, params)
        ref = self._start_task(state, task, seconds)
        if flying:
            self._fly(state, ref, Call(method, params, _now()), seconds)
        else:
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
            )

    def _after(
        self, seconds: float, cancelled: threading.Event, action: Callable[[], None]
    ) -> None:
        """Run ``action`` once ``seconds`` have passed or the task is cancelled (on the real
        clock; with injected time, when the schedule says)."""
        if self._sleep is not time.sleep:
            self._schedule(seconds, action)
            return

        def run() -> None:
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


def _succeeds(state: ServerState, method: str, params: tuple[object, ...]) -> bool:
    """Whether the call would succeed now (looked ahead, not applied)."""
    return isinstance(
        state.transition(state.world, Call(method, params, _now()))[0].outcome, Success
    )


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
    return _with_task(after, replace(done, progress=1.0))


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
    return _with_task(world, replace(done, progress=1.0))


def _progressed(world: World, progress: Mapping[str, float]) -> World:
    tasks = dict(world.tasks)
    changed = False
    for ref, value in progress.items():
        task = tasks.get(ref)
        if task is not None and task.status == "pending" and task.progress != value:
            tasks[ref] = replace(task, progress=value)
            changed = True
    return replace(world, tasks=MappingProxyType(tasks)) if changed else world
