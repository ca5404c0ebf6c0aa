"""The harness: every call goes to the model and the target side by side, and is compared.

The model's acceptable branches decide; the harness follows the branch the target took. A call
no branch accepts is a ``Divergence``, carrying the example's calls as a runnable reproducer.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from conformance.compare import (
    SHAPE_ONLY_RESULTS,
    Strictness,
    outcome_mismatch,
    record_mismatches,
    typed_outcome,
)
from conformance.divergence import Divergence, DivergenceInfo
from conformance.errors import TargetError
from conformance.importer import Login, import_world
from conformance.refs import RefMap
from conformance.reproducer import LOGIN, LoggedCall, RoleLogin, render_reproducer
from conformance.strategies import RUN_TAG
from conformance.targets.base import Target
from conformance.waivers import Waivers
from conformance.wire import jsonrpc, parse_value_text, xmlrpc
from models.catalogue import MessageKind, kind_of
from models.checks import driver_variants, op_context
from models.operations import allowed_operations, is_default_template
from models.outcome import Encoded, Failure, Outcome, Success, Value
from models.records import read_record
from models.rpc import resolve
from models.schema import XType
from models.transition import Branch, Call
from models.world import NULL_REF, Facts, World

__all__ = ["Connection", "Harness", "RunTally", "destroy_suite_vm", "sweep_run_vms", "vm_kind"]

ALL_VM_QUERIES = frozenset({"VM.get_all", "VM.get_all_records", "VM.get_by_name_label"})
"""Queries whose answers include every VM on the target, the suite's or not."""

RAW_SESSION = ""
"""The session marker of a logged call whose arguments already include everything sent."""
TASK_WAIT_S = 600.0


@dataclass
class RunTally:
    """What a test session accumulates: examples, steps, coverage cells, divergences."""

    examples: int = 0
    steps: int = 0
    coverage: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    divergences: list[DivergenceInfo] = field(default_factory=list)
    messages: Counter[str] = field(default_factory=Counter)


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

    def logins(self) -> tuple[Login, ...]:
        """root first, then one login per role."""
        return (self.root, *self.roles.values())


def destroy_suite_vm(target: Target, session: str, ref: str) -> None:
    """Undo what could stop a suite VM's destruction (blocks, template flags), then destroy it.

    Only ever called with refs the suite created; failures are ignored (the VM may be gone).
    """
    for method, args in (
        ("VM.set_blocked_operations", ({},)),
        ("VM.remove_from_other_config", ("default_template",)),
        ("VM.set_is_a_template", (False,)),
        ("VM.hard_shutdown", ()),
        ("VM.destroy", ()),
    ):
        with contextlib.suppress(TargetError):
            target.call(method, session, ref, *args)


def sweep_run_vms(target: Target, session: str, run_id: str) -> list[str]:
    """Destroy every VM tagged with this run's id that is still there; returns their refs."""
    records = target.call("VM.get_all_records", session)
    if not isinstance(records, Success) or not isinstance(records.value, Mapping):
        return []
    leftovers = [str(ref) for ref, record in records.value.items() if _tagged(record, run_id)]
    for ref in leftovers:
        destroy_suite_vm(target, session, ref)
    return leftovers


def _tagged(record: Value, run_id: str) -> bool:
    """Tagged by this run: the tag itself, or a worker's tag under it (``run_id.gw0``)."""
    if not isinstance(record, Mapping):
        return False
    other = record.get("other_config")
    tag = other.get(RUN_TAG) if isinstance(other, Mapping) else None
    return isinstance(tag, str) and (tag == run_id or tag.startswith(f"{run_id}."))


def vm_kind(vm: Mapping[str, Value]) -> str:
    """plain, template, default_template, snapshot or control_domain."""
    if vm["is_control_domain"] is True:
        return "control_domain"
    if vm["is_a_snapshot"] is True:
        return "snapshot"
    if vm["is_a_template"] is True:
        return "default_template" if is_default_template(vm) else "template"
    return "plain"


