"""The harness: every call goes to the model and the target side by side, and is compared.

One exchange pipeline serves plain, raw (argument lists sent exactly as given) and ``Async.``
calls: the arguments as the server will decode them → the model's branches → the target's
answer, typed strictly at the boundary → the first branch it matches is followed, or a
``Divergence`` carries the reason and the example's calls as a runnable reproducer. The model
decides which answers are acceptable (including where facts are unknown); the harness only
follows the branch the target took.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NoReturn, Protocol

from conformance.engine.answers import Answer, TaskEnd, send
from conformance.engine.answers import typed as answer_typed
from conformance.engine.importer import Login, import_world
from conformance.errors import MalformedAnswer, TargetError
from conformance.judge.compare import (
    AnswerRules,
    Mismatch,
    Strictness,
    outcome_mismatch,
    record_mismatches,
    shape_only_here,
)
from conformance.judge.divergence import Desynced, Divergence, DivergenceInfo
from conformance.judge.refs import REF_PREFIX, RefMap, made_by_run, snapshots_of_new_vms
from conformance.judge.waivers import Waivers
from conformance.reproduce.reproducer import (
    LOGIN,
    TASK_RECORD,
    LoggedCall,
    RoleLogin,
    render_reproducer,
)
from conformance.targets.base import Target
from conformance.wire import jsonrpc, xmlrpc
from models.coverage import ACCEPTED, CLIENT_MESSAGES, REFUSED
from models.operations import is_default_template
from models.outcome import Encoded, Failure, Outcome, Success, Value
from models.placement import server_chooses_host
from models.releases import Release
from models.rpc import apply
from models.schema import XType
from models.transition import Branch, Call
from models.world import NULL_REF, Facts, World, frozen

__all__ = [
    "CallWatch",
    "Cell",
    "Connection",
    "Harness",
    "Purpose",
    "RunTally",
    "Surveyor",
    "destroy_suite_vm",
    "received_arguments",
    "sweep_run_vms",
    "vm_kind",
]

_UUID_READS = frozenset({"VM.get_record", "VM.get_uuid"})
"""Reads that show a suite VM's uuid, checked for stability and uniqueness."""
_STANDING_CLASSES = frozenset({"pool", "host", "SR"})
"""Classes whose objects no call of the suite makes: a ref of one in an answer is never bound
to the model's (they keep the refs the import read)."""
_PLACEMENT_READS = frozenset({"VM.get_record", "VM.get_resident_on"})
"""Reads that show where a suite VM runs, checked against the host xapi must have put it on."""
_SERVER_PLACES = frozenset({"VM.start", "VM.resume"})
"""Calls that may leave the host to the server's choice (``server_chooses_host``)."""
_GENID_READS = frozenset({"VM.get_record", "VM.get_generation_id"})
"""Reads that show a suite VM's generation_id, checked to change when xapi's does."""
_LISTINGS = frozenset({"VM.get_all", "VM.get_all_records"})
"""Queries that list every VM, checked to list the hosts' control domains."""
_SEED_READS = frozenset({"VM.get_record", "VM.get_other_config"})
"""Reads that show a VM's mac_seed, checked to be shared between VMs as the model shares it."""
ALL_VM_QUERIES = frozenset(
    {
        "VM.get_all",
        "VM.get_all_records",
        "VM.get_by_name_label",
        "VM.get_all_records_where",
        "VM.get_all_where",
    }
)
"""Queries whose answers include every VM on the target, the suite's or not."""


Cell = tuple[str, str, str]
"""A coverage cell: (message, power state, VM kind)."""

Surveyor = Callable[[DivergenceInfo], bool]
"""Decides, for an unwaived divergence, whether the example goes on past it (True: the
surveyor has noted it as it wants) or ends with it raised (False)."""


@dataclass(frozen=True)
class TallyCounts:
    """A tally's counters at one moment."""

    examples: int
    steps: int
    coverage: Counter[tuple[str, str, str]]
    messages: Counter[str]


@dataclass
class RunTally:
    """What a test session accumulates: examples, steps, coverage cells, waived divergences."""

    examples: int = 0
    steps: int = 0
    coverage: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    divergences: list[DivergenceInfo] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)
    held: TallyCounts | None = None
    """The counters as they stood when a finding's shrink began (``hold``): its replays are
    not examples of the run, so what reports and the progress line read stays at these."""

    def counts(self) -> TallyCounts:
        """Examples, steps, coverage and messages of the run, shrink replays left out."""
        if self.held is not None:
            return self.held
        return TallyCounts(self.examples, self.steps, self.coverage, self.messages)

    def hold(self) -> None:
        """Keep the counters as they are until ``release``, whatever is counted meanwhile."""
        self.held = TallyCounts(
            self.examples, self.steps, Counter(self.coverage), Counter(self.messages)
        )

    def release(self) -> None:
        """Put the counters back as ``hold`` kept them."""
        if self.held is not None:
            self.examples, self.steps = self.held.examples, self.held.steps
            self.coverage, self.messages = self.held.coverage, self.held.messages
            self.held = None

    def record(self, info: DivergenceInfo) -> None:
        """Keep ``info`` unless the same divergence (generated again, or shrunk) is already kept."""
        if all(kept.key() != info.key() for kept in self.divergences):
            self.divergences.append(info)


class CallWatch(Protocol):
    """What watches a run's exchanges (``conformance.runner.budget``): it may end the run
    before a call (a spent time budget), and sees every divergence or target error leaving an
    exchange (it may raise another exception in its place)."""

    def before_call(self) -> None:
        """Called before each exchange; raises to end the run there."""

    def left(self, error: Divergence | TargetError) -> None:
        """Called with a divergence or target error as it leaves an exchange."""


