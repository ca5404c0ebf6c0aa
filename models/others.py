"""The few messages of other classes that VM clients need: session, pool, host, SR and task.

Only what a client uses to log in, find its way and follow an ``Async.`` call; these are not the
subject of conformance, so they are declared here by hand rather than read from a reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from models.errors import XenAPIError, handle_invalid, uuid_invalid
from models.outcome import Encoded, Value
from models.schema import Message, Param, parse_type
from models.transition import Ctx, Handler, Result, done
from models.world import NULL_REF, Host, SessionInfo, Task, World, new_ids

__all__ = ["OTHER_MESSAGES", "SESSIONLESS", "host_record", "login", "pool_record", "task_record"]

SESSIONLESS = frozenset({"session.login_with_password"})
"""Messages whose first parameter is not a session."""

API_VERSION = (2, 21)


def _message(
    name: str, params: str = "", returns: str = "void", role: str = "read-only"
) -> Message:
    parsed = tuple(
        Param(n, parse_type(t), has_default=d is not None, default=d)
        for n, t, d in (_param(p) for p in params.split(",") if p)
    )
    return Message(name, parsed, parse_type(returns), role, has_async=False)


def _param(text: str) -> tuple[str, str, str | None]:
    declared, _, default = text.partition("=")
    type_text, _, name = declared.strip().rpartition(" ")
    return name, type_text, (default.strip().strip('"') if default else None)


def login(world: World, user: str, password: str) -> tuple[str, World]:
    """session.login_with_password: a new session ref, or SESSION_AUTHENTICATION_FAILED."""
    account = world.accounts.get(user)
    if account is None or account.password != password:
        raise XenAPIError("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
    ref, _, world = new_ids(world)
    info = SessionInfo(user=user, role=account.role, superuser=account.superuser)
    return ref, replace(world, sessions=MappingProxyType({**world.sessions, ref: info}))


def _login(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    ref, world = login(ctx.world, str(args[0]), str(args[1]))
    return done(world, ref)


def _logout(ctx: Ctx, _: tuple[Value, ...]) -> Result:
    sessions = {k: v for k, v in ctx.world.sessions.items() if k != ctx.session_ref}
    return done(replace(ctx.world, sessions=MappingProxyType(sessions)))


def pool_record(world: World) -> dict[str, Value]:
    """The pool's record as a client reads it (the fields a VM client uses)."""
    pool = world.pool
    return {
        "uuid": pool.uuid,
        "name_label": "",
        "name_description": "",
        "master": pool.master,
        "default_SR": next(iter(world.srs), NULL_REF),
        "restrictions": dict(pool.restrictions),
        "other_config": dict(pool.other_config),
        "ha_enabled": False,
        "wlb_enabled": False,
        "tags": (),
    }


def host_record(world: World, host: Host) -> dict[str, Value]:
    """A host's record: capabilities, versions, the VMs resident on it."""
    capabilities = ("xen-3.0-x86_64", "xen-3.0-x86_32p") + (
        ("hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64") if host.hvm else ()
    )
    return {
        "uuid": host.uuid,
        "name_label": host.name_label,
        "name_description": "",
        "address": host.address,
        "hostname": host.name_label,
        "enabled": True,
        "API_version_major": API_VERSION[0],
        "API_version_minor": API_VERSION[1],
        "API_version_vendor": "XenSource",
        "capabilities": capabilities,
        "software_version": {
            "product_brand": "xapi-conformance",
            "product_version": "0.1.0",
            "platform_name": "XCP",
            "platform_version": "3.4.0",
            "xapi": "24.19",
            "xen": "4.17.0",
        },
        "memory_overhead": 0,
        "control_domain": host.control_domain,
        "resident_VMs": tuple(r for r, vm in world.vms.items() if vm["resident_on"] == host.ref),
        "metrics": NULL_REF,
        "other_config": {},
        "tags": (),
    }


def task_record(task: Task) -> dict[str, Value]:
    """A task's record; ``result`` is the encoded text of the value, as xapi stores it."""
    finished = task.status != "pending"
    return {
        "uuid": task.uuid,
        "name_label": task.name_label,
        "name_description": "",
        "allowed_operations": (),
        "current_operations": {},
        "created": task.created,
        "finished": task.created,
        "status": task.status,
        "resident_on": NULL_REF,
        "progress": 1.0 if finished else 0.0,
        "type": "<none/>",
        "result": Encoded(task.result) if task.status == "success" else "",
        "error_info": task.error_info,
        "other_config": {},
        "subtask_of": NULL_REF,
        "subtasks": (),
        "backtrace": "()",
    }


def _lookup(
    cls: str, table: Callable[[World], Mapping[str, object]]
) -> Callable[[World, Value], str]:
    def find(world: World, ref: Value) -> str:
        if str(ref) not in table(world):
            raise handle_invalid(cls, str(ref))
        return str(ref)

    return find


