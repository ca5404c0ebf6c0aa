"""The one transition function: a raw call in, every acceptable (outcome, next world) out.

The RPC layer runs in xapi's order (semantics §4.1): UTF-8, method name, parameter count,
unmarshalling, removed messages, session, async mode, then RBAC and the message's own handler
(for an ``Async.`` call both in its task: gen_server.ml wraps the implementation in
``Rbac.check``, and server_helpers.ml ``do_dispatch`` runs it in the task's thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from models import catalogue, copies, lifecycle, misc, setters
from models.errors import XenAPIError, internal_error
from models.generic import generic_handler
from models.hidden import HIDDEN_ENUMS, HIDDEN_MESSAGES
from models.others import OTHER_MESSAGES, SESSIONLESS
from models.outcome import Failure, Outcome, Success, Value
from models.rbac import check_map_update, check_permission
from models.releases import released
from models.schema import Message
from models.transition import Branch, Call, Ctx, Handler, Result, failed
from models.unmarshal import UnmarshalError, rpc_repr, unmarshal
from models.unmodelled import unmodelled_getter
from models.world import SessionInfo, Task, World, new_ids

__all__ = ["REGISTRY", "Entry", "apply", "resolve"]

ASYNC_PREFIX = "Async."


@dataclass(frozen=True)
class Entry:
    """A callable message: its declaration and its handler."""

    message: Message
    handler: Handler
    takes_session: bool = True


_EXPLICIT: dict[str, Handler] = {
    **lifecycle.HANDLERS,
    **copies.HANDLERS,
    **setters.HANDLERS,
    **misc.HANDLERS,
}


def _removed(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    raise XenAPIError("MESSAGE_REMOVED")


def _vm_entry(message: Message) -> Entry:
    handler = _removed if message.removed else _EXPLICIT.get(message.name)
    handler = handler or generic_handler(message)
    if handler is None:
        raise LookupError(f"VM.{message.name} has neither explicit rules nor a generic form")
    return Entry(message, handler)


def _registry() -> dict[str, Entry]:
    entries = {m.wire_name: _vm_entry(m) for m in catalogue.MESSAGES.values()}
    for name, (message, handler) in HIDDEN_MESSAGES.items():
        entries[name] = Entry(message, handler)
    for name, (message, handler) in OTHER_MESSAGES.items():
        entries[name] = Entry(message, handler, takes_session=name not in SESSIONLESS)
    return entries


REGISTRY: Mapping[str, Entry] = MappingProxyType(_registry())
"""Wire name (``VM.start``, ``session.logout``…) → entry, for every message the model answers."""


def resolve(method: str) -> tuple[str, Entry | None, bool]:
    """``(sync name, entry or None, is_async)``; ``Obj_msg`` is accepted like ``Obj.msg``."""
    is_async = method.startswith(ASYNC_PREFIX)
    name = method.removeprefix(ASYNC_PREFIX)
    entry = REGISTRY.get(name)
    if entry is None and "." not in name and "_" in name:
        cls, _, msg = name.partition("_")
        entry = REGISTRY.get(f"{cls}.{msg}")
    return name, entry, is_async


def _check_utf8(value: object) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise XenAPIError("INVALID_VALUE", "Invalid UTF-8 string in parameter", value) from None
    elif isinstance(value, list | tuple):
        for item in value:
            _check_utf8(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_utf8(key)
            _check_utf8(item)


def _session(world: World, raw: object) -> SessionInfo:
    info = world.sessions.get(raw) if isinstance(raw, str) else None
    if info is None:
        raise XenAPIError("SESSION_INVALID", str(raw))
    return info


def _unknown_method(world: World, call: Call) -> XenAPIError:
    if call.args:
        session = _session(world, call.args[0])
        getter = unmodelled_getter(world, call.method.removeprefix(ASYNC_PREFIX), call.args)
        if getter is not None:
            return getter
        if not session.superuser and session.role != "pool-admin":
            extension = catalogue.message("start")  # any message: only the role list matters
            check_permission(
                session, "host.call_extension", replace(extension, min_role="pool-admin"), ()
            )
    return XenAPIError("MESSAGE_METHOD_UNKNOWN", call.method)


def _count_error(name: str, entry: Entry, call: Call) -> XenAPIError | None:
    received = len(call.args) - (1 if entry.takes_session else 0)
    required = entry.message.required_count
    has_defaults = required < len(entry.message.params)
    if received == required or (has_defaults and received > required):
        return None
    return XenAPIError("MESSAGE_PARAMETER_COUNT_MISMATCH", name, str(required), str(received))


_ENUMS: Mapping[str, tuple[str, ...]] = MappingProxyType({**catalogue.ENUMS, **HIDDEN_ENUMS})
"""The enums a parameter may have: the VM class's, and those of the hidden messages."""