@dataclass
class Connection:
    """A target with the suite's sessions on it, shared by every example of a test session."""

    target: Target
    root: Login
    roles: dict[str, Login]
    facts: Facts
    run_id: str
    strictness: Strictness = "exact"
    waivers: Waivers = field(default_factory=Waivers)
    tally: RunTally = field(default_factory=RunTally)
    task_timeout: float | None = None
    """Seconds an ``Async.`` call's task may stay pending before the target counts as stalled
    (default: the target's settings, from ``--timeout``)."""
    release: Release | None = None
    """The xapi release to judge by (``--xapi-version``); None: the one the pool master reports."""
    survey: bool = False
    """A divergence does not end its example: the test runs as a survey (``run``'s default;
    ``-x`` and ``--max-findings`` end each example at its first divergence)."""
    surveyor: Surveyor | None = None
    """Where set, the divergences it accepts are recorded by it and the example goes on from
    what the target shows (a survey); None: every divergence ends its example."""
    watch: CallWatch | None = None
    """The watch of the machine run in progress, if any (set and cleared by its runner)."""
    password_env: str = "XAPI_PASSWORD"
    """The environment variable reproducers read root's password from (``--password-env``)."""
    role_password_envs: dict[str, str] = field(default_factory=dict)
    """Per role, the variable reproducers read its account's password from (``--role-account``;
    a role not named reads ``XAPI_PASSWORD_<ROLE>``)."""
    event_token: str = ""
    """The events area's last event.from token: each example catches up from where the last
    one stopped (a subscription from "" answers every object of the pool once)."""
    stopping: Callable[[], bool] = lambda: False
    """Whether the run is being stopped (an interrupt arrived): a divergence seen from then on
    is not recorded, the interrupt goes on instead (calls it cut short, and the run's clean-up
    removing its VMs, are not the target's doing)."""
    shrunk: set[str] = field(default_factory=set)
    """The differences (finding keys) a survey of this process already shrank: each is shrunk
    once, by the first test that showed it; later tests keep their first example as it is."""

    def logins(self) -> tuple[Login, ...]:
        """root first, then one login per role."""
        return (self.root, *self.roles.values())


UNDO_CALLS: tuple[tuple[str, tuple[Value, ...]], ...] = (
    ("VM.set_blocked_operations", ({},)),
    ("VM.remove_from_other_config", ("default_template",)),
    ("VM.set_is_a_template", (False,)),
    ("VM.hard_shutdown", ()),
    ("VM.destroy", ()),
)
"""What undoes anything that could stop a suite VM's destruction (blocks, template flags, a
running domain), then destroys it."""


def destroy_suite_vm(
    target: Target,
    session: str,
    ref: str,
    calls: Sequence[tuple[str, tuple[Value, ...]]] = UNDO_CALLS,
) -> None:
    """Send ``calls`` (all of ``UNDO_CALLS`` unless the model knows fewer suffice) on a VM.

    Only ever called with refs the suite created; failures are ignored (the VM may be gone).
    """
    for method, args in calls:
        with contextlib.suppress(TargetError):
            target.call(method, session, ref, *args)


def sweep_run_vms(target: Target, session: str, run_id: str) -> list[str]:
    """Destroy every VM of this run (``made_by_run``) that is still there; returns their refs."""
    records = target.call("VM.get_all_records", session)
    if not isinstance(records, Success) or not isinstance(records.value, Mapping):
        return []
    leftovers = [str(ref) for ref, record in records.value.items() if made_by_run(record, run_id)]
    for ref in leftovers:
        destroy_suite_vm(target, session, ref)
    return leftovers


def vm_kind(vm: Mapping[str, Value]) -> str:
    """plain, template, default_template, snapshot or control_domain."""
    if vm["is_control_domain"] is True:
        return "control_domain"
    if vm["is_a_snapshot"] is True:
        return "snapshot"
    if vm["is_a_template"] is True:
        return "default_template" if is_default_template(vm) else "template"
    return "plain"


_ABSENT = object()


class Purpose(enum.Enum):
    """What an exchange is for, which decides what the harness does with it beyond judging."""

    STEP = "outcome"
    """A call of the example: counted (its coverage cell), logged for the reproducer, and a
    divergence of it is the call's."""
    STATE = "state"
    """A VM's record read to compare the target's state with the model's: not a step; a
    divergence of it names the field that differs, and the model adopts what the target shows."""


_PLAIN_TEXT = re.compile(r"[A-Za-z0-9:._-]*\Z")
"""Strings every codec carries unchanged (refs, sessions, names of enums)."""


def received_arguments(protocol: str, method: str, args: tuple[Value, ...]) -> tuple[object, ...]:
    """``args`` after a round trip through the protocol's codec, as the server sees them.

    Plain strings (refs and sessions: most calls' only arguments) come through unchanged, so
    those calls skip the round trip.
    """
    if all(isinstance(a, str) and _PLAIN_TEXT.match(a) for a in args):
        return args
    if protocol == "jsonrpc":
        return jsonrpc.decode_request(jsonrpc.encode_request(method, args, 1)).params
    return xmlrpc.received_params(args)


@dataclass(frozen=True)
class _Expected:
    """One acceptable answer of the model and the world that follows it."""

    outcome: Outcome
    world: World
    via_task: bool = False
    task: str = ""
    """The Async call's task (model terms) when the harness keeps tasks."""


