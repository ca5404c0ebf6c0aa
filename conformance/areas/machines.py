"""Hypothesis state machines, one per area, sharing the VM bundle and the state invariant.

The bundle holds only VMs that exist: a VM enters it when a create or copy succeeds and leaves
it when a destroy succeeds (``consumes``), so rules never draw a placeholder and never return
early. Every rule goes through the harness, which compares the target with the model and follows
the branch the target took.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from conformance.areas.events import IDLE_WAIT_S, EventWatch
from conformance.areas.strategies import (
    BAD_REFS,
    LABELS,
    UNWRITTEN_REFS,
    blocked_maps,
    memory_tuples,
    value_of,
    vm_record,
    vm_records,
    where_expressions,
)
from conformance.areas.sweeps import (
    BOGUS_UUID,
    LIFECYCLE_MESSAGES,
    picked,
    pool_templates,
    query_pool,
)
from conformance.engine.harness import Connection, Harness
from conformance.errors import TargetError
from conformance.judge.refs import RUN_TAG
from conformance.races.concurrency import (
    Race,
    cancelled_races,
    hard_races,
    races,
    run_race,
    same_call_races,
    watched_races,
)
from conformance.reproduce.reproducer import LOGIN
from models import catalogue
from models.catalogue import MessageKind, kind_of
from models.operations import VM_OPERATIONS
from models.outcome import Outcome, Success, Value
from models.schema import Message, XType

__all__ = [
    "AREAS",
    "AsyncMachine",
    "ConcurrencyMachine",
    "EventsMachine",
    "FieldsMachine",
    "LifecycleMachine",
    "MemoryMachine",
    "OperationsMachine",
    "RolesMachine",
    "RpcMachine",
    "TemplatesMachine",
]

HOST_LIFECYCLE = ("start_on", "resume_on", "pool_migrate")
COPIES = ("clone", "copy", "snapshot", "checkpoint")
LIFECYCLE = tuple(
    m
    for m in LIFECYCLE_MESSAGES
    if m not in (*HOST_LIFECYCLE, *COPIES, "destroy", "provision", "revert", "set_is_a_template")
)
"""Power operations that take the VM alone (or start_paused/force): the machines' own rules."""
_VM = XType("ref", name="VM")
WRONG_TYPED: tuple[Value, ...] = ("yes", True, 7, 1.5, (), {"k": "v"})
"""Values to put where another type is declared (an int reaches XML-RPC servers as a string)."""


def _generic_messages() -> tuple[Message, ...]:
    kinds = {
        MessageKind.GET_FIELD,
        MessageKind.SET_FIELD,
        MessageKind.MAP_ADD,
        MessageKind.MAP_REMOVE,
        MessageKind.SET_ADD,
        MessageKind.SET_REMOVE,
    }
    return tuple(
        m
        for m in catalogue.MESSAGES.values()
        if kind_of(m)[0] in kinds and m.params and m.params[0].type == _VM and not m.removed
    )


def _vm_messages() -> tuple[Message, ...]:
    return tuple(m for m in catalogue.MESSAGES.values() if m.params and m.params[0].type == _VM)


GENERIC_MESSAGES = _generic_messages()
NULL_REF = "OpaqueRef:NULL"
ROLES = ("pool-operator", "vm-power-admin", "vm-admin", "vm-operator", "read-only")
BLOCKABLE_OPS = st.sampled_from(LIFECYCLE) | st.sampled_from(VM_OPERATIONS)
"""Operations to block: lifecycle ones half the time, so a blocked call follows soon after."""
VM_MESSAGES = _vm_messages()
KEEPING_MESSAGES = tuple(m for m in VM_MESSAGES if m.name != "destroy")
"""VM messages that never destroy their VM: safe to send on a bundle VM that stays drawn."""
TYPED_MESSAGES = tuple(m for m in KEEPING_MESSAGES if len(m.params) >= 2)
"""Messages with a parameter after the VM, to send one of the wrong type."""


OTHER_CLASS_READS = (
    "VDI.get_by_uuid",
    "VDI.get_virtual_size",
    "VBD.get_record",
    "VBD.get_VM",
    "VIF.get_device",
    "network.get_by_uuid",
    "VM_metrics.get_memory_actual",
    "VM_guest_metrics.get_record",
)
"""Reads of classes a VM record names whose objects the suite never makes (xapi's database
answers them for any class)."""