class Harness:
    """One example's view: the model world, the ref map, the calls made, the VMs to clean up."""

    def __init__(self, connection: Connection, area: str) -> None:
        self.connection = connection
        self.area = area
        self.refs = RefMap()
        self.log: list[LoggedCall] = []
        self.strays: list[str] = []
        self.world: World = self._import()
        self.desynced = False

    # ---- set-up and clean-up ---------------------------------------------------------------

    def _import(self) -> World:
        connection = self.connection
        salt = f"model-{connection.run_id}-{connection.tally.examples}"
        world = import_world(connection.target, connection.logins(), connection.facts, salt)
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

    def teardown(self) -> None:
        """Destroy every VM this example created on the target (never anything else)."""
        target_refs = [str(self.refs.to_target(ref)) for ref in self._created_model_refs()]
        for ref in [*reversed(target_refs), *self.strays]:
            destroy_suite_vm(self.connection.target, self.session, ref)

    def _created_model_refs(self) -> list[str]:
        return [
            call.result_ref
            for call in self.log
            if call.result_ref and (self.refs.name(call.result_ref) or "").startswith("vm")
        ]

    # ---- the side-by-side call ---------------------------------------------------------------

    def call(self, method: str, *args: Value, session: str | None = None) -> Outcome:
        """Make ``method(session, *args)`` on both sides; follow the target's branch or diverge."""
        session_ref = session or self.session
        self._count(method, args)
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        branches = _apply(
            self.world, Call(method, self._as_received(method, (session_ref, *args)), now)
        )
        target_args = tuple(self.refs.to_target(a) for a in args)
        raw = self.connection.target.call(method, self.refs.to_target(session_ref), *target_args)
        returns = _returns(method)
        actual = typed_outcome(raw, returns)
        self._bind_results(branches, actual, returns)
        return self._follow(method, args, session_ref, branches, actual)

    def raw_call(self, method: str, args: tuple[Value, ...]) -> Outcome:
        """A call whose argument list is sent exactly as given (RPC-layer tests: wrong counts)."""
        self._count(method, args[1:])
        branches = _apply(self.world, Call(method, self._as_received(method, args)))
        target_args = [self.refs.to_target(a) for a in args]
        returns = _returns(method)
        actual = typed_outcome(self.connection.target.call(method, *target_args), returns)
        self._bind_results(branches, actual, returns)
        return self._follow(method, args, RAW_SESSION, branches, actual)

    def _as_received(self, method: str, args: tuple[Value, ...]) -> tuple[object, ...]:
        """The arguments as a server decodes them after the wire (int64 travels as a string
        over XML-RPC, so an int given for a string parameter arrives as a valid string)."""
        return received_arguments(self.connection.target.protocol, method, args)

    def _count(self, method: str, args: Sequence[Value]) -> None:
        self.connection.tally.steps += 1
        if method.removeprefix("Async.").startswith("VM."):
            self.connection.tally.messages[method.removeprefix("Async.")] += 1
        if not method.removeprefix("Async.").startswith("VM.") or not args:
            return
        vm = self.world.vms.get(str(args[0]))
        if vm is not None and self.refs.name(str(args[0])):
            key = (method.removeprefix("Async."), str(vm["power_state"]), vm_kind(vm))
            self.connection.tally.coverage[key] += 1

    def _bind_results(
        self, branches: Sequence[Branch], actual: Outcome, returns: XType | None
    ) -> None:
        if not isinstance(actual, Success) or returns is None or returns.kind != "ref":
            return
        target_ref = str(actual.value)
        if target_ref == NULL_REF or self.refs.knows_target(target_ref):
            return
        for branch in branches:
            value = branch.outcome.value if isinstance(branch.outcome, Success) else None
            if isinstance(value, str) and not self.refs.is_bound(value):
                self.refs.bind(value, target_ref, returns.name.lower())
                return
        if returns.name == "VM":
            self.strays.append(target_ref)

    def _follow(
        self,
        method: str,
        args: tuple[Value, ...],
        session: str,
        branches: Sequence[Branch],
        raw_actual: Outcome,
    ) -> Outcome:
        actual = self._own_only(method, self.refs.outcome_to_model(raw_actual))
        for branch in branches:
            expected = self._own_only(method, branch.outcome)
            if _matches(expected, actual, method, self.connection.strictness):
                self.world = branch.world
                self.log.append(
                    LoggedCall(method, args, session, _result_ref(actual, self.refs), actual)
                )
                return actual
        call = LoggedCall(method, args, session)
        self._diverge(call, tuple(b.outcome for b in branches), actual, "outcome", unordered=False)
        return actual

    def _own_only(self, method: str, outcome: Outcome) -> Outcome:
        """A query over all VMs, cut down to the VMs this example created.

        On a shared target other clients (and the run's other workers) create and destroy VMs
        the model cannot follow; the suite judges only its own.
        """
        if method not in ALL_VM_QUERIES or not isinstance(outcome, Success):
            return outcome
        value = outcome.value
        if isinstance(value, Mapping):
            return Success({ref: record for ref, record in value.items() if self._own(ref)})
        if isinstance(value, Sequence) and not isinstance(value, str):
            return Success(tuple(ref for ref in value if isinstance(ref, str) and self._own(ref)))
        return outcome

    def _own(self, ref: str) -> bool:
        return (self.refs.name(ref) or "").startswith("vm")

    # ---- divergences -----------------------------------------------------------------------

    def _diverge(
        self,
        call: LoggedCall,
        expected: tuple[Outcome, ...],
        actual: Outcome,
        kind: str,
        *,
        unordered: bool,
    ) -> None:
        display_args = tuple(self.refs.display(a) for a in call.args)
        text = _call_text(call.method, display_args)
        shown_expected = " or ".join(_outcome_text(self.refs.display_outcome(e)) for e in expected)
        message = (
            f"[{self.area}] {text}: the target answered {_outcome_text(self.refs.display_outcome(actual))}, "
            f"xapi answers {shown_expected}"
        )
        info = DivergenceInfo(
            method=call.method,
            params=display_args,
            expected=tuple(self.refs.display_outcome(e) for e in expected),
            actual=self.refs.display_outcome(actual),
            area=self.area,
            kind=kind,
            message=message,
            reproducer=self._reproducer(call, expected, text, unordered),
            calls=(*self._shown_calls(), (text, self.refs.display_outcome(actual))),
        )
        waiver = self.connection.waivers.match(info)
        if waiver is not None:
            self.connection.tally.divergences.append(
                replace(info, waived=True, waiver_reason=waiver.reason)
            )
            self.desynced = True
            return
        raise Divergence(info)

    def _reproducer(
        self, final: LoggedCall, expected: tuple[Outcome, ...], text: str, unordered: bool
    ) -> str:
        names = {ref: name for ref in self._named_refs() if (name := self.refs.name(ref))}
        names[self.session] = "session"
        used = {call.session for call in [*self.log, final]}
        roles = [
            RoleLogin(f"session_{role.replace('-', '_')}", login.account.name, role)
            for role, login in self.connection.roles.items()
            if login.session in used
        ]
        for role in roles:
            names[self.connection.roles[role.role].session] = role.variable
        target = self.connection.target
        return render_reproducer(
            title=text,
            steps=self.log,
            final=final,
            expected=expected,
            names=names,
            roles=roles,
            display=text,
            unordered=unordered,
            url=target.url,
            user=self.connection.root.account.name,
            protocol=target.protocol,
            strictness=self.connection.strictness,
        )

    def _shown_calls(self) -> list[tuple[str, Outcome | None]]:
        """The example's calls so far as (text, answer), in display form (passwords left out)."""
        return [
            (
                "session.login_with_password(…)"
                if call.method == LOGIN
                else _call_text(call.method, tuple(self.refs.display(a) for a in call.args)),
                None if call.answer is None else self.refs.display_outcome(call.answer),
            )
            for call in self.log
        ]

    def _named_refs(self) -> list[str]:
        return [call.result_ref for call in self.log if call.result_ref]

    # ---- state checks ------------------------------------------------------------------------

    def check_state(self) -> None:
        """Compare every suite VM's record on the target with the model's, field by field."""
        if self.desynced:
            return
        for ref in self._created_model_refs():
            if ref in self.world.vms:
                self._check_vm(ref)

    def _check_vm(self, ref: str) -> None:
        target = self.connection.target
        raw = target.call("VM.get_record", self.session, self.refs.to_target(ref))
        actual = self.refs.outcome_to_model(typed_outcome(raw, XType("record", name="VM")))
        expected = read_record(self.world, ref)
        if not isinstance(actual, Success) or not isinstance(actual.value, Mapping):
            self._diverge(
                LoggedCall("VM.get_record", (ref,), self.session),
                (Success(expected),),
                actual,
                "state",
                unordered=False,
            )
            return
        candidates = self._allowed_candidates(ref)
        reported = actual.value.get("allowed_operations", ())
        if isinstance(reported, Sequence) and {str(op) for op in reported} in candidates:
            expected["allowed_operations"] = reported
        differing = record_mismatches(expected, actual.value)
        if differing:
            name = differing[0]
            kind = "allowed_operations" if name == "allowed_operations" else "state"
            final = LoggedCall(f"VM.get_{name}", (ref,), self.session)
            self._diverge(
                final,
                (Success(expected[name]),),
                Success(actual.value.get(name, "<missing>")),
                kind,
                unordered=True,
            )

    def _allowed_candidates(self, ref: str) -> list[set[str]]:
        """Acceptable allowed_operations: the stored set, and when guest drivers are unknown,
        the set each driver assumption gives (advisory field, recomputed by xapi as it sees the guest).
        """
        vm = self.world.vms[ref]
        ops = vm["allowed_operations"]
        stored = {str(op) for op in ops} if isinstance(ops, Sequence) else set()
        variants = driver_variants(self.world)
        if len(variants) == 1:
            return [stored]
        return [stored] + [
            set(allowed_operations(ref, vm, op_context(self.world, drivers=d))) for d in variants
        ]

    # ---- async ---------------------------------------------------------------------------------

    def call_async(self, method: str, *args: Value) -> Outcome:
        """``Async.<method>``: the task ref now, then the task's outcome compared when it ends."""
        sync = method.removeprefix("Async.")
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        received = self._as_received(f"Async.{sync}", (self.session, *args))
        branches = _apply(self.world, Call(f"Async.{sync}", received, now))
        raw = self.connection.target.call(
            f"Async.{sync}", self.session, *(self.refs.to_target(a) for a in args)
        )
        self._count(f"Async.{sync}", args)
        if isinstance(raw, Failure) or any(isinstance(b.outcome, Failure) for b in branches):
            return self._follow(f"Async.{sync}", args, self.session, branches, raw)
        task_target = str(raw.value)
        final = self._await_task(task_target)
        return self._follow_task(sync, args, branches, task_target, final)

    def _await_task(self, task_ref: str) -> Outcome:
        target = self.connection.target
        deadline = time.monotonic() + (TASK_WAIT_S := self.connection.target.settings.task_timeout)
        while True:
            status = target.call("task.get_status", self.session, task_ref)
            if not isinstance(status, Success) or status.value != "pending":
                break
            if time.monotonic() > deadline:
                raise TargetError(f"task of an Async call still pending after {TASK_WAIT_S:g}s")
            time.sleep(0.05)
        record = target.call("task.get_record", self.session, task_ref)
        target.call("task.destroy", self.session, task_ref)
        if not isinstance(record, Success) or not isinstance(record.value, Mapping):
            return Failure("HANDLE_INVALID", ("task", task_ref))
        if record.value.get("status") == "success":
            return Success(parse_value_text(str(record.value.get("result", ""))))  # type: ignore[arg-type]
        info = record.value.get("error_info", ())
        codes = [str(x) for x in info] if isinstance(info, Sequence) else []
        return Failure(codes[0] if codes else "", tuple(codes[1:]))

    def _follow_task(
        self,
        sync: str,
        args: tuple[Value, ...],
        branches: Sequence[Branch],
        task_target: str,
        final: Outcome,
    ) -> Outcome:
        returns = _returns(sync)
        expected: list[tuple[Outcome, World]] = []
        for branch in branches:
            task = branch.world.tasks[str(branch.outcome.value)]  # type: ignore[union-attr]
            outcome: Outcome = (
                Failure(task.error_info[0], task.error_info[1:])
                if task.error_info
                else Success(task.result.value if isinstance(task.result, Encoded) else task.result)
            )
            world = replace(
                branch.world, tasks={k: v for k, v in branch.world.tasks.items() if k != task.ref}
            )
            expected.append((outcome, world))
        typed = typed_outcome(final, returns)
        self._bind_results([Branch(o, w) for o, w in expected], typed, returns)
        actual = self.refs.outcome_to_model(typed)
        for outcome, world in expected:
            if _matches(outcome, actual, sync, self.connection.strictness):
                self.world = world
                self.log.append(
                    LoggedCall(
                        f"Async.{sync}", args, self.session, _result_ref(actual, self.refs), actual
                    )
                )
                return actual
        self._diverge(
            LoggedCall(f"Async.{sync}", args, self.session),
            tuple(o for o, _ in expected),
            actual,
            "async",
            unordered=False,
        )
        return actual