class Harness:
    """One example's view: the model world, the ref map, the calls made, the VMs to clean up."""

    def __init__(self, connection: Connection, area: str) -> None:
        self.connection = connection
        self.area = area
        self.refs = RefMap()
        self.log: list[LoggedCall] = []
        self.strays: list[str] = []
        self.world: World = self._import()
        self._control_domains = {
            host.control_domain: host.name_label
            for host in self.world.hosts.values()
            if host.control_domain != NULL_REF
        }
        """The control domain each host's record names, and the host's name: VMs no client
        makes or destroys, which every VM.get_all lists."""
        self.off_track = False
        self._verified = False
        """The example's end compared every suite VM's record and found them all as modelled
        (no divergence in the example, not even a waived one)."""
        self._diverged = False
        self._touched: set[str] = set()
        self._uuids: dict[str, str] = {}
        """Each suite VM's uuid as the target first showed it (model ref → uuid)."""
        self._placed: dict[str, str] = {}
        """Each suite VM the example placed on a host xapi's choice makes predictable (a host
        named by the call, or the affinity host), and that host."""
        self._genids: dict[str, tuple[str, str]] = {}
        """Each suite VM's generation_id as the model and the target last showed it."""
        self._seeds: dict[str, tuple[str, str]] = {}
        """Each VM's other_config mac_seed as the model and the target last showed it."""
        self._writers: dict[tuple[str, str], tuple[str, Cell | None]] = {}
        """(VM, field) -> the message that last wrote the field in this example, and its cell."""
        self._changed_by: dict[str, tuple[str, Cell | None]] = {}
        """VM -> the message that last changed its record (made or destroyed it too), and its
        cell."""
        self._current: tuple[str, Cell | None] = ("", None)
        """The message being exchanged and the cell it was called in."""
        self.on_task_end: Callable[[TaskEnd], None] | None = None
        """Called when an ``Async.`` call's task has ended, before it is read and destroyed
        (the events area watches it)."""
        self.keep_tasks = False
        """Leave each ``Async.`` call's ended task on both sides, bound, for the example to use
        (read, cancel, edit, destroy) as a client that keeps its tasks does."""

    def _import(self) -> World:
        connection = self.connection
        salt = f"model-{connection.run_id}-{connection.tally.examples}"
        world = import_world(
            connection.target, connection.logins(), connection.facts, salt, connection.release
        )
        for login in connection.logins():
            self.refs.bind(login.session, login.session, "session")
        return world

    @property
    def session(self) -> str:
        """The root session (same ref in model and target)."""
        return self.connection.root.session

    def role_session(self, role: str) -> str | None:
        """A session of a role-limited account, if the connection has one."""
        login = self.connection.roles.get(role)
        return login.session if login else None

    def suite_vms(self) -> list[str]:
        """The model refs of the VMs this example created that the model still holds."""
        return [ref for ref in self.refs.bound("vm") if ref in self.world.vms]

    def teardown(self) -> None:
        """Destroy every VM this example created on the target (never anything else).

        After a full record comparison that agreed (``finish``), the model knows each VM's
        state: only the undo calls it says change something are sent, and VMs it holds as
        destroyed are left alone (the run's closing sweep still removes any the target kept).
        Otherwise every undo call goes to every VM the example made.
        """
        target = self.connection.target
        for model_ref in reversed(self.refs.bound("vm")):
            target_ref = str(self.refs.to_target(model_ref))
            if not self._verified:
                destroy_suite_vm(target, self.session, target_ref)
            elif model_ref in self.world.vms:
                destroy_suite_vm(target, self.session, target_ref, self._undo_calls(model_ref))
        for ref in self.strays:
            destroy_suite_vm(target, self.session, ref)

    def _undo_calls(self, ref: str) -> list[tuple[str, tuple[Value, ...]]]:
        """The calls of ``UNDO_CALLS`` the model says change VM ``ref`` (every one from the
        first where it offers more than one answer), then the destroy."""
        world, now = self.world, datetime.datetime.now(datetime.UTC)
        protocol = self.connection.target.protocol
        needed: list[tuple[str, tuple[Value, ...]]] = []
        for index, (method, args) in enumerate(UNDO_CALLS[:-1]):
            received = received_arguments(protocol, method, (self.session, ref, *args))
            branches = apply(world, Call(method, received, now))
            if len(branches) != 1:
                return [*needed, *UNDO_CALLS[index:]]
            after = branches[0].world
            if isinstance(branches[0].outcome, Success) and after.vms.get(ref) != world.vms[ref]:
                needed.append((method, args))
                world = after
        return [*needed, UNDO_CALLS[-1]]

    # ---- the calls rules make ----------------------------------------------------------------

    def call(self, method: str, *args: Value, session: str | None = None) -> Outcome:
        """``method(session, *args)`` on both sides (no session for messages that take none)."""
        rules = AnswerRules.of(method)
        sent = (session or self.session, *args) if rules.takes_session else args
        return self.exchange(rules, sent)

    def raw_call(self, method: str, args: tuple[Value, ...]) -> Outcome:
        """A call whose argument list is sent exactly as given (RPC-layer tests: wrong counts)."""
        return self.exchange(AnswerRules.of(method), args)

    def call_async(self, method: str, *args: Value) -> Outcome:
        """``Async.<method>``: the task's outcome, compared when the task ends."""
        return self.call(f"Async.{method.removeprefix('Async.')}", *args)

    def adopt(self, world: World) -> None:
        """Follow ``world``, reached by calls made outside ``exchange`` (a concurrent race)
        whose caller has already compared every suite VM's record with it (a race may place
        a VM where the server chooses: the hosts remembered for ``_placement_mismatch`` go)."""
        self.world = world
        self._placed.clear()

    def check_state(self, *, full: bool = False) -> None:
        """Read suite VMs' records from the target and compare them with the model's.

        After a step only the VMs whose model record the step changed are read: a record the
        model proves unchanged is not read again until ``full`` reads every suite VM, as at the
        end of an example, which catches a change the model did not expect anywhere.
        """
        refs = self.suite_vms() if full else [r for r in self.suite_vms() if r in self._touched]
        self._touched.clear()
        for ref in refs:
            self.exchange(AnswerRules.of("VM.get_record"), (self.session, ref), Purpose.STATE)

    def finish(self) -> None:
        """End the example: a full record comparison unless it already diverged or desynced,
        then teardown."""
        try:
            if not self.off_track:
                self.check_state(full=True)
                self._verified = not self.off_track and not self._diverged
        finally:
            self.teardown()

    # ---- the pipeline ------------------------------------------------------------------------

    def exchange(
        self, rules: AnswerRules, args: tuple[Value, ...], purpose: Purpose = Purpose.STEP
    ) -> Outcome:
        """Predict, send, type, match; follow the branch taken or diverge. Returns the answer.

        An interrupt (Ctrl-C, a spent budget) or a target error in the middle of an exchange
        leaves it unknown whether the target did the call: the example is then off track and
        its end compares nothing (a comparison would blame the target for the lost answer).
        """
        watch = self.connection.watch
        if watch is not None:
            watch.before_call()
        try:
            return self._exchange(rules, args, purpose)
        except (KeyboardInterrupt, TargetError) as error:
            self.off_track = True
            if watch is not None and isinstance(error, TargetError):
                watch.left(error)
            raise
        except Divergence as divergence:
            if watch is not None:
                watch.left(divergence)
            raise

    def _exchange(self, rules: AnswerRules, args: tuple[Value, ...], purpose: Purpose) -> Outcome:
        if purpose is Purpose.STEP:
            self._current = (rules.name, self._count(rules, args))
        expected = self._predict(rules, args)
        if purpose is Purpose.STEP and rules.name in CLIENT_MESSAGES:
            self._count_client_cell(rules.name, expected)
        answer = self._send(rules, args)
        if answer.malformed is None:
            returns = rules.result if answer.via_task else rules.answer
            self._bind_results(expected, answer.outcome, returns, args)
            answer = replace(answer, outcome=self.refs.outcome_to_model(answer.outcome))
            chosen, mismatch = self._match(rules, expected, answer)
            identity = self._identity_mismatch(rules, args, answer.outcome)
            if chosen is not None and identity is None:
                identity = self._genid_mismatch(rules, args, chosen.world, answer.outcome)
            if chosen is not None and identity is None:
                identity = self._placement_mismatch(rules, args, chosen.world, answer.outcome)
            if chosen is not None and identity is None:
                identity = self._seed_mismatch(rules, args, chosen.world, answer.outcome)
            if chosen is not None and identity is None:
                identity = self._standing_mismatch(rules, answer.outcome)
            if chosen is not None and chosen.task and answer.task:
                self.refs.bind(chosen.task, answer.task, "task")
            if chosen is not None and identity is None:
                self._follow(rules, args, chosen, answer.outcome, purpose)
                return answer.outcome
            mismatch = identity if chosen is not None and identity else mismatch
        else:
            mismatch = answer.malformed
        return self._diverge(rules, args, expected, answer, mismatch, purpose)

    def _identity_mismatch(
        self, rules: AnswerRules, args: tuple[Value, ...], outcome: Outcome
    ) -> Mismatch | None:
        """xapi never changes a VM's uuid and never gives two live VMs one: a suite VM's uuid
        stays the first the target showed, and is no other live suite VM's."""
        if rules.name not in _UUID_READS or not isinstance(outcome, Success) or len(args) < 2:
            return None
        uuid = _field_shown(outcome.value, "uuid")
        if not isinstance(uuid, str):
            return None
        ref = str(args[1])
        first = self._uuids.setdefault(ref, uuid)
        if first != uuid:
            return Mismatch("field uuid", f"changed from {first} to {uuid}; a uuid never changes")
        for other, known in self._uuids.items():
            if other != ref and known == uuid and other in self.world.vms:
                return Mismatch("field uuid", f"{uuid} is also {self.refs.display(other)}'s")
        return None

    def _genid_mismatch(
        self, rules: AnswerRules, args: tuple[Value, ...], world: World, outcome: Outcome
    ) -> Mismatch | None:
        """A VM's generation_id is drawn at random (so compared by shape), but xapi draws a
        fresh one exactly when the model's changes (clone, snapshot, revert): the target's
        must change between two reads exactly when the model's does."""
        if rules.name not in _GENID_READS or not isinstance(outcome, Success) or len(args) < 2:
            return None
        ref = str(args[1])
        shown = _field_shown(outcome.value, "generation_id")
        vm = world.vms.get(ref)
        if vm is None or not isinstance(shown, str):
            return None
        modelled = str(vm["generation_id"])
        before = self._genids.get(ref)
        self._genids[ref] = (modelled, shown)
        if before is None or (before[0] == modelled) == (before[1] == shown):
            return None
        if before[0] == modelled:
            return Mismatch("field generation_id", f"changed from {before[1]} to {shown}")
        return Mismatch("field generation_id", f"still {shown}: xapi draws a fresh one")

    def _seed_mismatch(
        self, rules: AnswerRules, args: tuple[Value, ...], world: World, outcome: Outcome
    ) -> Mismatch | None:
        """A VM's mac_seed is drawn at random (its value compared by shape), but xapi draws a
        fresh one for each VM made, cloned or copied, and a snapshot keeps its VM's
        (xapi_vm_clone.ml ``replace_seed``): two VMs' seeds on the target are one exactly when
        the model's are."""
        if rules.name not in _SEED_READS or not isinstance(outcome, Success) or len(args) < 2:
            return None
        ref = str(args[1])
        vm, shown = world.vms.get(ref), _field_shown(outcome.value, "other_config")
        if (
            vm is None
            or not isinstance(shown, Mapping)
            or not isinstance(vm["other_config"], Mapping)
        ):
            return None
        modelled, seen = vm["other_config"].get("mac_seed"), shown.get("mac_seed")
        self._seeds.pop(ref, None)
        if not (isinstance(modelled, str) and isinstance(seen, str)) or seen == modelled:
            return None  # no seed, or one a client wrote (the model's own value): not drawn
        for other, (other_modelled, other_seen) in self._seeds.items():
            if other in world.vms and (other_modelled == modelled) != (other_seen == seen):
                name = self.refs.display(other)
                shared = "xapi draws a clone or copy a fresh one"
                how = (
                    f"{seen}, {name}'s too: {shared}"
                    if other_seen == seen
                    else (f"{seen}, not {name}'s {other_seen}: a snapshot keeps its VM's")
                )
                return Mismatch("other_config mac_seed", how)
        self._seeds[ref] = (modelled, seen)
        return None

    def _standing_mismatch(self, rules: AnswerRules, outcome: Outcome) -> Mismatch | None:
        """VM.get_all and get_all_records answer every VM (the database's rows), the control
        domain each host's record names among them (the comparison of the suite's own VMs
        leaves the pool's out; clients find a host's dom0 so)."""
        if rules.name not in _LISTINGS or not isinstance(outcome, Success):
            return None
        listed = outcome.value
        if not isinstance(listed, Mapping | Sequence):
            return None
        for ref, host in self._control_domains.items():
            if ref not in listed:
                return Mismatch(
                    "result", f"{ref}, the control domain of host {host!r}, is unlisted"
                )
        return None

    def _placement_mismatch(
        self, rules: AnswerRules, args: tuple[Value, ...], world: World, outcome: Outcome
    ) -> Mismatch | None:
        """A VM's resident_on is compared by shape (xapi picks among the hosts that can take
        it), but where the call named the host, or the VM's affinity host could take it, xapi
        puts it there: the target's must be that host while the model's is."""
        if rules.name not in _PLACEMENT_READS or not isinstance(outcome, Success) or len(args) < 2:
            return None
        ref = str(args[1])
        host, vm = self._placed.get(ref), world.vms.get(ref)
        shown = _field_shown(outcome.value, "resident_on")
        if host is None or vm is None or vm["resident_on"] != host or not isinstance(shown, str):
            return None
        if shown in (host, NULL_REF):
            return None
        how = f"{self.refs.display(shown)}, where xapi's is {self.refs.display(host)}"
        where = "field resident_on"
        return Mismatch(where, f"{how} (named by the call, or its affinity host)", exact=True)

    def _note_placements(self, method: str, before: World, after: World) -> None:
        """Remember, for each VM the step put on a host, that host when xapi's choice is
        predictable (``_placement_mismatch``), and forget it otherwise."""
        free = method.removeprefix("Async.") in _SERVER_PLACES
        for ref, vm in after.vms.items():
            old = before.vms.get(ref)
            host = vm["resident_on"]
            if old is None or host == old["resident_on"]:
                continue
            if host == NULL_REF or (free and server_chooses_host(before, ref)):
                self._placed.pop(ref, None)
            else:
                self._placed[ref] = str(host)

    def _predict(self, rules: AnswerRules, args: tuple[Value, ...]) -> list[_Expected]:
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        received = received_arguments(self.connection.target.protocol, rules.method, args)
        branches = apply(self.world, Call(rules.method, received, now))
        if not rules.is_async:
            return [_Expected(b.outcome, b.world) for b in branches]
        return [_through_task(b, keep=self.keep_tasks) for b in branches]

    def _send(self, rules: AnswerRules, args: tuple[Value, ...]) -> Answer:
        target = self.connection.target
        return send(
            target,
            rules,
            tuple(self.refs.to_target(a) for a in args),
            task_timeout=self.connection.task_timeout or target.settings.task_timeout,
            on_task_end=self.on_task_end,
            hosts=[str(self.refs.to_target(h)) for h in self.world.hosts],
            keep_task=self.keep_tasks,
        )

    def _match(
        self, rules: AnswerRules, expected: Sequence[_Expected], answer: Answer
    ) -> tuple[_Expected | None, Mismatch]:
        """The first acceptable answer the target's matches, else the most telling mismatch."""
        mismatches: list[tuple[_Expected, Mismatch]] = []
        for candidate in expected:
            mismatch = self._mismatch(rules, candidate, answer)
            if mismatch is None:
                return candidate, Mismatch("", "")
            mismatches.append((candidate, mismatch))
        if not mismatches:
            return None, Mismatch("outcome", "the model offers no answer")
        alike = [m for c, m in mismatches if _same_kind(c.outcome, answer.outcome)]
        return None, (alike or [mismatches[0][1]])[0]

    def _mismatch(
        self, rules: AnswerRules, candidate: _Expected, answer: Answer
    ) -> Mismatch | None:
        if candidate.via_task != answer.via_task:
            return Mismatch(
                "outcome",
                "xapi answers through the task" if candidate.via_task else "xapi answers at once",
            )
        return outcome_mismatch(
            self._own_only(rules.name, candidate.outcome),
            self._own_only(rules.name, answer.outcome),
            returns=rules.result if answer.via_task else rules.answer,
            result_field=rules.result_field,
            shape_only=shape_only_here(rules, self.world.facts),
            strictness=self.connection.strictness,
        )

    def _follow(
        self,
        rules: AnswerRules,
        args: tuple[Value, ...],
        chosen: _Expected,
        actual: Outcome,
        purpose: Purpose,
    ) -> None:
        before = self.world
        self._moved_to(chosen.world)
        self._note_placements(rules.name, before, self.world)
        if purpose is Purpose.STEP:
            logged = _logged(rules, args)
            self.log.append(
                replace(logged, result_ref=_result_ref(actual, self.refs), answer=actual)
            )
            for snapshot in snapshots_of_new_vms(before.vms, self.world.vms, self.refs):
                self.call("VM.get_snapshot_of", snapshot)  # binds the VM (_bind_results)

    def _moved_to(self, world: World) -> None:
        """Follow ``world``; remember which VMs' records the step changed, for check_state,
        and which message wrote each changed field (a divergence's cause)."""
        before = self.world.vms
        changed = [
            ref for ref, vm in world.vms.items() if (old := before.get(ref)) is not vm and old != vm
        ]
        self._touched.update(changed)
        for ref in [*changed, *(before.keys() - world.vms.keys())]:
            self._changed_by[ref] = self._current
        for ref in changed:
            old = before.get(ref, {})
            for name, value in world.vms[ref].items():
                if old.get(name, _ABSENT) != value:
                    self._writers[ref, name] = self._current
        self.world = world

    def written_by(self, vm: str, field: str = "") -> tuple[str, Cell | None] | None:
        """The message whose call last wrote ``field`` of ``vm`` in this example (without a
        field: last changed, made or destroyed the VM) and the cell it was called in; None
        when no call did."""
        return self._writers.get((vm, field)) if field else self._changed_by.get(vm)

    def _count(self, rules: AnswerRules, args: Sequence[Value]) -> Cell | None:
        """Count the call; returns its coverage cell when it has one."""
        self.connection.tally.steps += 1
        if rules.name.startswith("VM."):
            self.connection.tally.messages[rules.name] += 1
        vm_args = args[1:] if rules.takes_session else args
        if not rules.name.startswith("VM.") or not vm_args:
            return None
        vm = self.world.vms.get(str(vm_args[0]))
        if vm is None or self.refs.kind(str(vm_args[0])) != "vm":
            return None
        key = (rules.name, str(vm["power_state"]), vm_kind(vm))
        self.connection.tally.coverage[key] += 1
        return key

    def _count_client_cell(self, name: str, expected: Sequence[_Expected]) -> None:
        """Count a message of another class (``CLIENT_CELLS``) as accepted or refused, by what
        the model answers."""
        refused = all(isinstance(e.outcome, Failure) for e in expected)
        outcome = REFUSED if refused else ACCEPTED
        self.connection.tally.coverage[name, name.partition(".")[0], outcome] += 1

    def _bind_results(
        self,
        expected: Sequence[_Expected],
        actual: Outcome,
        returns: XType | None,
        args: Sequence[Value],
    ) -> None:
        """A new target ref in a successful answer is bound to the model ref a branch created;
        so is a VM a refused call made or named and its error names (``_bind_named_in_error``)."""
        if isinstance(actual, Failure):
            self._bind_named_in_error(expected, actual, args)
            return
        if returns is None or returns.kind != "ref":
            return
        target_ref = str(actual.value)
        if target_ref == NULL_REF or self.refs.knows_target(target_ref):
            return
        if returns.name in _STANDING_CLASSES:
            return
        for candidate in expected:
            value = candidate.outcome.value if isinstance(candidate.outcome, Success) else None
            if isinstance(value, str) and not self.refs.is_bound(value):
                self.refs.bind(value, target_ref, returns.name.lower())
                return
        if returns.name == "VM":
            self.strays.append(target_ref)

    def _bind_named_in_error(
        self, expected: Sequence[_Expected], actual: Failure, args: Sequence[Value]
    ) -> None:
        """A VM the call made before it refused (VM.revert remakes a destroyed VM from its
        snapshot, then a blocked operation refuses the revert) and the error names: its new
        target ref, at the error parameter where the model names the VM, is bound to it. So is
        a ref the call drew for a VM it then did not make (VM.create of a Suspended VM without
        its suspend image: VM_BAD_POWER_STATE names the ref the VM would have had), which
        neither world holds and the call was not sent."""
        for candidate in expected:
            outcome = candidate.outcome
            if not isinstance(outcome, Failure) or outcome.code != actual.code:
                continue
            for want, got in zip(outcome.params, actual.params, strict=False):
                drawn = want not in candidate.world.vms and want not in args
                if (
                    want != got
                    and (want in candidate.world.vms or drawn)
                    and want not in self.world.vms
                    and not self.refs.is_bound(want)
                    and got.startswith(REF_PREFIX)
                    and not self.refs.knows_target(got)
                ):
                    self.refs.bind(want, got, "vm")

    def _own_only(self, name: str, outcome: Outcome) -> Outcome:
        """A query over all VMs, cut down to the VMs this example created.

        On a shared target other clients (and the run's other workers) create and destroy VMs
        the model cannot follow; the suite judges only its own.
        """
        if name not in ALL_VM_QUERIES or not isinstance(outcome, Success):
            return outcome
        value = outcome.value
        if isinstance(value, Mapping):
            return Success({ref: record for ref, record in value.items() if self._own(ref)})
        if isinstance(value, Sequence) and not isinstance(value, str):
            return Success(tuple(ref for ref in value if isinstance(ref, str) and self._own(ref)))
        return outcome

    def _own(self, ref: str) -> bool:
        return self.refs.kind(ref) == "vm"

    # ---- divergences -------------------------------------------------------------------------

    def diverged(self, info: DivergenceInfo) -> NoReturn:
        """Raise the divergence a judge outside the harness found (a race no order explains):
        the example is off track, and a watcher of the harness notes it as one of its own.
        In a survey that goes on past it, it is noted and the example ends quietly."""
        self._unless_stopping()
        self._diverged = True
        self.off_track = True
        surveyor = self.connection.surveyor
        if surveyor is not None and surveyor(info):
            raise Desynced()
        divergence = Divergence(info)
        if self.connection.watch is not None:
            self.connection.watch.left(divergence)
        raise divergence

    def _diverge(
        self,
        rules: AnswerRules,
        args: tuple[Value, ...],
        expected: Sequence[_Expected],
        answer: Answer,
        mismatch: Mismatch,
        purpose: Purpose,
    ) -> Outcome:
        self._unless_stopping()
        call, outcomes = _logged(rules, args), tuple(e.outcome for e in expected)
        if purpose is Purpose.STATE:
            call, outcomes, answer = _field_view(call, outcomes, answer, mismatch)
        info = self._info(call, outcomes, answer, mismatch, purpose)
        waivers = self.connection.waivers
        waiver = waivers.match(info)
        self._diverged = True
        if waiver is None:
            expired = [w for w in waivers.expired() if w.covers(info)]
            if expired:
                note = f" (a waiver for this expired on {expired[0].expires.isoformat()})"
                info = replace(info, message=info.message + note)
            surveyor = self.connection.surveyor
            if surveyor is not None and surveyor(info):
                return self._resync(rules, args, expected, answer, purpose)
            self.off_track = True
            raise Divergence(info)
        self.connection.tally.record(
            replace(info, waived=True, waiver_reason=waiver.reason, waiver_expires=waiver.expires)
        )
        return self._step_past(expected, answer)

    def _unless_stopping(self) -> None:
        """An interrupt instead of a divergence once the run is stopping (nothing recorded)."""
        if self.connection.stopping():
            self.off_track = True
            raise KeyboardInterrupt

    def _step_past(self, expected: Sequence[_Expected], answer: Answer) -> Outcome:
        """Follow a waived answer where the model knows what follows it, else end the example.

        A failure leaves the target as it was; a success is followed when every model branch
        that also succeeds leads to the same world.
        """
        if answer.malformed is None and isinstance(answer.outcome, Failure):
            return answer.outcome
        worlds = [e.world for e in expected if isinstance(e.outcome, Success)]
        if answer.malformed is None and worlds and all(w == worlds[0] for w in worlds):
            self._moved_to(worlds[0])
            return answer.outcome
        self.off_track = True
        raise Desynced()

    def _resync(
        self,
        rules: AnswerRules,
        args: tuple[Value, ...],
        expected: Sequence[_Expected],
        answer: Answer,
        purpose: Purpose,
    ) -> Outcome:
        """Go on past a divergence from what the target shows.

        A record read adopts the target's record; a refusal leaves the state as it was; a
        success the model can follow (every succeeding branch leads to one world) is followed;
        otherwise the VMs the call names are read back from the target, as the importer reads
        them. Ends the example (``Desynced``) only when they cannot be read.
        """
        vms = [str(a) for a in args if isinstance(a, str) and self.refs.kind(a) == "vm"]
        if purpose is Purpose.STATE or answer.malformed is not None:
            self._reread(vms)
            return answer.outcome
        if isinstance(answer.outcome, Failure):
            return answer.outcome
        worlds = [e.world for e in expected if isinstance(e.outcome, Success)]
        if worlds and all(w == worlds[0] for w in worlds):
            self._moved_to(worlds[0])
        else:
            self._reread(vms)
        return answer.outcome

    def _reread(self, vms: Sequence[str]) -> None:
        """Replace the model's records of ``vms`` by what the target shows now (a VM it no
        longer has leaves the model). A field whose value the comparison finds equal keeps the
        model's (a uuid, a metrics ref or a MAC seed the target chose): the model learns what
        the target did, and no change the target did not make."""
        records = dict(self.world.vms)
        for ref in vms:
            try:
                raw = self.connection.target.call(
                    "VM.get_record", self.session, self.refs.to_target(ref)
                )
            except MalformedAnswer:  # the record cannot be read: the example cannot go on
                self.off_track = True
                raise Desynced() from None
            protocol = self.connection.target.protocol
            typed = answer_typed(raw, AnswerRules.of("VM.get_record").answer, protocol, "record")
            outcome = self.refs.outcome_to_model(typed.outcome)
            if isinstance(outcome, Failure):
                records.pop(ref, None)
            elif typed.malformed is None and isinstance(outcome.value, Mapping):
                records[ref] = frozen(_adopted(records.get(ref), outcome.value))
        self.world = replace(self.world, vms=MappingProxyType(records))
        self._seeds.clear()  # a record adopted may hold the target's seed: pairs start again

    def _cause(
        self, call: LoggedCall, mismatch: Mismatch, purpose: Purpose, *, malformed: bool
    ) -> tuple[str, Cell | None, str]:
        """The message whose call made the wrong state or answer, its cell, and the field when
        a field is what differs: for a field (a record read, a getter, a query that returns
        records or finds VMs by a field) the call that last wrote it; for a wrongly typed or
        malformed answer, and any other, the call itself."""
        here = (call.method, self._current[1] if purpose is Purpose.STEP else None, "")
        if malformed:
            return here
        if "missing from the record" in str(mismatch):
            return ("VM.get_record", None, "")
        vm, name = self._field_read(call, mismatch, purpose)
        written = self._writers.get((vm, name))
        if written is None:
            return here
        return (written[0], written[1], name)

    def _field_read(
        self, call: LoggedCall, mismatch: Mismatch, purpose: Purpose
    ) -> tuple[str, str]:
        """(VM, field) a read diverges on, as far as the call and the mismatch name them."""
        first = str(call.args[0]) if call.args else ""
        in_record = re.search(r"(?:^field |\]\.|^result\.)(\w+)", mismatch.where)
        if call.method in ("VM.get_all_records", "VM.get_all_records_where") and in_record:
            shown = re.search(r"\['([^']+)'\]", mismatch.where)
            named = shown.group(1) if shown else ""
            vm = next((r for r in self.refs.bound("vm") if named in (r, self.refs.name(r))), "")
            return vm, in_record.group(1)
        if call.method == "VM.get_by_name_label":  # the VM found, or the one that was not
            named = set(re.findall(r"'([^']+)'", str(mismatch)))
            owners = [r for r in self.suite_vms() if self.world.vms[r]["name_label"] == first]
            owners += [r for r in self.refs.bound("vm") if {r, self.refs.name(r)} & named]
            return (owners[0] if owners else "", "name_label")
        if purpose is Purpose.STATE or call.method == "VM.get_record":
            return first, in_record.group(1) if in_record else ""
        name = call.method.removeprefix("VM.get_")
        return (first, name) if name != call.method else ("", "")

    def _info(
        self,
        call: LoggedCall,
        expected: tuple[Outcome, ...],
        answer: Answer,
        mismatch: Mismatch,
        purpose: Purpose,
    ) -> DivergenceInfo:
        display_args = tuple(self._display(a) for a in call.args)
        text = _call_text(call.method, display_args)
        shown_actual = _outcome_text(self.refs.display_outcome(answer.outcome))
        shown_expected = " or ".join(_outcome_text(self.refs.display_outcome(e)) for e in expected)
        area_kind = "async" if answer.via_task and purpose is Purpose.STEP else purpose.value
        if purpose is Purpose.STATE and "allowed_operations" in mismatch.where:
            area_kind = "allowed_operations"
        message = (
            f"[{self.area}] {text}: {self.refs.display_text(str(mismatch))}. "
            f"The target answered {shown_actual}; xapi answers {shown_expected}"
        )
        cause, cell, field_name = self._cause(
            call, mismatch, purpose, malformed=answer.malformed is not None
        )
        method = call.method
        if field_name and cause != call.method:  # one finding with the record showing it stale
            area_kind = area_kind if area_kind == "allowed_operations" else "state"
            method = f"VM.get_{field_name}"
        return DivergenceInfo(
            cause=cause,
            cell=cell,
            method=method,
            params=display_args,
            expected=tuple(self.refs.display_outcome(e) for e in expected),
            actual=self.refs.display_outcome(answer.outcome),
            area=self.area,
            kind=area_kind,
            message=message,
            reproducer=self._finding_reproducer(call, expected, text, answer, mismatch),
            reason=self.refs.display_text(str(mismatch)),
            calls=(*self.shown_calls(), (text, self.refs.display_outcome(answer.outcome))),
        )

    def shown_calls(self) -> list[tuple[str, Outcome | None]]:
        """The example's calls so far as (text, answer), in display form (passwords left out)."""
        return [
            (
                "session.login_with_password(…)"
                if call.method == LOGIN
                else _call_text(call.method, tuple(self._display(a) for a in call.args)),
                None if call.answer is None else self.refs.display_outcome(call.answer),
            )
            for call in self.log
        ]

    def _display(self, value: Value) -> Value:
        """``value`` with suite refs as short names and the accounts' passwords masked."""
        secrets = {login.account.password for login in self.connection.logins()} - {""}
        shown = self.refs.display(value)
        return "<password>" if isinstance(shown, str) and shown in secrets else shown

    def _finding_reproducer(
        self,
        call: LoggedCall,
        expected: tuple[Outcome, ...],
        text: str,
        answer: Answer,
        mismatch: Mismatch,
    ) -> str:
        """The script of a finding: the call's answer judged, or, when the finding is its
        task's record (``Answer.task_problem``), that record as the script reads it."""
        if not answer.task_problem:
            return self._reproducer(call, expected, text, exact=mismatch.exact)
        sync = call.method.removeprefix("Async.")
        final = replace(call, method=TASK_RECORD, args=(sync, *call.args))
        wanted = Success({"task of": call.method})
        return self._reproducer(final, (wanted,), f"the task of {text}: {mismatch.where}")

    def _reproducer(
        self,
        final: LoggedCall,
        expected: tuple[Outcome, ...],
        text: str,
        steps: Sequence[LoggedCall] | None = None,
        *,
        exact: bool = False,
    ) -> str:
        """The script replaying ``steps`` (the example's calls unless given), then ``final``
        (its answer judged exactly when ``exact``: ``Mismatch.exact``)."""
        steps = self.log if steps is None else steps
        names = {ref: name for ref in self._named_refs() if (name := self.refs.name(ref))}
        names[self.session] = "session"
        own_vms = None
        if final.method in ALL_VM_QUERIES:  # judged as the harness judges it: own VMs only
            expected = tuple(self._own_only(final.method, e) for e in expected)
            own_vms = [name for ref, name in names.items() if self._own(ref)]
        used = {call.session for call in [*steps, final]}
        roles = [
            RoleLogin(
                f"session_{role.replace('-', '_')}",
                login.account.name,
                role,
                self.connection.role_password_envs.get(role, ""),
            )
            for role, login in self.connection.roles.items()
            if login.session in used
        ]
        for role in roles:
            names[self.connection.roles[role.role].session] = role.variable
        target = self.connection.target
        return render_reproducer(
            title=text,
            steps=steps,
            final=final,
            expected=expected,
            names=names,
            roles=roles,
            display=text,
            url=target.url,
            user=self.connection.root.account.name,
            password_env=self.connection.password_env,
            protocol=target.protocol,
            strictness=self.connection.strictness,
            exact=exact,
            own_vms=own_vms,
        )

    def event_reproducer(
        self, steps: Sequence[LoggedCall], final: LoggedCall, expected: Outcome, text: str
    ) -> str:
        """The script of an event finding: ``steps`` (the example's calls with the
        subscription's catch-ups among them), then the event call ``final``, judged against
        ``expected`` (``conformance.reproduce.verdict``)."""
        return self._reproducer(final, (expected,), text, steps)

    def _named_refs(self) -> list[str]:
        return [call.result_ref for call in self.log if call.result_ref]