VmResult = str | MultipleResults[str]
ORIGINATORS = st.sampled_from(["xapi-conformance", "", "XenCenter"]) | LABELS
WRONG_PASSWORDS = st.sampled_from(["", "xapi-conformance-wrong-password", "-wrong"])
"""Wrong passwords: empty, another, or the right one with a suffix (``-wrong``). Each is a
secret the reports mask (what a login sends is), so none is a short common text."""


class ConformanceMachine(RuleBasedStateMachine):
    """Common ground: a harness per example, a bundle of suite VMs, the state invariant."""

    area = "lifecycle"
    connection: Connection  # given to __init__, or set on a subclass
    max_steps = 10**6
    """Steps per example at most, whatever the profile says."""

    vms = Bundle("vms")

    def __init__(self, connection: Connection | None = None) -> None:
        super().__init__()
        if connection is not None:
            self.connection = connection
        self.harness = Harness(self.connection, self.area)
        self.connection.tally.examples += 1

    def teardown(self) -> None:
        self.harness.finish()

    def _hosts(self) -> list[str]:
        return sorted(self.harness.world.hosts)

    @initialize(target=vms, record=vm_records())
    def first_vm(self, record: dict[str, Value]) -> VmResult:
        return self._create(record)

    @rule(target=vms, record=vm_records())
    def create(self, record: dict[str, Value]) -> VmResult:
        return self._create(record)

    def _create(self, record: dict[str, Value]) -> VmResult:
        tagged = self._run_tagged(record.get("other_config"))
        return self._made(self.harness.call("VM.create", {**record, "other_config": tagged}))

    def _run_tagged(self, other: object) -> dict[str, Value]:
        """A drawn other_config with the run's tag, which the run's closing sweep looks for."""
        return {**(other if isinstance(other, Mapping) else {}), RUN_TAG: self.connection.run_id}

    def _made(self, outcome: Outcome) -> VmResult:
        """The bundle entry of a call that may have made a VM: its ref where the model made
        it too, else nothing (a target that diverged, surveyed on, may name a VM the model
        never made, or none: ``''``)."""
        made = str(outcome.value) if isinstance(outcome, Success) else ""
        return made if made in self.harness.world.vms else multiple()

    @invariant()
    def records_agree(self) -> None:
        self.harness.check_state()


class CopyRules(ConformanceMachine):
    """Clone, copy, snapshot and checkpoint of whatever VMs the area has shaped."""

    @rule(
        target=ConformanceMachine.vms,
        vm=ConformanceMachine.vms,
        op=st.sampled_from(COPIES),
        name=LABELS,
    )
    def copy(self, vm: str, op: str, name: str) -> VmResult:
        sr: tuple[Value, ...] = (NULL_REF,) if op == "copy" else ()
        return self._made(self.harness.call(f"VM.{op}", vm, f"xapi-conformance {name}", *sr))

    @rule(vm=ConformanceMachine.vms)
    def pool_queries(self, vm: str) -> None:
        """Find VMs as clients do after whatever the example changed: by uuid (learnt from
        the target), by label, all refs and all records (the suite's VMs judged exactly)."""
        query_pool(self.harness, vm)

    @rule(target=ConformanceMachine.vms, vm=consumes(ConformanceMachine.vms))
    def destroy(self, vm: str) -> VmResult:
        self.harness.call("VM.destroy", vm)
        return vm if vm in self.harness.world.vms else multiple()


class LifecycleMachine(CopyRules):
    """Power operations in every state, on plain VMs, templates and snapshots."""

    area = "lifecycle"

    @rule(vm=ConformanceMachine.vms, op=st.sampled_from(LIFECYCLE), paused=st.booleans())
    def lifecycle(self, vm: str, op: str, paused: bool) -> None:
        args: tuple[Value, ...] = (paused, False) if op in ("start", "resume") else ()
        self.harness.call(f"VM.{op}", vm, *args)

    @rule(
        vm=ConformanceMachine.vms, op=st.sampled_from(HOST_LIFECYCLE), host_index=st.integers(0, 3)
    )
    def on_host(self, vm: str, op: str, host_index: int) -> None:
        host = self._hosts()[host_index % len(self._hosts())]
        args: tuple[Value, ...] = (host, {}) if op == "pool_migrate" else (host, False, False)
        self.harness.call(f"VM.{op}", vm, *args)

    @rule(target=ConformanceMachine.vms, vm=ConformanceMachine.vms)
    def revert(self, vm: str) -> VmResult:
        """VM.revert; a VM it makes again (its snapshot's VM was destroyed) joins the bundle."""
        before = set(self.harness.suite_vms())
        self.harness.call("VM.revert", vm)
        return multiple(*(r for r in self.harness.suite_vms() if r not in before))

    @rule(
        target=ConformanceMachine.vms,
        vm=consumes(ConformanceMachine.vms),
        op=st.sampled_from(["snapshot", "checkpoint"]),
    )
    def revert_orphaned(self, vm: str, op: str) -> VmResult:
        """Snapshot a VM, destroy the VM, revert to the snapshot: xapi makes the VM again
        (xapi_vm_snapshot.ml create_vm_from_snapshot), with a ref the harness learns from the
        snapshot's snapshot_of."""
        before = set(self.harness.suite_vms())
        snapshot = self.harness.call(f"VM.{op}", vm, "xapi-conformance orphan")
        if self.harness.world.vms[vm]["power_state"] in ("Running", "Paused"):
            self.harness.call("VM.hard_shutdown", vm)
        self.harness.call("VM.destroy", vm)
        if isinstance(snapshot, Success):
            self.harness.call("VM.revert", str(snapshot.value))
        return multiple(*(r for r in self.harness.suite_vms() if r not in before or r == vm))