def _typed_args(entry: Entry, raw: tuple[object, ...]) -> tuple[Value, ...]:
    typed: list[Value] = []
    for index, param in enumerate(entry.message.params):
        if index < len(raw):
            typed.append(unmarshal(raw[index], param.type, _ENUMS))
        else:
            assert param.default is not None
            typed.append(param.default)
    return tuple(typed)


def apply(world: World, call: Call) -> Result:
    """Every acceptable answer of xapi to ``call`` in ``world``, each with its next world."""
    try:
        return _apply(world, call)
    except XenAPIError as error:
        return failed(world, error.failure())


def _apply(world: World, call: Call) -> Result:
    _check_utf8(list(call.args))
    name, entry, is_async = resolve(call.method)
    if entry is None or not released(world.release, name):
        raise _unknown_method(world, call)
    count_error = _count_error(name, entry, call)
    if count_error:
        raise count_error
    raw = call.args[1:] if entry.takes_session else call.args
    try:
        if entry.takes_session and not isinstance(call.args[0], str):
            raise UnmarshalError(f"Expected string, got '{rpc_repr(call.args[0])}'")
        args = _typed_args(entry, raw)
    except UnmarshalError as error:
        raise internal_error(error.text) from error
    return _authorised(world, call, name, entry, args, is_async)


def _authorised(
    world: World, call: Call, name: str, entry: Entry, args: tuple[Value, ...], is_async: bool
) -> Result:
    if not entry.takes_session:
        ctx = Ctx(world, "", SessionInfo("", "", superuser=False), call.now, call.method)
        return entry.handler(ctx, args)
    session_ref = str(call.args[0])
    session = _session(world, session_ref)
    if entry.message.removed:
        raise XenAPIError("MESSAGE_REMOVED")
    if is_async and not entry.message.has_async:
        raise XenAPIError("Fault", f"No async mode for this operation (rpc: {call.method})")
    ctx = Ctx(world, session_ref, session, call.now, call.method)

    def permitted(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        """RBAC, then the message: xapi's generated server wraps the implementation in
        ``Rbac.check`` (gen_server.ml ``local_op``), which an Async call runs in its task."""
        check_permission(session, name, entry.message, args)
        _check_map_keys(world, session, name, args)
        return entry.handler(ctx, args)

    if is_async:
        return _as_task(ctx, permitted, args)
    return _handled(ctx, permitted, args)


_RBAC_MAP_SETTERS = {"VM.set_other_config": "other_config", "VM.set_platform": "platform"}
"""Setters that check the protected keys they change (``Helpers.set_map_with_rbac``)."""


def _check_map_keys(world: World, session: SessionInfo, name: str, args: tuple[Value, ...]) -> None:
    field = _RBAC_MAP_SETTERS.get(name)
    vm = world.vms.get(str(args[0])) if field else None
    if field and vm is not None and isinstance(args[1], Mapping):
        old = vm[field]
        assert isinstance(old, Mapping)
        check_map_update(session, field, old, args[1])


def _handled(ctx: Ctx, handler: Handler, args: tuple[Value, ...]) -> Result:
    try:
        return handler(ctx, args)
    except XenAPIError as error:
        return failed(ctx.world, error.failure())


def _as_task(ctx: Ctx, handler: Handler, args: tuple[Value, ...]) -> Result:
    """An Async call: the response is a task ref; the outcome lands in the task (§12), an
    RBAC denial included."""
    branches: list[Branch] = []
    for branch in _handled(ctx, handler, args):
        task_ref, task_uuid, world = new_ids(branch.world)
        task = _task(task_ref, task_uuid, ctx, branch.outcome)
        world = replace(world, tasks=MappingProxyType({**world.tasks, task_ref: task}))
        branches.append(Branch(Success(task_ref), world))
    return tuple(branches)


def _task(ref: str, task_uuid: str, ctx: Ctx, outcome: Outcome) -> Task:
    task = Task(
        ref,
        task_uuid,
        ctx.wire_name,
        "success",
        session=ctx.session_ref,
        created=ctx.now,
        resident_on=ctx.world.pool.master,
    )
    if isinstance(outcome, Failure):
        status = "cancelled" if outcome.code == "TASK_CANCELLED" else "failure"
        return replace(task, status=status, error_info=tuple(outcome.description))
    return replace(task, result=outcome.value)
