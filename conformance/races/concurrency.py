"""The concurrency area: sessions racing on the same VMs, judged by linearizability.

A race is two or three lanes, one per session, each a short list of calls (lifecycle operations,
their Async twins, other_config and tags edits on the same or different keys, setters, reads of
allowed_operations, assert_operation_valid, task.cancel of another lane's Async call). The lanes start together on threads, each with its
own connection; every call's send time, answer time and answer is recorded. Then the VMs'
records are read, and ``conformance.races.linearize`` looks for an order of the calls (each VM
operation a begin and an end, as xapi runs them) that respects real time, that the model accepts
with the answers the target gave, and that ends in the records the target shows. None is a
divergence whose message lists the history; the example's model then follows the order found.

``replay_race`` re-runs a shrunk race up to N times against a target and counts how often the
race shows: a reproducer of a race is a script that calls it.
"""

from __future__ import annotations

import datetime
import functools
import json
import pprint
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from hypothesis import strategies as st

from conformance.engine.answers import Answer, send, typed
from conformance.engine.harness import Harness
from conformance.judge.compare import AnswerRules, Mismatch, outcome_mismatch
from conformance.judge.divergence import Desynced, DivergenceInfo, TimedCall
from conformance.judge.events import Malformed, read_batch
from conformance.races.linearize import (
    CREATORS,
    Created,
    Explained,
    FinalCheck,
    Observed,
    Undecided,
    Unexplained,
    linearize,
    renamed,
    task_name,
)
from conformance.reproduce.reproducer import LOGIN, LoggedCall
from conformance.targets import Target, open_target
from conformance.targets.inprocess import InProcessTarget
from models.outcome import Failure, Outcome, Success, Value
from models.rpc import apply
from models.schema import XType
from models.transition import Call
from models.world import NULL_REF, World
from reports.findings import LINEARIZABLE, TYPED_AS_XAPI

__all__ = [
    "HARD_OPERATIONS",
    "RACE_OPERATIONS",
    "STATS",
    "VM_SLOTS",
    "Race",
    "RaceCall",
    "RaceStats",
    "cancelled_races",
    "hard_races",
    "race_calls",
    "races",
    "run_race",
    "same_call_races",
    "task_of",
    "watched_races",
]

RACE_OPERATIONS = (
    "start",
    "clean_shutdown",
    "hard_shutdown",
    "suspend",
    "resume",
    "pause",
    "unpause",
    "hard_reboot",
    "clean_reboot",
    "destroy",
    "pool_migrate",
)
"""VM operations the lanes race with (each also as its Async twin); pool_migrate goes to the
host the VM is not on (``OTHER_HOST``)."""
OTHER_HOST = "(the other host)"
"""A lane argument: a host the VM is not resident on when the race starts (``Race.on``)."""
MEMORY = {"race-a": (268435456, 536870912), "race-b": (402653184, 536870912)}
"""Two dynamic (or static) memory ranges, one per map key, within the suite VMs' bounds."""
FREQUENT = ("start", "destroy", "clean_shutdown")
"""Drawn twice as often: the races that double-start, double-destroy and cancel."""
MAP_KEYS = ("race-a", "race-b")
"""Two keys: two lanes edit the same key or different ones."""
PAUSE = "(pause)"
"""A lane step that sends nothing: the lane waits ``PAUSE_S`` (so that its next call lands
while another lane's operation is in flight, not before it begins)."""
PAUSE_S = 0.01
EVENT_READ = "event.from"
"""A lane call ``(vm,)``: ``event.from(["vm/<vm>"], "", 0)``, whose one event (an add, from a
token of "") carries the VM's record now: judged as a VM.get_record at that moment, so an
operation in flight must show in the snapshot's current_operations."""
EVENT_WAIT = "(wait for the VM's event)"
"""A lane step ``(vm,)`` judged by nothing: the lane waits, with event.from from a token taken
before the race, until the VM changes (at most ``EVENT_WAIT_S``), so its next call lands once
another lane's operation has visibly begun (its begin marks current_operations), whatever the
machine's load."""
EVENT_WAIT_S = 5.0
"""The longest a lane waits for the VM's change (one that never comes costs this, once)."""
UNSENT = (PAUSE, EVENT_WAIT)
"""Lane steps that are not calls of the race: neither judged nor counted."""
ASSERTED = ("start", "clean_shutdown", "hard_shutdown", "destroy")
STOPPABLE = tuple(op for op in RACE_OPERATIONS if op != "destroy")
"""The race operations a cancel may stop (xenopsd's). A cancel race makes one of these, not a
destroy, which always finishes (models.inflight): an ignored cancel of it shows nothing."""
_VM_RECORD = XType("record", name="VM")


@dataclass(frozen=True)
class RaceCall:
    """One call of a lane, in model terms, the session left out."""

    method: str
    args: tuple[Value, ...]
    is_async: bool = False

    @property
    def wire_method(self) -> str:
        """The method as sent (``Async.`` prefixed for Async calls)."""
        return f"Async.{self.method}" if self.is_async else self.method