class MemoryMachine(CopyRules):
    """Memory setters with ordered and disordered tuples, and the VCPU setters."""

    area = "memory"

    @rule(vm=ConformanceMachine.vms, memory=memory_tuples())
    def limits(self, vm: str, memory: tuple[int, int, int, int]) -> None:
        static_min, dynamic_min, dynamic_max, static_max = memory
        self.harness.call(
            "VM.set_memory_limits", vm, static_min, static_max, dynamic_min, dynamic_max
        )

    @rule(
        vm=ConformanceMachine.vms,
        memory=memory_tuples(),
        which=st.sampled_from(["dynamic", "static"]),
    )
    def ranges(self, vm: str, memory: tuple[int, int, int, int], which: str) -> None:
        low, high = (memory[1], memory[2]) if which == "dynamic" else (memory[0], memory[3])
        self.harness.call(f"VM.set_memory_{which}_range", vm, low, high)

    @rule(
        vm=ConformanceMachine.vms,
        memory=memory_tuples(),
        bound=st.sampled_from(["dynamic_min", "dynamic_max", "static_min", "static_max"]),
    )
    def single_bound(self, vm: str, memory: tuple[int, int, int, int], bound: str) -> None:
        self.harness.call(f"VM.set_memory_{bound}", vm, memory[1])

    @rule(vm=ConformanceMachine.vms, value=memory_tuples().map(lambda m: m[3]))
    def set_memory(self, vm: str, value: int) -> None:
        self.harness.call("VM.set_memory", vm, value)

    @rule(
        vm=ConformanceMachine.vms,
        count=st.integers(-1, 4),
        which=st.sampled_from(["set_VCPUs_max", "set_VCPUs_at_startup", "set_VCPUs_number_live"]),
    )
    def vcpus(self, vm: str, count: int, which: str) -> None:
        self.harness.call(f"VM.{which}", vm, count)

    @rule(vm=ConformanceMachine.vms, paused=st.booleans())
    def start(self, vm: str, paused: bool) -> None:
        self.harness.call("VM.start", vm, paused, False)

    @rule(vm=ConformanceMachine.vms)
    def stop(self, vm: str) -> None:
        self.harness.call("VM.hard_shutdown", vm)


class OperationsMachine(CopyRules):
    """blocked_operations edits and their effect, allowed_operations, assert_operation_valid."""

    area = "operations"

    @rule(
        vm=ConformanceMachine.vms,
        op=BLOCKABLE_OPS,
        value=st.sampled_from(["true", "x"]),
    )
    def block(self, vm: str, op: str, value: str) -> None:
        self.harness.call("VM.add_to_blocked_operations", vm, op, value)

    @rule(vm=ConformanceMachine.vms, data=st.data())
    def unblock(self, vm: str, data: st.DataObject) -> None:
        """Unblock an operation: half the time one the VM has blocked, so the edit shows."""
        blocked = self.harness.world.vms[vm]["blocked_operations"]
        keys = sorted(blocked) if isinstance(blocked, Mapping) else []
        from_blocked: bool = bool(keys) and data.draw(st.booleans(), label="a blocked one")
        op = data.draw(st.sampled_from(keys if from_blocked else list(VM_OPERATIONS)), label="op")
        self.harness.call("VM.remove_from_blocked_operations", vm, op)

    @rule(vm=ConformanceMachine.vms, blocked=blocked_maps())
    def replace_blocked(self, vm: str, blocked: dict[str, str]) -> None:
        self.harness.call("VM.set_blocked_operations", vm, blocked)

    @rule(vm=ConformanceMachine.vms, op=st.sampled_from(VM_OPERATIONS))
    def assert_valid(self, vm: str, op: str) -> None:
        self.harness.call("VM.assert_operation_valid", vm, op)

    @rule(vm=ConformanceMachine.vms, op=st.sampled_from(LIFECYCLE), paused=st.booleans())
    def lifecycle(self, vm: str, op: str, paused: bool) -> None:
        args: tuple[Value, ...] = (paused, False) if op in ("start", "resume") else ()
        self.harness.call(f"VM.{op}", vm, *args)