_pool_ref = _lookup("pool", lambda w: {w.pool.ref: w.pool})
_host_ref = _lookup("host", lambda w: w.hosts)
_sr_ref = _lookup("SR", lambda w: w.srs)
_task_ref = _lookup("task", lambda w: w.tasks)


def _records(cls: str, world: World) -> dict[str, dict[str, Value]]:
    if cls == "pool":
        return {world.pool.ref: pool_record(world)}
    if cls == "host":
        return {ref: host_record(world, h) for ref, h in world.hosts.items()}
    if cls == "SR":
        return {ref: dict(sr) for ref, sr in world.srs.items()}
    return {ref: task_record(t) for ref, t in world.tasks.items()}


_FINDERS = {"pool": _pool_ref, "host": _host_ref, "SR": _sr_ref, "task": _task_ref}


def _class_handlers(cls: str) -> dict[str, Handler]:
    find = _FINDERS[cls]

    def get_all(ctx: Ctx, _: tuple[Value, ...]) -> Result:
        return done(ctx.world, tuple(_records(cls, ctx.world)))

    def get_all_records(ctx: Ctx, _: tuple[Value, ...]) -> Result:
        return done(ctx.world, _records(cls, ctx.world))

    def get_record(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        return done(ctx.world, _records(cls, ctx.world)[find(ctx.world, args[0])])

    def get_by_uuid(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        for ref, record in _records(cls, ctx.world).items():
            if record["uuid"] == args[0]:
                return done(ctx.world, ref)
        raise uuid_invalid(cls, str(args[0]))

    return {
        "get_all": get_all,
        "get_all_records": get_all_records,
        "get_record": get_record,
        "get_by_uuid": get_by_uuid,
    }


def _field_getter(cls: str, field: str) -> Handler:
    find = _FINDERS[cls]

    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        return done(ctx.world, _records(cls, ctx.world)[find(ctx.world, args[0])][field])

    return handler


def _task_destroy(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    ref = _task_ref(ctx.world, args[0])
    tasks = {k: v for k, v in ctx.world.tasks.items() if k != ref}
    return done(replace(ctx.world, tasks=MappingProxyType(tasks)))


def _task_cancel(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """Tasks of the model finish at once, so there is nothing left to cancel."""
    _task_ref(ctx.world, args[0])
    return done(ctx.world)


_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "pool": (
        ("master", "host ref"),
        ("restrictions", "(string -> string) map"),
        ("other_config", "(string -> string) map"),
        ("uuid", "string"),
        ("name_label", "string"),
    ),
    "host": (
        ("capabilities", "string set"),
        ("software_version", "(string -> string) map"),
        ("name_label", "string"),
        ("uuid", "string"),
        ("address", "string"),
        ("resident_VMs", "VM ref set"),
        ("API_version_major", "int"),
        ("API_version_minor", "int"),
    ),
    "SR": (("name_label", "string"), ("uuid", "string")),
    "task": (
        ("status", "task_status_type"),
        ("result", "string"),
        ("error_info", "string set"),
        ("progress", "float"),
        ("name_label", "string"),
        ("uuid", "string"),
    ),
}


def _class_messages(cls: str) -> dict[str, tuple[Message, Handler]]:
    record_type = f"{cls} record"
    shapes = {
        "get_all": ("", f"{cls} ref set"),
        "get_all_records": ("", f"({cls} ref -> {record_type}) map"),
        "get_record": (f"{cls} ref self", record_type),
        "get_by_uuid": ("string uuid", f"{cls} ref"),
    }
    handlers = _class_handlers(cls)
    entries = {
        f"{cls}.{name}": (_message(f"{cls}.{name}", params, returns), handlers[name])
        for name, (params, returns) in shapes.items()
    }
    for field, type_text in _FIELDS[cls]:
        name = f"{cls}.get_{field}"
        entries[name] = (_message(name, f"{cls} ref self", type_text), _field_getter(cls, field))
    return entries


def _all_messages() -> dict[str, tuple[Message, Handler]]:
    entries: dict[str, tuple[Message, Handler]] = {
        "session.login_with_password": (
            _message(
                "session.login_with_password",
                'string uname,string pwd,string version="1.1",string originator=""',
                "session ref",
            ),
            _login,
        ),
        "session.logout": (_message("session.logout"), _logout),
        "task.destroy": (_message("task.destroy", "task ref self"), _task_destroy),
        "task.cancel": (_message("task.cancel", "task ref self"), _task_cancel),
    }
    for cls in _FIELDS:
        entries.update(_class_messages(cls))
    return entries


OTHER_MESSAGES: Mapping[str, tuple[Message, Handler]] = MappingProxyType(_all_messages())
"""Wire name → (message, handler) for the non-VM messages the model answers."""