@dataclass(frozen=True)
class Race:
    """Two or three lanes of calls that start together, one session each."""

    lanes: tuple[tuple[RaceCall, ...], ...]

    def on(self, vms: Sequence[str], world: World) -> Race:
        """This race with its VM slots (``VM_SLOTS``) replaced by ``vms`` (cycled), and each
        "an allowed operation" (``ALLOWED_OP``, ``ALLOWED_ASSERT``) the k-th of those the VM
        allows in ``world`` (what is drawn stays the same whatever state the VM is in)."""

        def placed(value: Value) -> Value:
            if isinstance(value, str) and value in VM_SLOTS:
                return vms[VM_SLOTS.index(value) % len(vms)]
            return value

        def resolved(call: RaceCall) -> RaceCall:
            args = tuple(map(placed, call.args))
            if call.method not in (ALLOWED_ASSERT, *_ALLOWED_AMONG):
                return RaceCall(call.method, args, call.is_async)
            vm, k, paused = str(args[0]), int(args[1]), args[2] is True  # type: ignore[arg-type]
            if call.method == ALLOWED_ASSERT:
                op = _allowed(world, vm, ASSERTED, k)
                return RaceCall("VM.assert_operation_valid", (vm, op))
            ops = _ALLOWED_AMONG[call.method]
            return _operation(vm, _allowed(world, vm, ops, k), call.is_async, paused)

        def hosted(call: RaceCall) -> RaceCall:
            if OTHER_HOST not in call.args:
                return call
            host = _other_host(world, str(call.args[0]))
            args = tuple(host if a == OTHER_HOST else a for a in call.args)
            return RaceCall(call.method, args, call.is_async)

        return Race(tuple(tuple(hosted(resolved(c)) for c in lane) for lane in self.lanes))

    def calls(self) -> list[tuple[int, RaceCall]]:
        """Every call with its lane, lane by lane (the history's indices follow this order)."""
        return [(lane, call) for lane, calls in enumerate(self.lanes) for call in calls]


@dataclass
class RaceStats:
    """What the area has checked in this process (for the benchmark and the note)."""

    races: int = 0
    calls: int = 0
    states: int = 0
    search_seconds: float = 0.0
    largest: int = 0
    largest_seconds: float = 0.0
    undecided: int = 0

    def add(self, calls: int, states: int, seconds: float) -> None:
        """Count one history of ``calls`` calls checked in ``seconds``."""
        self.races += 1
        self.calls += calls
        self.states += states
        self.search_seconds += seconds
        if calls > self.largest or (calls == self.largest and seconds > self.largest_seconds):
            self.largest, self.largest_seconds = calls, seconds


STATS = RaceStats()


# ---- what the lanes call ------------------------------------------------------------------------


VM_SLOTS = ("vm#0", "vm#1")
"""Placeholders for the example's VMs in drawn races (``Race.on`` puts the refs in): what is
drawn must not depend on what an earlier race did to the VMs (Hypothesis replays draws)."""


def race_calls() -> st.SearchStrategy[RaceCall]:
    """One lane call on a VM slot: an operation (sync or Async), an edit, a read; less often
    a clone, copy, snapshot or checkpoint, or a memory or VCPU setter."""
    vm = st.sampled_from(VM_SLOTS)
    key = st.sampled_from(MAP_KEYS)
    ops = st.sampled_from(RACE_OPERATIONS) | st.sampled_from(FREQUENT)
    operation = st.builds(_operation, vm, ops, st.booleans(), st.booleans())
    creator = st.builds(_creator, vm, st.sampled_from(COPIES), st.booleans())
    edits = st.one_of(
        st.builds(lambda v, k: RaceCall("VM.add_to_other_config", (v, k, "x")), vm, key),
        st.builds(lambda v, k: RaceCall("VM.remove_from_other_config", (v, k)), vm, key),
        st.builds(lambda v, k: RaceCall("VM.add_tags", (v, k)), vm, key),
        st.builds(lambda v, k: RaceCall("VM.remove_tags", (v, k)), vm, key),
        st.builds(
            lambda v, k: RaceCall("VM.set_name_label", (v, f"xapi-conformance {k}")), vm, key
        ),
    )
    setters = st.one_of(
        st.builds(_memory_setter, vm, key, st.sampled_from(MEMORY_SETTERS)),
        st.builds(_vcpus_setter, vm, key, st.sampled_from(sorted(VCPUS_SETTERS))),
    )
    reads = st.one_of(
        st.builds(lambda v: RaceCall("VM.get_allowed_operations", (v,)), vm),
        st.builds(lambda v: RaceCall("VM.get_current_operations", (v,)), vm),
        st.builds(lambda v: RaceCall("VM.get_record", (v,)), vm),
        st.builds(lambda v: RaceCall("VM.get_power_state", (v,)), vm),
        st.builds(
            lambda v, op: RaceCall("VM.assert_operation_valid", (v, op)),
            vm,
            st.sampled_from(ASSERTED),
        ),
    )
    pause = st.just(RaceCall(PAUSE, (PAUSE_S,)))
    others = st.one_of(reads, creator, setters)
    return st.one_of(operation, operation, edits, reads, others, pause)