class TemplatesMachine(LifecycleMachine):
    """Templates, default templates and snapshots: making, cloning, refusing."""

    area = "templates"

    @rule(vm=ConformanceMachine.vms, flag=st.booleans())
    def template_flag(self, vm: str, flag: bool) -> None:
        self.harness.call("VM.set_is_a_template", vm, flag)

    @rule(vm=ConformanceMachine.vms)
    def mark_default(self, vm: str) -> None:
        self.harness.call("VM.add_to_other_config", vm, "default_template", "true")

    @rule(vm=ConformanceMachine.vms)
    def provision(self, vm: str) -> None:
        self.harness.call("VM.provision", vm)

    @rule(target=ConformanceMachine.vms, index=st.integers(0, 1), op=st.sampled_from(COPIES[:2]))
    def pick_template(self, index: int, op: str) -> VmResult:
        """A client's first step: a clone or copy of one of the pool's default templates, which
        the suite reads and copies but never changes (sweeps.pool_templates)."""
        templates = pool_templates(self.harness)
        if not templates:
            return multiple()
        copy = picked(self.harness, templates[index % len(templates)], op)
        return copy if copy != NULL_REF else multiple()

    @rule(index=st.integers(0, 1), op=st.sampled_from(VM_OPERATIONS))
    def ask_template(self, index: int, op: str) -> None:
        """VM.assert_operation_valid on one of the pool's default templates (changes nothing)."""
        templates = pool_templates(self.harness)
        if templates:
            self.harness.call("VM.assert_operation_valid", templates[index % len(templates)], op)

    @rule(vm=ConformanceMachine.vms)
    def refresh(self, vm: str) -> None:
        self.harness.call("VM.update_allowed_operations", vm)


class FieldsMachine(CopyRules):
    """Every generic getter, setter and map/set edit of the catalogue, with generated values."""

    area = "fields"

    @rule(vm=ConformanceMachine.vms, data=st.data(), message=st.sampled_from(GENERIC_MESSAGES))
    def generic(self, vm: str, data: st.DataObject, message: Message) -> None:
        args = [data.draw(value_of(p.type), label=p.name) for p in message.params[1:]]
        if message.wire_name == "VM.set_other_config":
            # the run tag stays: a run stopped before this VM's teardown leaves it to the sweep
            args[0] = self._run_tagged(args[0])
        self.harness.call(message.wire_name, vm, *args)

    @rule(vm=ConformanceMachine.vms, key=st.sampled_from(["k1", "k2", "folder"]), value=LABELS)
    def map_add(self, vm: str, key: str, value: str) -> None:
        self.harness.call("VM.add_to_other_config", vm, key, value)

    @rule(vm=ConformanceMachine.vms, tag=st.sampled_from(["a", "b"]), add=st.booleans())
    def tags(self, vm: str, tag: str, add: bool) -> None:
        self.harness.call("VM.add_tags" if add else "VM.remove_tags", vm, tag)

    @rule(vm=ConformanceMachine.vms, label=LABELS)
    def rename(self, vm: str, label: str) -> None:
        self.harness.call("VM.set_name_label", vm, label)

    @rule()
    def queries(self) -> None:
        self.harness.call("VM.get_by_name_label", "xapi-conformance none")

    @rule(vm=ConformanceMachine.vms, data=st.data(), records=st.booleans())
    def filtered(self, vm: str, data: st.DataObject, records: bool) -> None:
        """VM.get_all_records_where or get_all_where with an expression about ``vm``."""
        if vm not in self.harness.world.vms:
            return
        expr = data.draw(where_expressions(self.harness.world.vms[vm]), label="expr")
        self.harness.call("VM.get_all_records_where" if records else "VM.get_all_where", expr)


