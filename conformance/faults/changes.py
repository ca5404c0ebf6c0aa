"""Branch changes: the one alteration each catalogued fault makes to an honest answer."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from conformance.faults.kinds import (
    BranchChange,
    Transition,
    _edit_vm,
    _new_vm,
    _sync,
    _vm_arg,
    _vm_methods,
    _with_task,
)
from models.catalogue import roles_at_least
from models.checks import update_vm
from models.others import login
from models.outcome import Failure, Success, Value
from models.placement import host_error
from models.records import read_record
from models.transition import Branch, Call, Result, as_map
from models.world import NULL_REF, Account, Record, SessionInfo, World

AUTH_FAILED = "SESSION_AUTHENTICATION_FAILED"

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


def _start_fails(world: World, call: Call, branch: Branch) -> Branch:
    """A start that would succeed fails as if no host could run the VM, and changes nothing."""
    if isinstance(branch.outcome, Failure):
        return branch
    return Branch(Failure("NO_HOSTS_AVAILABLE", ()), world)


def _every_host(world: World, call: Call, branch: Branch) -> Branch:
    """VM.get_possible_hosts lists every host of the pool, whatever the host checks say."""
    if not isinstance(branch.outcome, Success):
        return branch
    return replace(branch, outcome=Success(tuple(world.hosts)))


def _orphan_revert_refused(world: World, call: Call, branch: Branch) -> Branch:
    """VM.revert of a snapshot whose VM was destroyed fails and makes nothing."""
    snapshot = _vm_arg(world, call)
    old = str(world.vms[snapshot]["snapshot_of"]) if snapshot is not None else NULL_REF
    if snapshot is None or old == NULL_REF or old in world.vms:
        return branch
    return Branch(Failure("VM_REVERT_FAILED", (snapshot, old)), world)


def _affinity_ignored(world: World, call: Call, branch: Branch) -> Branch:
    """A start that puts the VM on a host that can take it other than its affinity host."""
    ref = _vm_arg(world, call)
    if ref is None or not isinstance(branch.outcome, Success):
        return branch
    vm = world.vms[ref]
    others = sorted(
        (h for h in world.hosts.values() if h.ref != vm["affinity"]), key=lambda h: h.ref
    )
    able = [h.ref for h in others if host_error(world, ref, vm, h) is None]
    return _edit_vm(branch, ref, {"resident_on": able[0]}) if able else branch


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


def _not_resident(world: World, call: Call, branch: Branch) -> Branch:
    return _with_task(branch, lambda t: replace(t, resident_on=NULL_REF))


_UTC_PLUS_5 = datetime.timedelta(hours=5)


def _created_local_time(world: World, call: Call, branch: Branch) -> Branch:
    return _with_task(branch, lambda t: replace(t, created=t.created + _UTC_PLUS_5))


def _destroy_kept(world: World, call: Call, branch: Branch) -> Branch:
    """task.destroy answers success and leaves the task."""
    return replace(branch, world=world) if isinstance(branch.outcome, Success) else branch


SOFT_DELETED = "xapi-conformance-destroyed"
"""The other_config key a soft-deleting server marks a destroyed task with."""


def _soft_destroyed(world: World, call: Call, branch: Branch) -> Branch:
    """task.destroy marks the task (a soft delete) and task.get_record hides a marked task;
    task.get_all, not filtering them, still lists it."""
    task = world.tasks.get(str(call.args[-1])) if call.args else None
    if task is None:
        return branch
    if call.method == "task.get_record" and SOFT_DELETED in task.other_config:
        return replace(branch, outcome=Failure("HANDLE_INVALID", ("task", task.ref)))
    if call.method == "task.destroy" and isinstance(branch.outcome, Success):
        marked = replace(task, other_config=MappingProxyType({SOFT_DELETED: "true"}))
        tasks = MappingProxyType({**world.tasks, task.ref: marked})
        return replace(branch, world=replace(world, tasks=tasks))
    return branch


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


def _not_nested(call: Call, vm: Record) -> Mapping[str, Value]:
    platform = {k: v for k, v in as_map(vm["platform"]).items() if k != "nested-virt"}
    return {"platform": platform}


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


def _mac_seed_inherited(world: World, call: Call, branch: Branch) -> Branch:
    """The new VM of a clone or copy keeps its source's mac_seed (no fresh one drawn)."""
    source, new = _vm_arg(world, call), _new_vm(world, branch)
    if source is None or new is None:
        return branch
    seed = as_map(world.vms[source]["other_config"]).get("mac_seed")
    other = as_map(branch.world.vms[new]["other_config"])
    if seed is None:
        return branch
    return _edit_vm(branch, new, {"other_config": {**other, "mac_seed": seed}})