ALLOWED_OP = "(an allowed operation)"
"""A lane call ``(vm slot, k, paused)``: the k-th of RACE_OPERATIONS the VM allows when the race
starts (any of them if it allows none)."""
ALLOWED_STOPPABLE = "(an allowed operation a cancel can stop)"
"""As ``ALLOWED_OP``, of STOPPABLE: what a cancel race makes, so that its cancel can show."""
ALLOWED_BESIDE_HARD = "(an allowed operation a hard one may overlap)"
"""As ``ALLOWED_OP``, of BESIDE_HARD: what a hard race makes before its hard operation."""
BESIDE_HARD = (
    "pause",
    "unpause",
    "suspend",
    "resume",
    "clean_shutdown",
    "clean_reboot",
    "pool_migrate",
)
"""Operations a hard shutdown or reboot may start beside: those it cancels and those it lets
end as they would (``models.inflight.CANCELLED_BY``)."""
_ALLOWED_AMONG: Mapping[str, tuple[str, ...]] = {
    ALLOWED_OP: RACE_OPERATIONS,
    ALLOWED_STOPPABLE: STOPPABLE,
    ALLOWED_BESIDE_HARD: BESIDE_HARD,
}
ALLOWED_ASSERT = "(assert an allowed operation)"
"""``VM.assert_operation_valid`` of the k-th of ASSERTED the VM allows when the race starts."""


MEMORY_SETTERS = ("VM.set_memory_dynamic_range", "VM.set_memory_static_range")
VCPUS_SETTERS = {"VM.set_VCPUs_number_live": (1, 2), "VM.set_VCPUs_max": (2, 3)}
"""VCPU setters and the value each map key stands for (the suite VMs have 2 VCPUs_max)."""


def _vcpus_setter(vm: str, key: str, method: str) -> RaceCall:
    return RaceCall(method, (vm, VCPUS_SETTERS[method][MAP_KEYS.index(key)]))