class RpcMachine(ConformanceMachine):
    """The RPC layer: unknown methods, parameter counts, argument types, bad refs, sessions."""

    area = "rpc"

    @rule(
        vm=ConformanceMachine.vms,
        message=st.sampled_from(VM_MESSAGES),
        drop=st.integers(0, 2),
        extra=st.integers(0, 2),
    )
    def wrong_count(self, vm: str, message: Message, drop: int, extra: int) -> None:
        args: list[Value] = [vm, *(neutral(p.type) for p in message.params[1:])]
        args = args[: max(0, len(args) - drop)] + ["extra"] * extra
        self.harness.raw_call(message.wire_name, (self.harness.session, *args))

    @rule(vm=ConformanceMachine.vms, message=st.sampled_from(KEEPING_MESSAGES), data=st.data())
    def any_arguments(self, vm: str, message: Message, data: st.DataObject) -> None:
        args = [data.draw(value_of(p.type), label=p.name) for p in message.params]
        if (
            message.params
            and message.params[0].type == _VM
            and data.draw(st.booleans(), label="real vm")
        ):
            args[0] = vm
        self.harness.call(message.wire_name, *args)

    @rule(vm=ConformanceMachine.vms, message=st.sampled_from(TYPED_MESSAGES), data=st.data())
    def wrong_type(self, vm: str, message: Message, data: st.DataObject) -> None:
        """One argument of another type than declared: xapi's unmarshaller refuses it first."""
        args: list[Value] = [vm, *(neutral(p.type) for p in message.params[1:])]
        index = data.draw(st.integers(1, len(args) - 1), label="argument")
        args[index] = data.draw(st.sampled_from(WRONG_TYPED), label="wrong value")
        self.harness.call(message.wire_name, *args)

    @rule(
        ref=BAD_REFS,
        message=st.sampled_from(["VM.get_record", "VM.start", "VM.destroy", "VM.get_name_label"]),
    )
    def bad_ref(self, ref: str, message: str) -> None:
        extra: tuple[Value, ...] = (False, False) if message == "VM.start" else ()
        self.harness.call(message, ref, *extra)

    @rule(ref=UNWRITTEN_REFS, message=st.sampled_from(OTHER_CLASS_READS))
    def other_class_read(self, ref: str, message: str) -> None:
        """A read of another class's object (a VM's disks, networks, metrics) by a ref or a
        uuid that names nothing: HANDLE_INVALID or UUID_INVALID naming the class (a ref no
        example writes: ``UNWRITTEN_REFS``)."""
        self.harness.call(message, BOGUS_UUID if message.endswith("get_by_uuid") else ref)

    @rule(
        name=st.sampled_from(["VM.frobnicate", "VM.Start", "vm.get_all", "Async.VM.get_name_label"])
    )
    def unknown_method(self, name: str) -> None:
        self.harness.call(name)

    @rule(vm=ConformanceMachine.vms, logout=st.booleans())
    def fresh_session(self, vm: str, logout: bool) -> None:
        """Log in, use the session, log out (or not), use it again: logout must end it."""
        account = self.connection.root.account
        session = self.harness.call(
            LOGIN, account.name, account.password, "2.21", "xapi-conformance"
        )
        if isinstance(session, Success):
            self.harness.call("VM.get_power_state", vm, session=str(session.value))
            if logout:
                self.harness.call("session.logout", session=str(session.value))
            self.harness.call("VM.get_power_state", vm, session=str(session.value))
            if not logout:
                self.harness.call("session.logout", session=str(session.value))

    @rule(originator=ORIGINATORS)
    def session_record(self, originator: str) -> None:
        """Log in with an originator, read the session's record and fields, log out: the
        record is gone (HANDLE_INVALID to the root session reading it)."""
        account = self.connection.root.account
        session = self.harness.call(LOGIN, account.name, account.password, "2.21", originator)
        if isinstance(session, Success):
            ref = str(session.value)
            read_session(self.harness, ref)
            self.harness.call("session.logout", session=ref)
            self.harness.call("session.get_record", ref)

    @rule(user=st.sampled_from(["root", "unknown"]), password=WRONG_PASSWORDS)
    def wrong_login(self, user: str, password: str) -> None:
        """A wrong password for the suite's own user, or a user nobody has: xapi refuses with
        SESSION_AUTHENTICATION_FAILED [user; PAM's message] (xapi_session.ml do_local_auth)."""
        account = self.connection.root.account
        name = account.name if user == "root" else "xapi-conformance-nobody"
        wrong = f"{account.password}{password}" if password == "-wrong" else password
        self.harness.call(LOGIN, name, wrong, "2.21", "xapi-conformance")