def _suspend_vdi_kept(world: World, call: Call, branch: Branch) -> Branch:
    """VM.create stores the record's suspend_VDI whatever power state it makes the VM."""
    record = call.args[1] if len(call.args) > 1 else None
    given = record.get("suspend_VDI") if isinstance(record, Mapping) else None
    if not isinstance(given, str):
        return branch
    return _edit_vm(branch, _new_vm(world, branch), {"suspend_VDI": given})


def _overhead_not_refreshed(world: World, call: Call, branch: Branch) -> Branch:
    """VM.start and start_on keep the stored memory_overhead instead of refreshing it."""
    ref = _vm_arg(world, call)
    if ref is None:
        return branch
    return _edit_vm(branch, ref, {"memory_overhead": world.vms[ref]["memory_overhead"]})


def _logout_idempotent(_world: World, _call: Call, branch: Branch) -> Branch:
    """A logout of a session already ended answers success instead of SESSION_INVALID."""
    outcome = branch.outcome
    if isinstance(outcome, Failure) and outcome.code == "SESSION_INVALID":
        return replace(branch, outcome=Success(""))
    return branch


def _blocked_operations_inherited(world: World, call: Call, branch: Branch) -> Branch:
    """The new VM of a clone or copy keeps its source's blocked_operations."""
    source = _vm_arg(world, call)
    if source is None:
        return branch
    inherited = {"blocked_operations": world.vms[source]["blocked_operations"]}
    return _edit_vm(branch, _new_vm(world, branch), inherited)


def _default_template_kept(world: World, call: Call, branch: Branch) -> Branch:
    """A copy of a default template stays one: is_default_template and
    other_config:default_template kept (xapi_vm_clone.ml drops both)."""
    source = _vm_arg(world, call)
    if source is None or world.vms[source]["is_default_template"] is not True:
        return branch
    new = _new_vm(world, branch)
    if new is None or new not in branch.world.vms:
        return branch
    other = branch.world.vms[new]["other_config"]
    kept = {**(other if isinstance(other, Mapping) else {}), "default_template": "true"}
    return _edit_vm(branch, new, {"is_default_template": True, "other_config": kept})


# ---- authentication and sessions --------------------------------------------------------------


def _login_granted(
    world: World, call: Call, branch: Branch, as_whom: Callable[[World, Call], Account | None]
) -> Branch:
    """A login refused (SESSION_AUTHENTICATION_FAILED) that succeeds as the account ``as_whom``
    finds for it, if any: what a server that checks less than PAM does."""
    outcome = branch.outcome
    if not (isinstance(outcome, Failure) and outcome.code == AUTH_FAILED) or len(call.args) < 4:
        return branch
    account = as_whom(world, call)
    if account is None:
        return branch
    ref, after = login(world, account.name, account.password, str(call.args[3]))
    return Branch(Success(ref), after)


def _any_password(world: World, call: Call, branch: Branch) -> Branch:
    """A login refused for its password succeeds when the user exists (no password check)."""
    return _login_granted(world, call, branch, lambda w, c: w.accounts.get(str(c.args[0])))


def _password_only(world: World, call: Call, branch: Branch) -> Branch:
    """A login refused succeeds as the account whose password it gave: the name is not checked."""

    def owner(w: World, c: Call) -> Account | None:
        return next((a for a in w.accounts.values() if a.password == str(c.args[1])), None)

    return _login_granted(world, call, branch, owner)


def _user_case_folded(world: World, call: Call, branch: Branch) -> Branch:
    """A login refused succeeds when its name is an account's in another case (and its
    password that account's)."""

    def folded(w: World, c: Call) -> Account | None:
        name, password = str(c.args[0]).casefold(), str(c.args[1])
        return next(
            (
                a
                for a in w.accounts.values()
                if a.name.casefold() == name and a.password == password
            ),
            None,
        )

    return _login_granted(world, call, branch, folded)


def _message_only(_w: World, _c: Call, params: tuple[str, ...]) -> tuple[str, ...]:
    """SESSION_AUTHENTICATION_FAILED naming no user: only its message."""
    return params[1:]


def _originator_dropped(call: Call) -> Call:
    """A login that does not keep its originator."""
    return replace(call, args=(*call.args[:3], ""))