def _memory_setter(vm: str, key: str, method: str) -> RaceCall:
    low, high = MEMORY[key]
    if method == "VM.set_memory_static_range":
        return RaceCall(method, (vm, low // 2, high))
    return RaceCall(method, (vm, low, high))


def _other_host(world: World, vm: str) -> str:
    record = world.vms.get(vm)
    here = record.get("resident_on") if record is not None else None
    hosts = sorted(world.hosts)
    return next((h for h in hosts if h != here), hosts[0])


def _allowed(world: World, vm: str, ops: Sequence[str], k: int) -> str:
    record = world.vms.get(vm)
    allowed = record.get("allowed_operations", ()) if record is not None else ()
    choices = [op for op in ops if op in allowed] or list(ops)  # type: ignore[operator]
    return choices[k % len(choices)]


COPIES = ("clone", "copy", "snapshot", "checkpoint")
"""Operations that make a VM (``linearize.CREATORS``): the order found pairs each new VM of the
target with one of the model's."""


def _creator(vm: str, op: str, is_async: bool) -> RaceCall:
    name: tuple[Value, ...] = ("xapi-conformance race",)
    args = (vm, *name, NULL_REF) if op == "copy" else (vm, *name)
    return RaceCall(f"VM.{op}", args, is_async)


def _operation(vm: str, op: str, is_async: bool, paused: bool) -> RaceCall:
    args: tuple[Value, ...] = (vm, paused, False) if op in ("start", "resume") else (vm,)
    if op == "pool_migrate":
        args = (vm, OTHER_HOST, {})
    return RaceCall(f"VM.{op}", args, is_async)


LANE = st.lists(race_calls(), min_size=1, max_size=3).map(tuple)


@st.composite
def races(draw: st.DrawFn) -> Race:
    """Two or three lanes of one to three calls each. The second lane is, as often as not, the
    first one again (the same calls from another session) or its twin on the other map key,
    the races that find lost updates and double successes; shrinking goes towards two
    identical one-call lanes."""
    first = draw(LANE)
    shape = draw(st.sampled_from(("same", "twin", "free")), label="second lane")
    second = {"same": first, "twin": tuple(_twin(c) for c in first)}.get(shape) or draw(LANE)
    third = draw(st.lists(LANE, max_size=1), label="third lane")
    return Race((first, second, *third))


@st.composite
def same_call_races(draw: st.DrawFn) -> Race:
    """Two or three sessions making the same operation on the same VM at once (each lane sync
    or Async): double starts, double destroys, shutdowns racing shutdowns."""
    k = draw(st.integers(0, len(RACE_OPERATIONS) - 1), label="which allowed operation")
    paused = draw(st.booleans(), label="paused")
    modes = draw(st.lists(st.booleans(), min_size=2, max_size=3), label="Async per session")
    return Race(tuple((RaceCall(ALLOWED_OP, (VM_SLOTS[0], k, paused), mode),) for mode in modes))


@st.composite
def watched_races(draw: st.DrawFn) -> Race:
    """One session makes an operation; another waits until the VM changes (the operation's
    begin), then reads what is in flight (the record or current_operations: the proof that the
    operation has begun), as often as not the VM's event (which must show it too), and what
    that implies (allowed_operations, assert_operation_valid)."""
    k = draw(st.integers(0, len(RACE_OPERATIONS) - 1), label="which allowed operation")
    is_async, paused = draw(st.booleans(), label="Async"), draw(st.booleans(), label="paused")
    slot = VM_SLOTS[0]
    evidence = draw(st.sampled_from(("VM.get_current_operations", "VM.get_record")))
    by_event = draw(st.booleans(), label="the VM's event read too")
    implied = draw(
        st.sampled_from(
            (
                RaceCall(ALLOWED_ASSERT, (slot, 0, False)),
                RaceCall(ALLOWED_ASSERT, (slot, 1, False)),
                RaceCall("VM.get_allowed_operations", (slot,)),
            )
        ),
        label="implied",
    )
    event = (RaceCall(EVENT_READ, (slot,)),) if by_event else ()
    watcher = (RaceCall(EVENT_WAIT, (slot,)), RaceCall(evidence, (slot,)), *event, implied)
    return Race(((RaceCall(ALLOWED_OP, (slot, k, paused), is_async),), watcher))


HARD_OPERATIONS = ("hard_shutdown", "hard_reboot")
"""The operations xapi lets start beside most others in flight, cancelling some of them
(``models.operations.is_allowed_concurrently``, ``models.inflight.CANCELLED_BY``)."""


@st.composite
def hard_races(draw: st.DrawFn) -> Race:
    """One session makes an operation; another waits until it has begun, then makes a hard
    shutdown or hard reboot of the VM (which xapi starts beside it, cancelling it or not
    according to the operation) and reads the VM."""
    k = draw(st.integers(0, len(BESIDE_HARD) - 1), label="which allowed operation")
    is_async, paused = draw(st.booleans(), label="Async"), draw(st.booleans(), label="paused")
    slot = VM_SLOTS[0]
    hard = draw(st.sampled_from(HARD_OPERATIONS), label="hard operation")
    hard_async = draw(st.booleans(), label="hard operation Async")
    after = draw(st.sampled_from(("VM.get_record", "VM.get_power_state")), label="read after")
    interrupter = (
        RaceCall(EVENT_WAIT, (slot,)),
        RaceCall(f"VM.{hard}", (slot,), hard_async),
        RaceCall(after, (slot,)),
    )
    return Race(((RaceCall(ALLOWED_BESIDE_HARD, (slot, k, paused), is_async),), interrupter))


TASK_OF = "(the task of call #"


def task_of(index: int) -> str:
    """A lane argument: the task of the race's call ``index`` (an Async call of another lane),
    known once that call has answered its task ref."""
    return f"{TASK_OF}{index})"


def _task_index(value: Value) -> int | None:
    if isinstance(value, str) and value.startswith(TASK_OF):
        return int(value[len(TASK_OF) : -1])
    return None


@st.composite
def cancelled_races(draw: st.DrawFn) -> Race:
    """One session makes an Async operation; another cancels its task as soon as it knows it
    (then reads the VM); a third, as often as not, makes an operation of the VM first, so that
    the Async one may wait it out and be cancelled before it begins."""
    k = draw(st.integers(0, len(RACE_OPERATIONS) - 1), label="which allowed operation")
    paused = draw(st.booleans(), label="paused")
    slot = VM_SLOTS[0]
    after = draw(
        st.sampled_from(("VM.get_current_operations", "VM.get_power_state", "VM.get_record")),
        label="read after the cancel",
    )
    canceller = (RaceCall("task.cancel", (task_of(0),)), RaceCall(after, (slot,)))
    lanes: list[tuple[RaceCall, ...]] = [
        (RaceCall(ALLOWED_STOPPABLE, (slot, k, paused), True),),
        canceller,
    ]
    if draw(st.booleans(), label="a third session"):
        j = draw(st.integers(0, len(RACE_OPERATIONS) - 1), label="its operation")
        lanes.append((RaceCall(ALLOWED_OP, (slot, j, False), False),))
    return Race(tuple(lanes))


def _twin(call: RaceCall) -> RaceCall:
    swap = {MAP_KEYS[0]: MAP_KEYS[1], MAP_KEYS[1]: MAP_KEYS[0]}
    return RaceCall(call.method, tuple(swap.get(str(a), a) for a in call.args), call.is_async)


# ---- running a race -------------------------------------------------------------------------------


class _Tasks:
    """The task refs of the race's Async calls, as their lanes learn them (for task.cancel)."""

    def __init__(self) -> None:
        self._known: dict[int, str | None] = {}
        self._changed = threading.Condition()

    def tell(self, index: int, task: str | None) -> None:
        """Call ``index`` answered ``task`` (None: no task, or its lane stopped)."""
        with self._changed:
            self._known.setdefault(index, task)
            self._changed.notify_all()

    def wait(self, index: int, timeout: float) -> str | None:
        """The task of call ``index`` once known (None if it has none, or after ``timeout``)."""
        with self._changed:
            self._changed.wait_for(lambda: index in self._known, timeout)
            return self._known.get(index)


@dataclass
class _Lane:
    """One lane's thread: its connection, session (target ref) and what it saw."""

    target: Target
    session: str
    calls: Sequence[tuple[int, RaceCall]]
    task_timeout: float
    seen: list[tuple[int, float, float, Answer]] = field(default_factory=list)
    error: BaseException | None = None


def lane_targets(harness: Harness, count: int) -> list[Target]:
    """``count`` connections to the harness's target, one per lane (opened once, then kept)."""
    target = harness.connection.target
    owner, kept = _KEPT.get(id(target), (None, []))
    if owner is not target:  # a new target that reuses a dead one's id
        kept = []
        _KEPT[id(target)] = (target, kept)
    while len(kept) < count:
        kept.append(_fork(target))
    return kept[:count]


_KEPT: dict[int, tuple[Target, list[Target]]] = {}


def _fork(target: Target) -> Target:
    """Another connection to ``target`` (a thread of its own needs one)."""
    if isinstance(target, InProcessTarget):
        return InProcessTarget(target.app, target.protocol)
    return open_target(target.url, target.protocol, target.settings)


def run_race(harness: Harness, race: Race, sessions: Sequence[str]) -> Explained:
    """Run ``race`` (lane i as ``sessions[i]``, model refs) and judge it; the harness follows the
    order found. Raises Divergence when no order explains what the target did."""
    before = harness.world
    lanes = _lanes(harness, race, sessions)
    clock = _run_lanes(lanes)
    history = _history(harness, race, lanes, sessions, clock)
    final = _final_records(harness, _created(history))
    malformed = _malformed(harness, race, lanes, final)
    if malformed is not None:
        harness.strays.extend(_created(history))
        harness.diverged(_malformed_info(harness, race, history, sessions, *malformed))
    records = {ref: answer.outcome for ref, answer in final.items()}
    started = time.perf_counter()
    search = linearize(
        before, history, _final_check(harness, records), strictness=harness.connection.strictness
    )
    STATS.add(len(history), search.states, time.perf_counter() - started)
    _count(harness, race)
    if isinstance(search, Explained):
        _adopt(harness, search, history)
        return search
    harness.strays.extend(_created(history))  # never left on the target
    if isinstance(search, Undecided):
        STATS.undecided += 1
        harness.off_track = True
        raise Desynced()
    harness.diverged(_info(harness, race, history, search, sessions))


def _lanes(harness: Harness, race: Race, sessions: Sequence[str]) -> list[_Lane]:
    targets = lane_targets(harness, len(race.lanes))
    numbered = race.calls()
    timeout = harness.connection.task_timeout or harness.connection.target.settings.task_timeout
    return [
        _Lane(
            targets[lane],
            str(harness.refs.to_target(sessions[lane])),
            [(i, _to_target(harness, call)) for i, (ln, call) in enumerate(numbered) if ln == lane],
            timeout,
        )
        for lane in range(len(race.lanes))
    ]


def _to_target(harness: Harness, call: RaceCall) -> RaceCall:
    return RaceCall(call.method, tuple(harness.refs.to_target(a) for a in call.args), call.is_async)


def _run_lanes(lanes: Sequence[_Lane]) -> float:
    """Run the lanes on threads from one barrier; returns the clock origin."""
    barrier = threading.Barrier(len(lanes))
    tasks = _Tasks()
    origin = time.monotonic()
    threads = [threading.Thread(target=_lane_body, args=(lane, barrier, tasks)) for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for lane in lanes:
        if lane.error is not None:
            raise lane.error
    return origin


def _lane_body(lane: _Lane, barrier: threading.Barrier, tasks: _Tasks) -> None:
    try:
        tokens = _wait_tokens(lane)
        barrier.wait(timeout=30)
        for index, call in lane.calls:
            if call.method == PAUSE:
                time.sleep(PAUSE_S)
                continue
            if call.method == EVENT_WAIT:
                _wait_for_change(lane, str(call.args[0]), tokens)
                continue
            args = _with_tasks(call.args, tasks, lane.target.settings.task_timeout)
            if args is None:  # the call whose task it cancels made none: nothing to send
                continue
            invoked = time.monotonic()
            if call.method == EVENT_READ:
                answer = _event_read(lane, str(args[0]))
            else:
                answer = send(
                    lane.target,
                    AnswerRules.of(call.wire_method),
                    (lane.session, *args),
                    task_timeout=lane.task_timeout,
                    on_task=functools.partial(tasks.tell, index),
                )
            lane.seen.append((index, invoked, time.monotonic(), answer))
    except BaseException as error:  # handed to the main thread
        lane.error = error
    finally:
        for index, _call in lane.calls:
            tasks.tell(index, None)


def _wait_tokens(lane: _Lane) -> dict[str, Value]:
    """For each VM a lane's ``EVENT_WAIT`` names, the event token before the race starts."""
    tokens: dict[str, Value] = {}
    for _index, call in lane.calls:
        vm = str(call.args[0]) if call.method == EVENT_WAIT else None
        if vm is not None and vm not in tokens:
            raw = lane.target.call("event.from", lane.session, [f"vm/{vm}"], "", 0.0)
            batch = raw.value if isinstance(raw, Success) else None
            tokens[vm] = batch.get("token", "") if isinstance(batch, Mapping) else ""
    return tokens


def _wait_for_change(lane: _Lane, vm: str, tokens: Mapping[str, Value]) -> None:
    """``EVENT_WAIT``: until ``vm`` changes after its token (or ``EVENT_WAIT_S``). Unjudged: a
    wrong answer only ends the wait (the reads after it are judged)."""
    token = tokens.get(vm, "")
    if token:
        lane.target.call("event.from", lane.session, [f"vm/{vm}"], token, EVENT_WAIT_S)


def _event_read(lane: _Lane, vm: str) -> Answer:
    """``EVENT_READ`` of ``vm`` (a target ref): the snapshot of its one event, typed as the VM's
    record; no event, the VM is gone (created and destroyed since the token ""): VM.get_record's
    HANDLE_INVALID. Malformed when the answer is anything else."""
    raw = lane.target.call("event.from", lane.session, [f"vm/{vm}"], "", 0.0)
    if isinstance(raw, Failure):
        return Answer(raw)
    try:
        seen, _token = read_batch(raw.value)
    except Malformed as bad:
        return Answer(raw, malformed=bad.mismatch)
    if not seen:
        return Answer(Failure("HANDLE_INVALID", ("VM", vm)))
    snapshots = [e.snapshot for e in seen if (e.cls, e.ref, e.operation) == ("vm", vm, "add")]
    if len(seen) != 1 or len(snapshots) != 1:
        listed = ", ".join(f"{e.cls} ({e.operation})" for e in seen) or "nothing"
        problem = Mismatch("events", f"expected the VM once (add), got {listed}")
        return Answer(raw, malformed=problem)
    return typed(Success(cast(Value, snapshots[0])), _VM_RECORD, lane.target.protocol, "event")


def _with_tasks(args: tuple[Value, ...], tasks: _Tasks, timeout: float) -> tuple[Value, ...] | None:
    """``args`` with each ``task_of`` placeholder the task ref it stands for (None when one of
    those calls made no task)."""
    placed: list[Value] = []
    for arg in args:
        index = _task_index(arg)
        if index is None:
            placed.append(arg)
            continue
        task = tasks.wait(index, timeout)
        if task is None:
            return None
        placed.append(task)
    return tuple(placed)


def _history(
    harness: Harness,
    race: Race,
    lanes: Sequence[_Lane],
    sessions: Sequence[str],
    origin: float,
) -> list[Observed]:
    calls = race.calls()
    history: list[Observed] = []
    now = datetime.datetime.now(datetime.UTC)  # when the race ran: a snapshot's snapshot_time
    for lane_index, lane in enumerate(lanes):
        for index, invoked, answered, answer in lane.seen:
            call = calls[index][1]
            args = tuple(_model_task(a) for a in call.args)
            judged_as = "VM.get_record" if call.method == EVENT_READ else call.method
            history.append(
                Observed(
                    index,
                    lane_index,
                    Call(judged_as, (sessions[lane_index], *args), now),
                    invoked - origin,
                    answered - origin,
                    harness.refs.outcome_to_model(answer.outcome),
                    call.is_async,
                    answer.task,
                    shown=call.method,
                )
            )
    return sorted(history, key=lambda o: o.index)


def _model_task(value: Value) -> Value:
    """A ``task_of`` placeholder as the model names that call's task (``task_name``)."""
    index = _task_index(value)
    return value if index is None else task_name(index)


def _created(history: Sequence[Observed]) -> list[str]:
    """The target refs of the VMs the history's clones, copies and snapshots made."""
    return [
        str(o.outcome.value)
        for o in history
        if o.call.method in CREATORS and isinstance(o.outcome, Success)
    ]


def _final_records(harness: Harness, created: Sequence[str]) -> dict[str, Answer]:
    """Each suite VM's record as the target shows it now (model terms), and each VM the race
    created (by its target ref), typed as every answer is (``conformance.engine.answers``)."""
    target, session = harness.connection.target, harness.session
    records: dict[str, Answer] = {}
    for ref in [*harness.refs.bound("vm"), *created]:
        raw = target.call("VM.get_record", session, harness.refs.to_target(ref))
        answer = typed(raw, _VM_RECORD, target.protocol, "result")
        records[ref] = replace(answer, outcome=harness.refs.outcome_to_model(answer.outcome))
    return records


def _malformed(
    harness: Harness, race: Race, lanes: Sequence[_Lane], final: Mapping[str, Answer]
) -> tuple[str, str, Mismatch] | None:
    """The first answer of the race no xapi sends (a lane's, else a final record's): the call
    as the history shows it, its method, and why."""
    calls = race.calls()
    for lane_index, lane in enumerate(lanes):
        for index, _invoked, _answered, answer in lane.seen:
            if answer.malformed is not None:
                call = calls[index][1]
                args = ", ".join(_shown(harness, a) for a in call.args)
                shown = f"#{index} session {lane_index + 1}: {call.wire_method}({args})"
                return shown, call.wire_method, answer.malformed
    for ref, answer in final.items():
        if answer.malformed is not None:
            name = harness.refs.name(ref) or ref
            return f"VM.get_record({name}) after the race", "VM.get_record", answer.malformed
    return None


def _final_check(harness: Harness, final: Mapping[str, Outcome]) -> FinalCheck:
    """Compares a world with ``final``: the suite's VMs by model ref, those the race created by
    the target ref the order pairs with the model's."""
    rules = AnswerRules.of("VM.get_record")
    strictness = harness.connection.strictness

    def check(world: World, created: Created) -> str | None:
        names = {t: m for m, t in created}
        for ref, seen in final.items():
            model_ref = names.get(ref, ref)
            actual = renamed(seen, names) if names else seen
            call = Call("VM.get_record", (harness.session, model_ref))
            expected = [b.outcome for b in apply(world, call)]
            mismatches = [
                outcome_mismatch(
                    e, actual, returns=rules.result, shape_only=False, strictness=strictness
                )
                for e in expected
            ]
            if all(m is not None for m in mismatches):
                name = harness.refs.name(model_ref) or model_ref
                return f"{name}: {harness.refs.display_text(str(mismatches[0]))}"
        return None

    return check


def _count(harness: Harness, race: Race) -> None:
    """Count the race's calls as steps, each one sent or not (a task.cancel is not sent when
    the call it cancels made no task): the count does not depend on what the race did."""
    tally = harness.connection.tally
    for _lane, call in race.calls():
        if call.method not in UNSENT:
            tally.steps += 1
            tally.messages[call.method] += 1


def _adopt(harness: Harness, found: Explained, history: Sequence[Observed]) -> None:
    """The harness follows the order found (the VMs created bound as the order pairs them);
    its log gets the calls in that order."""
    for model_ref, target_ref in found.created:
        harness.refs.bind(model_ref, target_ref, "vm")
    made = {t: m for m, t in found.created}
    by_index = {o.index: o for o in history}
    for step in found.order:
        kind, _, number = step.partition(" #")
        observed = by_index[int(number)]
        if kind == "begin" or observed.call.method == "task.cancel":
            continue  # a replayed task.cancel would name a task long gone
        method = f"Async.{observed.call.method}" if observed.is_async else observed.call.method
        args = cast(tuple[Value, ...], observed.call.args[1:])
        session = str(observed.call.args[0])
        value = observed.outcome.value if isinstance(observed.outcome, Success) else None
        result_ref = made.get(value) if isinstance(value, str) else None
        answer = renamed(observed.outcome, made) if made else observed.outcome
        harness.log.append(LoggedCall(method, args, session, result_ref, answer))
    harness.adopt(found.world)


# ---- the divergence ------------------------------------------------------------------------------


def timed_calls(harness: Harness, history: Sequence[Observed]) -> list[TimedCall]:
    """The history's calls in display form, each with its session and times."""
    timed = []
    for o in history:
        method = f"Async.{o.shown}" if o.is_async else o.shown or o.call.method
        args = ", ".join(_shown(harness, a) for a in o.call.args[1:])  # type: ignore[arg-type]
        timed.append(
            TimedCall(
                o.session + 1,
                f"#{o.index} {method}({args})",
                round(o.invoked * 1000, 1),
                round(o.answered * 1000, 1),
                harness.refs.display_outcome(o.outcome),
            )
        )
    return timed


def _history_line(harness: Harness, timed: TimedCall) -> str:
    answer = timed.answer
    shown = (
        f"{answer.code} {list(answer.params)}"
        if isinstance(answer, Failure)
        else f"success {_shown(harness, answer.value)}"
    )
    shown = shown if len(shown) <= 100 else shown[:97] + "..."
    number, _, call = timed.call.partition(" ")
    return (
        f"{number} session {timed.session}: {call} "
        f"sent {timed.sent_ms:.0f} ms, answered {timed.answered_ms:.0f} ms: {shown}"
    )


def _shown(harness: Harness, value: Value) -> str:
    if isinstance(value, str) and value.startswith(task_name(0)[:-1]):
        return f"the task of #{value.rsplit('-', 1)[1]}"
    text = repr(harness.refs.display(value))
    return text.strip("'") if isinstance(value, str) and harness.refs.name(value) else text


def _info(
    harness: Harness,
    race: Race,
    history: Sequence[Observed],
    search: Unexplained,
    sessions: Sequence[str],
) -> DivergenceInfo:
    reason = harness.refs.display_text(search.closest)
    headline = (
        f"no order of these {len(history)} calls from {len(race.lanes)} sessions "
        f"that respects their timing explains the answers and the final records "
        f"({search.states} orders explored). Deepest attempt: {reason}"
    )
    culprit = _culprit(history, search)
    wanted = search.expected if culprit else None
    return _race_divergence(
        harness,
        race,
        sessions,
        history,
        method=(culprit.shown or culprit.call.method) if culprit else "VM.get_record",
        expected=Success(LINEARIZABLE) if wanted is None else harness.refs.display_outcome(wanted),
        actual=harness.refs.display_outcome(culprit.outcome) if culprit else Success(reason),
        headline=headline,
        reason=reason,
    )


def _malformed_info(
    harness: Harness,
    race: Race,
    history: Sequence[Observed],
    sessions: Sequence[str],
    shown: str,
    method: str,
    mismatch: Mismatch,
) -> DivergenceInfo:
    reason = harness.refs.display_text(str(mismatch))
    return _race_divergence(
        harness,
        race,
        sessions,
        history,
        method=method,
        expected=Success(TYPED_AS_XAPI),
        actual=Success(reason),
        headline=f"{shown}: {reason}.",
        reason=reason,
    )


def _race_divergence(
    harness: Harness,
    race: Race,
    sessions: Sequence[str],
    history: Sequence[Observed],
    *,
    method: str,
    expected: Outcome,
    actual: Outcome,
    headline: str,
    reason: str,
) -> DivergenceInfo:
    """A race's divergence: ``headline``, then the history one call a line. ``expected`` is
    the model's answer to the culprit at the deepest order tried, when one call's answer ended
    every order (the finding then keys on how it differs, as a sequential one would)."""
    timed = timed_calls(harness, history)
    lines = [_history_line(harness, t) for t in timed]
    return DivergenceInfo(
        method=method,
        params=(),
        expected=(expected,),
        actual=actual,
        area="concurrency",
        kind="race",
        message=f"[concurrency] {headline}\n  " + "\n  ".join(lines),
        reproducer=race_reproducer(harness, race, sessions),
        reason=reason,
        calls=tuple((line, None) for line in lines),
        history=tuple(timed),
    )


def _culprit(history: Sequence[Observed], search: Unexplained) -> Observed | None:
    text = search.closest.partition(": ")[2]
    if not text.startswith("#"):
        return None
    number = text[1:].split(" ", 1)[0]
    return next((o for o in history if str(o.index) == number), None)


# ---- reproducers ----------------------------------------------------------------------------------

REPRODUCER = '''#!/usr/bin/env python3
"""Race reproducer: {title}

Replays the calls before the race, then runs the race's sessions at once, up to --repeat times
(default 20), and reports how often no order of the calls explained what the target did.
Needs xapi-conformance installed (the judgement uses its model).

Run: {password_env}=... python3 {filename} [URL] [--repeat N]
Exit 1 while the race shows, 0 when it never did, 2 when the target cannot be reached.
"""

import sys

from conformance.runner.replay import replay_race

SCENARIO = {scenario}

if __name__ == "__main__":
    sys.exit(replay_race(SCENARIO, sys.argv[1:]))
'''


def race_reproducer(harness: Harness, race: Race, sessions: Sequence[str]) -> str:
    """The script that replays the example's calls, then ``race`` up to N times."""
    names = {ref: f"vm{i}" for i, ref in enumerate(harness.refs.bound("vm"), 1)}
    scenario = {
        "url": harness.connection.target.url,
        "user": harness.connection.root.account.name,
        "password_env": harness.connection.password_env,
        "protocol": harness.connection.target.protocol,
        "prefix": [_step(call, names) for call in harness.log if call.method != LOGIN],
        "lanes": [
            [[c.method, _json_args(c.args, names), c.is_async] for c in lane] for lane in race.lanes
        ],
    }
    title = f"{len(race.lanes)} sessions, {len(race.calls())} calls"
    text = pprint.pformat(json.loads(json.dumps(scenario, default=str)), width=96)
    return REPRODUCER.format(
        title=title,
        filename="reproducer.py",
        scenario=text,
        password_env=harness.connection.password_env,
    )


def _step(call: LoggedCall, names: Mapping[str, str]) -> list[object]:
    return [
        call.method,
        _json_args(call.args, names),
        call.result_ref and names.get(call.result_ref),
    ]


def _json_args(args: Sequence[Value], names: Mapping[str, str]) -> list[object]:
    return [
        {"ref": names[a]} if isinstance(a, str) and a in names else _json_value(a) for a in args
    ]


def _json_value(value: Value) -> object:
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value