SESSION_GETTERS = (
    "session.get_uuid",
    "session.get_this_host",
    "session.get_this_user",
    "session.get_pool",
    "session.get_is_local_superuser",
    "session.get_subject",
    "session.get_auth_user_name",
    "session.get_originator",
    "session.get_parent",
    "session.get_other_config",
)
"""The session fields a client reads (xapi_session.ml login_no_password_common_create_session
writes them)."""


def read_session(harness: Harness, ref: str) -> None:
    """Read session ``ref``'s record, each field, and find it again by its uuid (learnt from the
    target, which chose it)."""
    harness.call("session.get_record", ref)
    for getter in SESSION_GETTERS:
        harness.call(getter, ref)
    uuid = harness.call("session.get_uuid", ref)
    info = harness.world.sessions.get(ref)
    if isinstance(uuid, Success) and info is not None:
        learnt = replace(info, uuid=str(uuid.value))
        sessions = MappingProxyType({**harness.world.sessions, ref: learnt})
        harness.adopt(replace(harness.world, sessions=sessions))
        harness.call("session.get_by_uuid", str(uuid.value))
        harness.call("session.get_record", ref)


MAP_KEYS = ("folder", "XenCenter.CustomFields.owner", "pci", "hvm_serial", "k1")
MAP_KEY_EDITS = (
    "add_to_other_config",
    "remove_from_other_config",
    "add_to_platform",
    "remove_from_platform",
    "set_other_config",
)


def _has_roles(machine: ConformanceMachine) -> bool:
    return bool(machine.connection.roles)


class RolesMachine(CopyRules):
    """Role-limited sessions calling every kind of message (RBAC)."""

    area = "roles"

    def _role_session(self, data: st.DataObject, roles: Sequence[str]) -> str:
        available = [role for role in roles if role in self.connection.roles]
        role = data.draw(st.sampled_from(available or sorted(self.connection.roles)), label="role")
        return self.connection.roles[role].session

    @precondition(_has_roles)
    @rule(vm=ConformanceMachine.vms, message=st.sampled_from(KEEPING_MESSAGES), data=st.data())
    def as_role(self, vm: str, message: Message, data: st.DataObject) -> None:
        session = self._role_session(data, ROLES)
        args = [data.draw(value_of(p.type), label=p.name) for p in message.params[1:]]
        self.harness.call(message.wire_name, vm, *args, session=session)

    @precondition(_has_roles)
    @rule(
        vm=ConformanceMachine.vms,
        edit=st.sampled_from(MAP_KEY_EDITS),
        key=st.sampled_from(MAP_KEYS),
        data=st.data(),
    )
    def map_key_as_role(self, vm: str, edit: str, key: str, data: st.DataObject) -> None:
        """A role's edit of a map key that has a role of its own (datamodel_vm.ml
        map_keys_roles: other_config's folder and XenCenter.CustomFields.* are vm-operator's,
        pci and hvm_serial pool-admin's) or of a plain key: first as root, half the time, so
        that a removal has something to remove."""
        if data.draw(st.booleans(), label="root adds it first"):
            field = "platform" if edit.endswith("platform") else "other_config"
            self.harness.call(f"VM.add_to_{field}", vm, key, "by root")
        session = self._role_session(data, ROLES)
        args: tuple[Value, ...] = (key, "xapi-conformance") if edit.startswith("add") else (key,)
        if edit == "set_other_config":
            args = ({key: "xapi-conformance", RUN_TAG: self.connection.run_id},)
        self.harness.call(f"VM.{edit}", vm, *args, session=session)

    @precondition(_has_roles)
    @rule(
        vm=ConformanceMachine.vms,
        op=st.sampled_from(LIFECYCLE),
        paused=st.booleans(),
        data=st.data(),
    )
    def lifecycle_as_role(self, vm: str, op: str, paused: bool, data: st.DataObject) -> None:
        session = self._role_session(data, ("vm-operator", "vm-admin", "read-only"))
        args: tuple[Value, ...] = (paused, False) if op in ("start", "resume") else ()
        self.harness.call(f"VM.{op}", vm, *args, session=session)