# ---- RBAC on map keys, pool-wide queries, reverts, template setters ----------------------------

KEYED_MAP_EDITS = _vm_methods(
    "add_to_other_config", "remove_from_other_config", "add_to_platform", "remove_from_platform"
)
UNPROTECTED_KEY = "xapi-conformance-unprotected"


def _message_role_only(world: World, call: Call, honest: Transition) -> Result:
    """A map edit judged by its message's own role, whatever the key: the role check of the
    same edit on a key no role protects, then the edit itself as if allowed."""
    if call.method not in KEYED_MAP_EDITS or len(call.args) < 3:
        return honest(world, call)
    plain = honest(world, replace(call, args=(*call.args[:2], UNPROTECTED_KEY, *call.args[3:])))
    denied = [b for b in plain if _denied(b)]
    if denied:
        return tuple(denied)
    session = str(call.args[0])
    info = world.sessions.get(session)
    if info is None or info.superuser:
        return honest(world, call)
    elevated = MappingProxyType({**world.sessions, session: replace(info, superuser=True)})
    result = honest(replace(world, sessions=elevated), call)
    return tuple(_with_session(b, session, info) for b in result)


def _not_utf8_replaced(world: World, call: Call, honest: Transition) -> Result:
    """Text that is not UTF-8 taken with each lone UTF-16 half as U+FFFD (a lenient decoder),
    not refused."""
    args = tuple(_replaced_halves(arg) for arg in call.args)
    return honest(world, call if args == call.args else replace(call, args=args))


def _replaced_halves(value: object) -> object:
    if isinstance(value, str):
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)
    if isinstance(value, list | tuple):
        return type(value)(_replaced_halves(item) for item in value)
    if isinstance(value, dict):
        return {_replaced_halves(k): _replaced_halves(v) for k, v in value.items()}
    return value


TASK_OWNED = frozenset(
    {
        "task.cancel",
        "task.destroy",
        "task.add_to_other_config",
        "task.remove_from_other_config",
        "task.set_other_config",
    }
)
"""The task messages xapi allows on one's own tasks only (``TaskHelper.assert_op_valid``)."""


def _task_owner_ignored(world: World, call: Call, honest: Transition) -> Result:
    """Any session acts on any task: a call refused for want of ``task.destroy/any`` is made
    as if the session had it."""
    result = honest(world, call)
    if call.method not in TASK_OWNED or not any(_denied_any_task(b) for b in result):
        return result
    session = str(call.args[0])
    info = world.sessions[session]
    elevated = MappingProxyType({**world.sessions, session: replace(info, superuser=True)})
    return tuple(
        _with_session(b, session, info) for b in honest(replace(world, sessions=elevated), call)
    )


def _denied_any_task(branch: Branch) -> bool:
    outcome = branch.outcome
    return (
        _denied(branch)
        and isinstance(outcome, Failure)
        and outcome.params[:1] == ("task.destroy/any",)
    )


def _denied(branch: Branch) -> bool:
    outcome = branch.outcome
    return isinstance(outcome, Failure) and outcome.code == "RBAC_PERMISSION_DENIED"


def _with_session(branch: Branch, session: str, info: SessionInfo) -> Branch:
    sessions = MappingProxyType({**branch.world.sessions, session: info})
    return replace(branch, world=replace(branch.world, sessions=sessions))


def _prefix_match(world: World, call: Call, branch: Branch) -> Branch:
    """get_by_name_label answers every VM whose label begins with the text asked for."""
    label = str(call.args[1]) if len(call.args) > 1 else ""
    refs = tuple(r for r, vm in world.vms.items() if str(vm["name_label"]).startswith(label))
    return replace(branch, outcome=Success(refs)) if isinstance(branch.outcome, Success) else branch


def _case_folded(world: World, call: Call, branch: Branch) -> Branch:
    """get_by_uuid and get_by_name_label match whatever the case (a server that parses uuids,
    or compares labels without case)."""
    asked = str(call.args[1]).casefold() if len(call.args) > 1 else ""
    field = "uuid" if call.method.endswith("get_by_uuid") else "name_label"
    refs = tuple(r for r, vm in world.vms.items() if str(vm[field]).casefold() == asked)
    if field == "name_label":
        return replace(branch, outcome=Success(refs))
    return replace(branch, outcome=Success(refs[0])) if refs else branch