def _through_task(branch: Branch, *, keep: bool = False) -> _Expected:
    """A model branch of an ``Async.`` call as the client sees it once the task ends: the task
    destroyed, or with ``keep`` left and named."""
    if isinstance(branch.outcome, Failure):
        return _Expected(branch.outcome, branch.world)
    task_ref = str(branch.outcome.value)
    task = branch.world.tasks[task_ref]
    outcome: Outcome = (
        Failure(task.error_info[0], task.error_info[1:])
        if task.error_info
        else Success(task.result.value if isinstance(task.result, Encoded) else task.result)
    )
    if keep:
        return _Expected(outcome, branch.world, via_task=True, task=task_ref)
    tasks = {k: v for k, v in branch.world.tasks.items() if k != task_ref}
    return _Expected(outcome, replace(branch.world, tasks=tasks), via_task=True)


def _field_view(
    call: LoggedCall, expected: tuple[Outcome, ...], answer: Answer, mismatch: Mismatch
) -> tuple[LoggedCall, tuple[Outcome, ...], Answer]:
    """A record that differs in one field, shown as that field's getter (what a reproducer can
    compare exactly; uuids and other shape-only fields stay out of it)."""
    name = re.match(r"field (\w+)", mismatch.where)
    actual = answer.outcome
    if name is None or answer.malformed or not isinstance(actual, Success):
        return call, expected, answer
    field_name = name.group(1)
    shown = tuple(_field_of(e, field_name) for e in expected)
    getter = replace(call, method=f"VM.get_{field_name}")
    return getter, shown, replace(answer, outcome=_field_of(actual, field_name))


