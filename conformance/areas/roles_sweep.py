"""The roles sweep: what each role may write, asked of every role on every run.

The roles area's machine draws a role and an edit at random; these cases ask each role every
question whatever the seed:

- every account's login with wrong passwords and with its own, a user nobody has (with
  root's password too) and root's name in capitals, the session's record read, the session
  used, logged out, used and logged out again;
- every VM message a role may not call, as that role, with arguments of the right types
  (``RBAC_PERMISSION_DENIED``, nothing changed: the denials a client meets);
- every map-key edit of a VM (``MAP_KEY_EDITS``) with every key whose role is its own
  (``MAP_KEYS``), as each role, the key first added by root where the edit removes it;
- every write a client can make to the pool's own object (other_config, its keys the
  datamodel gives vm-operator included), as root and as each role, each write read back; the
  sweep adds keys of its run alone and removes what it added;
- every edit of a task's other_config, and task.cancel and task.destroy, by the session that
  made the Async call, by sessions of other users (xapi's ``TaskHelper.assert_op_valid``: a
  subject acts on its own tasks, others need ``task.destroy/any``, pool-operator's) and by a
  role on the task it made itself; the task's fields read back after each.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial

from conformance.areas.machines import MAP_KEY_EDITS, MAP_KEYS, VM_MESSAGES, neutral, read_session
from conformance.areas.sweeps import Case, vm_case
from conformance.engine.harness import Connection, Harness
from conformance.judge.refs import RUN_TAG
from conformance.reproduce.reproducer import LOGIN
from models.outcome import Success, Value
from models.rbac import allowed_roles
from models.schema import ROLES

__all__ = ["ROLE_ORDER", "roles_sweep"]

ROLE_ORDER = tuple(role for role in reversed(ROLES) if role not in ("pool-admin", "client-cert"))
"""The roles the suite logs in as, least privileged first (``read-only`` … ``pool-operator``)."""


def roles_sweep() -> Iterator[Case]:
    """Two cases per role (the VM messages it may not call, the VM's map keys), one for
    logins and sessions, one for the pool's other_config and two for tasks (another user's, a
    role's own)."""
    for role in ROLE_ORDER:
        yield vm_case(partial(_denied_as, role=role))
        yield vm_case(partial(_map_keys_as, role=role))
    yield _sessions_case
    yield _pool_case
    yield vm_case(_task_of_root)
    yield vm_case(_own_tasks)


# ---- what a role may not call -----------------------------------------------------------------


def _denied_as(harness: Harness, vm: str, role: str) -> None:
    """Every VM message ``role`` may not call (by the datamodel's roles), sent as that role with
    arguments of the declared types, so that only RBAC refuses it."""
    session = harness.role_session(role)
    if session is None:
        return
    for message in VM_MESSAGES:
        args = (vm, *(neutral(p.type) for p in message.params[1:]))
        if not message.removed and role not in allowed_roles(message, args):
            harness.call(message.wire_name, *args, session=session)


# ---- a VM's map keys ------------------------------------------------------------------------


def _map_keys_as(harness: Harness, vm: str, role: str) -> None:
    """Every keyed edit as ``role``: a removal after root added the key, so that it has
    something to remove."""
    session = harness.role_session(role)
    if session is None:
        return
    for key in MAP_KEYS:
        for edit in MAP_KEY_EDITS:
            field = "platform" if edit.endswith("platform") else "other_config"
            if edit.startswith("remove"):
                harness.call(f"VM.add_to_{field}", vm, key, "by root")
            harness.call(f"VM.{edit}", vm, *_edit_args(harness, edit, key), session=session)


def _edit_args(harness: Harness, edit: str, key: str) -> tuple[Value, ...]:
    if edit == "set_other_config":
        return ({key: "xapi-conformance", RUN_TAG: harness.connection.run_id},)
    return (key, "xapi-conformance") if edit.startswith("add") else (key,)


# ---- logging in and out ----------------------------------------------------------------------

WRONG = ("", "xapi-conformance-wrong-password", "-wrong")
"""Wrong passwords: empty, another, the right one with a suffix (``-wrong``)."""
NOBODY = "xapi-conformance-nobody"


def _sessions_case(connection: Connection, area: str) -> None:
    harness = Harness(connection, area)
    connection.tally.examples += 1
    try:
        _logins(harness)
    finally:
        harness.teardown()


def _logins(harness: Harness) -> None:
    """Each account (root and each role's) with each wrong password; a user nobody has, with
    a wrong password and with root's, and root's name in capitals with root's password
    (SESSION_AUTHENTICATION_FAILED naming the user: xapi_session.ml do_local_auth has PAM
    authenticate the user named, whose names are exact); then each account's right password
    with an originator: the session's record and fields read and found by its uuid, the
    session used, logged out, used again and logged out again (SESSION_INVALID: the session
    of any call is checked, session.logout's too) and read by root (HANDLE_INVALID)."""
    root = harness.connection.root.account
    accounts = [root, *(login.account for login in harness.connection.roles.values())]
    for account in accounts:
        for wrong in WRONG:
            password = f"{account.password}{wrong}" if wrong == "-wrong" else wrong
            harness.call(LOGIN, account.name, password, "2.21", "xapi-conformance")
    harness.call(LOGIN, NOBODY, WRONG[1], "2.21", "xapi-conformance")
    for name in (NOBODY, root.name.upper()):
        if name != root.name:
            harness.call(LOGIN, name, root.password, "2.21", "xapi-conformance")
    for account in accounts:
        session = harness.call(LOGIN, account.name, account.password, "2.21", "XenCenter")
        if not isinstance(session, Success):
            continue
        ref = str(session.value)
        read_session(harness, ref)
        harness.call("VM.get_all", session=ref)
        harness.call("session.logout", session=ref)
        harness.call("VM.get_all", session=ref)
        harness.call("session.logout", session=ref)
        harness.call("session.get_record", ref)


# ---- the pool's own object ------------------------------------------------------------------


def _pool_case(connection: Connection, area: str) -> None:
    harness = Harness(connection, area)
    connection.tally.examples += 1
    try:
        _pool_writes(harness)
    finally:
        _pool_cleaned(harness)
        harness.teardown()


def _pool_keys(harness: Harness) -> tuple[str, str]:
    """A plain key and one the datamodel gives vm-operator (by its wildcard), of this run."""
    run = harness.connection.run_id
    return f"xapi-conformance-{run}", f"XenCenter.CustomFields.xapi-conformance-{run}"


def _pool_writes(harness: Harness) -> None:
    """pool.add_to_other_config and remove_from_other_config as root and as each role, each
    read back (the getter and the record), a key added twice refused (MAP_DUPLICATE_KEY)."""
    pool = harness.world.pool.ref
    for key in _pool_keys(harness):
        harness.call("pool.add_to_other_config", pool, key, "by root")
        _read_pool(harness, pool)
        harness.call("pool.add_to_other_config", pool, key, "again")
        for role in ROLE_ORDER:
            session = harness.role_session(role)
            if session is None:
                continue
            harness.call("pool.add_to_other_config", pool, f"{key}-{role}", role, session=session)
            harness.call("pool.remove_from_other_config", pool, key, session=session)
            _read_pool(harness, pool)
            harness.call("pool.add_to_other_config", pool, key, "by root")
        harness.call("pool.remove_from_other_config", pool, key)
        _read_pool(harness, pool)


def _read_pool(harness: Harness, pool: str) -> None:
    harness.call("pool.get_other_config", pool)
    harness.call("pool.get_record", pool)


def _pool_cleaned(harness: Harness) -> None:
    """Remove every key of this run's the pool holds (never another's), as the target lists
    them: unjudged, the case may have diverged and the model no longer know."""
    target, session = harness.connection.target, harness.session
    pool = harness.refs.to_target(harness.world.pool.ref)
    held = target.call("pool.get_other_config", session, pool)
    if not isinstance(held, Success) or not isinstance(held.value, Mapping):
        return
    for key in held.value:
        if str(key).startswith(_pool_keys(harness)):
            target.call("pool.remove_from_other_config", session, pool, key)


# ---- tasks ----------------------------------------------------------------------------------


def _kept_task(harness: Harness, call: tuple[Value, ...], session: str | None = None) -> str | None:
    """The Async call ``call`` (as ``session``, root's by default), its task kept: the task's
    ref, or None when the call made none (refused before a task)."""
    before = set(harness.world.tasks)
    harness.keep_tasks = True
    try:
        harness.call(f"Async.{call[0]}", *call[1:], session=session)
    finally:
        harness.keep_tasks = False
    made = [ref for ref in harness.world.tasks if ref not in before]
    return made[0] if made else None


def _task_of_root(harness: Harness, vm: str) -> None:
    """Root's task: its other_config edited and read back by root; then each role, least
    privileged first, edits, cancels and destroys it (refused without task.destroy/any); root
    destroys what is left."""
    task = _kept_task(harness, ("VM.clone", vm, "xapi-conformance task"))
    if task is None:
        return
    harness.call("task.add_to_other_config", task, "xapi-conformance", "by root")
    harness.call("task.add_to_other_config", task, "xapi-conformance", "again")
    harness.call("task.set_other_config", task, {"applies_to": vm, "k1": "v1"})
    harness.call("task.remove_from_other_config", task, "k1")
    harness.call("task.cancel", task)
    _read_task(harness, task)
    for role in ROLE_ORDER:
        session = harness.role_session(role)
        if session is None:
            continue
        harness.call("task.add_to_other_config", task, role, "x", session=session)
        harness.call("task.cancel", task, session=session)
        _read_task(harness, task)
    for role in ROLE_ORDER:
        session = harness.role_session(role)
        if session is not None:
            harness.call("task.destroy", task, session=session)
    harness.call("task.destroy", task)


def _own_tasks(harness: Harness, vm: str) -> None:
    """Each role's own task (an Async.VM.clean_shutdown of a Halted VM, which fails through its
    task; read-only's fails with RBAC_PERMISSION_DENIED, checked in the task as xapi does):
    read-only refused the task, the role edits and destroys it."""
    other = harness.role_session("read-only")
    for role in ROLE_ORDER:
        session = harness.role_session(role)
        call = ("VM.clean_shutdown", vm)
        task = None if session is None else _kept_task(harness, call, session)
        if task is None:
            continue
        if other is not None and other != session:
            harness.call("task.destroy", task, session=other)
        harness.call("task.add_to_other_config", task, "applies_to", vm, session=session)
        _read_task(harness, task)
        harness.call("task.destroy", task, session=session)
        harness.call("task.get_status", task)


def _read_task(harness: Harness, task: str) -> None:
    harness.call("task.get_other_config", task)
    harness.call("task.get_status", task)