def received_arguments(protocol: str, method: str, args: tuple[Value, ...]) -> tuple[object, ...]:
    """``args`` after a round trip through the protocol's codec, as the server sees them."""
    if protocol == "jsonrpc":
        return jsonrpc.decode_request(jsonrpc.encode_request(method, args, 1)).params
    return xmlrpc.decode_request(xmlrpc.encode_request(method, args))[1]


def _result_ref(outcome: Outcome, refs: RefMap) -> str | None:
    """The suite ref a successful call returned, if it names one."""
    if isinstance(outcome, Success) and isinstance(outcome.value, str) and refs.name(outcome.value):
        return outcome.value
    return None


def _apply(world: World, call: Call) -> tuple[Branch, ...]:
    from models.rpc import apply

    return apply(world, call)


def _returns(method: str) -> XType | None:
    _name, entry, is_async = resolve(method)
    if entry is None:
        return None
    return XType("ref", name="task") if is_async else entry.message.returns


def _matches(expected: Outcome, actual: Outcome, method: str, strictness: Strictness) -> bool:
    """Whether ``actual`` is acceptable for ``expected``, with the method's comparison rules."""
    name, entry, is_async = resolve(method)
    returns = _returns(method)
    result_field, shape_only = None, False
    if entry is not None and not is_async and name.startswith("VM."):
        kind, field_name = kind_of(entry.message)
        result_field = field_name if kind == MessageKind.GET_FIELD else None
        shape_only = entry.message.name in SHAPE_ONLY_RESULTS
    mismatch = outcome_mismatch(
        expected,
        actual,
        returns=returns,
        result_field=result_field,
        shape_only=shape_only,
        strictness=strictness,
    )
    return mismatch is None


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