def _field_shown(value: Value, name: str) -> Value | None:
    """Field ``name`` of a VM read's answer: the record's, or the getter's value itself."""
    return value.get(name) if isinstance(value, Mapping) else value


def _field_of(outcome: Outcome, name: str) -> Outcome:
    if isinstance(outcome, Success) and isinstance(outcome.value, Mapping):
        return Success(outcome.value.get(name, "<missing>"))
    return outcome


def _logged(rules: AnswerRules, args: tuple[Value, ...]) -> LoggedCall:
    """The call as the reproducer replays it: session apart, unless sent raw."""
    if rules.takes_session and args:
        return LoggedCall(rules.method, args[1:], str(args[0]))
    return LoggedCall(rules.method, args, "")


def _same_kind(expected: Outcome, actual: Outcome) -> bool:
    return isinstance(expected, Failure) == isinstance(actual, Failure)


def _adopted(model: Mapping[str, Value] | None, shown: Mapping[str, Value]) -> dict[str, Value]:
    """The model's record ``model`` with the target's values, ``shown``, of the fields that
    differ by the comparison's rules (all of ``shown`` for a VM the model does not hold)."""
    if model is None:
        return dict(shown)
    differing = record_mismatches(model, shown)
    return {**model, **{name: shown[name] for name in differing if name in shown}}


def _result_ref(outcome: Outcome, refs: RefMap) -> str | None:
    """The suite ref a successful call returned, if it names one."""
    if isinstance(outcome, Success) and isinstance(outcome.value, str) and refs.name(outcome.value):
        return outcome.value
    return None


def _call_text(method: str, args: tuple[Value, ...]) -> str:
    return f"{method}({', '.join(_short(a) for a in args)})"


def _short(value: Value) -> str:
    text = (
        repr(value)
        if not isinstance(value, str) or not value.startswith(("vm", "task", "session"))
        else value
    )
    return text if len(text) <= 80 else text[:77] + "..."


def _outcome_text(outcome: Outcome) -> str:
    if isinstance(outcome, Failure):
        return f"{outcome.code} {list(outcome.params)}"
    return f"success {_short(outcome.value)}"