class AsyncMachine(LifecycleMachine):
    """``Async.`` forms polled through their task, mixed with synchronous calls."""

    area = "async"

    @rule(vm=ConformanceMachine.vms, op=st.sampled_from(LIFECYCLE), paused=st.booleans())
    def async_lifecycle(self, vm: str, op: str, paused: bool) -> None:
        args: tuple[Value, ...] = (paused, False) if op in ("start", "resume") else ()
        self.harness.call_async(f"VM.{op}", vm, *args)

    @rule(target=ConformanceMachine.vms, vm=ConformanceMachine.vms, op=st.sampled_from(COPIES))
    def async_copy(self, vm: str, op: str) -> VmResult:
        sr: tuple[Value, ...] = (NULL_REF,) if op == "copy" else ()
        answer = self.harness.call_async(f"VM.{op}", vm, "xapi-conformance async", *sr)
        return self._made(answer)

    @rule(vm=ConformanceMachine.vms, op=BLOCKABLE_OPS)
    def block(self, vm: str, op: str) -> None:
        """Blocked operations make Async calls fail through their task."""
        self.harness.call("VM.add_to_blocked_operations", vm, op, "xapi-conformance")


def neutral(xtype: XType) -> Value:
    """A value of ``xtype`` every unmarshaller reads (the enum's first, an empty map...)."""
    if xtype.kind == "enum":
        return catalogue.ENUMS[xtype.name][0]
    neutral: dict[str, Value] = {
        "string": "x",
        "int": 1,
        "float": 1.0,
        "bool": False,
        "set": (),
        "map": {},
    }
    return neutral.get(xtype.kind, NULL_REF)


RACE_PREFIX = ("start", "clean_shutdown", "hard_shutdown", "suspend", "pause", "resume", "unpause")
"""Sequential steps between races: the power states the races start from."""


class EventsMachine(CopyRules):
    """A client's event subscription, taken before the example: after every step, event.from
    from the last token answers what the model says changed (``conformance.suite.events``)."""

    area = "events"
    idle_wait_s = IDLE_WAIT_S
    """event.from's timeout in the idle step: a subclass may wait less (an in-process server
    changes nothing while a poll waits, so a shorter wait answers the same)."""

    def __init__(self, connection: Connection | None = None) -> None:
        super().__init__(connection)
        self.watch = EventWatch(self.harness, self.idle_wait_s)
        self.harness.on_task_end = self.watch.task_ended

    @rule(vm=ConformanceMachine.vms, op=st.sampled_from(LIFECYCLE), paused=st.booleans())
    def lifecycle(self, vm: str, op: str, paused: bool) -> None:
        args: tuple[Value, ...] = (paused, False) if op in ("start", "resume") else ()
        self.harness.call(f"VM.{op}", vm, *args)

    @rule(vm=ConformanceMachine.vms, op=st.sampled_from(RACE_PREFIX), paused=st.booleans())
    def async_lifecycle(self, vm: str, op: str, paused: bool) -> None:
        """An Async call: its task, watched through events, then gone once destroyed."""
        args: tuple[Value, ...] = (paused, False) if op in ("start", "resume") else ()
        self.harness.call_async(f"VM.{op}", vm, *args)
        self.watch.task_gone()

    @rule(vm=ConformanceMachine.vms, label=LABELS)
    def rename(self, vm: str, label: str) -> None:
        self.harness.call("VM.set_name_label", vm, label)

    @rule(back=st.integers(1, 4))
    def resume_old_token(self, back: int) -> None:
        """event.from from a token ``back`` polls old."""
        self.watch.resume(back)

    @rule(vm=ConformanceMachine.vms, which=st.sampled_from(["one-vm", "task", "host", "VM", "*"]))
    def narrower(self, vm: str, which: str) -> None:
        """event.from subscribed to one VM, to tasks or to hosts only, to ``VM`` (xapi
        matches classes case-insensitively), or to ``*`` (every class)."""
        self.watch.filtered([f"vm/{vm}"] if which == "one-vm" else [which])

    @rule(vm=ConformanceMachine.vms, call=st.sampled_from(["inject VM", "inject vm", "register *"]))
    def event_calls(self, vm: str, call: str) -> None:
        """event.inject of a VM (by its table's name, a change event.from and event.next
        report; by any other spelling, HANDLE_INVALID), or event.register(["*"]) on the
        legacy subscription, its vm and task unregistered."""
        if call == "register *":
            self.watch.register_everything()
        else:
            self.watch.inject(vm, call.removeprefix("inject "))

    @rule()
    def idle(self) -> None:
        """event.from with nothing new: it waits its timeout and answers none of ours."""
        self.watch.idle()

    @rule()
    def logout(self) -> None:
        """A fresh session: event.next before event.register and event.from with a token
        xapi cannot read fail as xapi's do; its event.from answers; after its logout,
        SESSION_INVALID."""
        account = self.connection.root.account
        login = self.harness.call(LOGIN, account.name, account.password)
        if isinstance(login, Success):
            session = str(login.value)
            self.watch.unregistered_next(session)
            self.watch.malformed_token(session)
            self.watch.session_poll(session)
            self.harness.call("session.logout", session=session)
            self.watch.logged_out(session)

    @rule()
    def unregister_tasks(self) -> None:
        """event.unregister of tasks from the legacy event.next subscription."""
        self.watch.unregister_tasks()

    def records_agree(self) -> None:
        """Not an invariant here: ``events_agree`` reads the records first."""

    @invariant()
    def events_agree(self) -> None:
        """The records first, then the poll: a record the target did not change as xapi does
        is its call's finding, and the example goes on from the record the target shows, so
        the event stream is judged against the target's own changes (a setter that wrote
        nothing owes no event)."""
        self.harness.check_state()
        self.watch.poll()

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            self.watch.close()