def _vms_left_out(flag: str) -> BranchChange:
    """A listing of VMs (refs, or records by ref) that leaves out those whose ``flag`` is
    set, as if they were not VMs."""

    def change(world: World, call: Call, branch: Branch) -> Branch:
        outcome = branch.outcome
        if not isinstance(outcome, Success):
            return branch

        def kept(ref: Value) -> bool:
            return world.vms.get(str(ref), {}).get(flag) is not True

        listed = outcome.value
        if isinstance(listed, Mapping):
            return replace(branch, outcome=Success({r: v for r, v in listed.items() if kept(r)}))
        if isinstance(listed, tuple):
            return replace(branch, outcome=Success(tuple(r for r in listed if kept(r))))
        return branch

    return change


_snapshots_left_out = _vms_left_out("is_a_snapshot")
"""get_all_records leaves out snapshots."""
_control_domains_left_out = _vms_left_out("is_control_domain")
"""get_all and get_all_records leave out the hosts' control domains."""


def _filter_ignored(world: World, call: Call, branch: Branch) -> Branch:
    """get_all_records_where answers every VM's record, whatever its expression selects (a
    server that filters nothing, or only in its client library)."""
    if not isinstance(branch.outcome, Success):
        return branch
    every = {ref: read_record(world, ref) for ref in world.vms}
    return replace(branch, outcome=Success(every))


def _or_read_as_and(call: Call) -> Call:
    """A filter whose ``or`` is read as ``and`` (a hand-written parser with one connective)."""
    if len(call.args) < 2 or not isinstance(call.args[1], str):
        return call
    return replace(call, args=(call.args[0], call.args[1].replace(" or ", " and ")))


REVERT_KEPT = (
    "name_description",
    "other_config",
    "tags",
    "user_version",
    "actions_after_crash",
    "blocked_operations",
)
"""Fields a faulty revert leaves as they are instead of restoring them from the snapshot."""


def _revert_keeps_changes(world: World, call: Call, branch: Branch) -> Branch:
    """VM.revert restores the power state and memory, but leaves the fields of REVERT_KEPT as
    the VM has them now."""
    snapshot = _vm_arg(world, call)
    vm = str(world.vms[snapshot]["snapshot_of"]) if snapshot else ""
    if not isinstance(branch.outcome, Success) or vm not in world.vms:
        return branch
    return _edit_vm(branch, vm, {field: world.vms[vm][field] for field in REVERT_KEPT})


def _denial_answered(world: World, call: Call, branch: Branch) -> Branch:
    """An Async call a role may not make answers RBAC_PERMISSION_DENIED itself, making no task
    (a server that checks permissions before it dispatches)."""
    made = branch.outcome.value if isinstance(branch.outcome, Success) else None
    task = branch.world.tasks.get(str(made)) if call.method.startswith("Async.") else None
    if task is None or task.error_info[:1] != ("RBAC_PERMISSION_DENIED",):
        return branch
    return Branch(Failure(task.error_info[0], task.error_info[1:]), world)


MAP_SETTERS = _vm_methods(
    "set_other_config",
    "set_platform",
    "set_xenstore_data",
    "set_HVM_boot_params",
    "set_VCPUs_params",
)


def _map_merged(world: World, call: Call, branch: Branch) -> Branch:
    """A map setter merges the map given into the one held: keys left out stay."""
    ref = _vm_arg(world, call)
    given = call.args[2] if len(call.args) > 2 else None
    if ref is None or not isinstance(branch.outcome, Success) or not isinstance(given, Mapping):
        return branch
    field = _sync(call).removeprefix("VM.set_")
    held = world.vms[ref][field]
    assert isinstance(held, Mapping)
    return _edit_vm(branch, ref, {field: {**held, **given}})


TEMPLATE_VCPU_SETTERS = _vm_methods("set_VCPUs_max", "set_VCPUs_at_startup")


def _template_vcpus_stored(world: World, call: Call, branch: Branch) -> Branch:
    """On a template the VCPU setters store any count: their validation is skipped."""
    ref = _vm_arg(world, call)
    outcome = branch.outcome
    if (
        ref is None
        or world.vms[ref]["is_a_template"] is not True
        or not isinstance(outcome, Failure)
    ):
        return branch
    if outcome.code != "INVALID_VALUE" or len(call.args) < 3:
        return branch
    count = str(call.args[2])
    if not count.lstrip("-").isdigit():
        return branch
    field = _sync(call).removeprefix("VM.set_")
    return Branch(Success(""), update_vm(world, ref, {field: int(count)}, recompute=False))