class ConcurrencyMachine(ConformanceMachine):
    """Sessions racing on the same VMs after a short sequential prefix, judged by
    linearizability (``conformance.races.concurrency``)."""

    area = "concurrency"
    max_steps = 12
    """A race is several calls and a read of every record: examples stay short (fewer
    steps, more fresh starts), so that the area costs about what the others do."""

    def __init__(self, connection: Connection | None = None) -> None:
        super().__init__(connection)
        self.sessions: list[str] = []

    @rule(vm=ConformanceMachine.vms, op=st.sampled_from(RACE_PREFIX), paused=st.booleans())
    def prepare(self, vm: str, op: str, paused: bool) -> None:
        """A sequential step that puts a VM in another power state before a race."""
        args: tuple[Value, ...] = (paused, False) if op in ("start", "resume") else ()
        self.harness.call(f"VM.{op}", vm, *args)

    @rule(race=races())
    def race(self, race: Race) -> None:
        """Two or three sessions at once on one or two of the example's VMs (the last two
        live ones; a VM the race destroys gives HANDLE_INVALID to later calls)."""
        self._race(race)

    @rule(race=same_call_races())
    def same_call(self, race: Race) -> None:
        """Several sessions making one operation on one VM at once."""
        self._race(race)

    @rule(race=st.one_of(watched_races(), watched_races(), cancelled_races(), hard_races()))
    def watched(self, race: Race) -> None:
        """An operation, and another session reading the VM while it is in flight (or, one
        time in four each, cancelling its task or making a hard shutdown or reboot)."""
        self._race(race)

    def _race(self, race: Race) -> None:
        """Run ``race`` on the last two live VMs (a new one if a race destroyed them all)."""
        if not self._raced_vms():
            self.harness.call("VM.create", vm_record(self.connection.run_id))
        vms = self._raced_vms()[-2:]
        if vms:
            placed = race.on(vms, self.harness.world)
            run_race(self.harness, placed, self._sessions(len(race.lanes)))

    def _raced_vms(self) -> list[str]:
        """The example's VMs that are not snapshots (a race made by a snapshot is refused)."""
        world = self.harness.world
        return [
            v for v in self.harness.suite_vms() if world.vms[v].get("is_a_snapshot") is not True
        ]

    def _sessions(self, count: int) -> list[str]:
        """The root session, then sessions of further root logins (made once per example)."""
        root = self.connection.root
        while len(self.sessions) < count - 1:
            login = self.harness.call(LOGIN, root.account.name, root.account.password)
            if not isinstance(login, Success):
                return [self.harness.session] * count
            self.sessions.append(str(login.value))
        return [self.harness.session, *self.sessions[: count - 1]]

    def teardown(self) -> None:
        try:
            super().teardown()
        finally:
            for session in self.sessions:
                with contextlib.suppress(TargetError):
                    self.connection.target.call(
                        "session.logout", self.harness.refs.to_target(session)
                    )


AREAS: Mapping[str, type[ConformanceMachine]] = {
    "lifecycle": LifecycleMachine,
    "memory": MemoryMachine,
    "operations": OperationsMachine,
    "templates": TemplatesMachine,
    "fields": FieldsMachine,
    "rpc": RpcMachine,
    "roles": RolesMachine,
    "async": AsyncMachine,
    "concurrency": ConcurrencyMachine,
    "events": EventsMachine,
}
"""Area name → machine, as the suite's tests and ``-k`` select them."""
