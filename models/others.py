"""The few messages of other classes that VM clients need: session, pool, host, SR and task.

Only what a client uses to log in, find its way and follow an ``Async.`` call; these are not the
subject of conformance, so they are declared here by hand rather than read from a reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from models.errors import XenAPIError, handle_invalid, map_duplicate_key, uuid_invalid
from models.outcome import Encoded, Value
from models.placement import free_memory
from models.rbac import check_map_update, check_permission
from models.records import EPOCH
from models.schema import Message, Param, parse_type
from models.transition import Ctx, Handler, Result, as_map, done
from models.world import NULL_REF, Host, SessionInfo, Task, World, new_ids

__all__ = [
    "OTHER_MESSAGES",
    "SESSIONLESS",
    "SR_DEFAULTS",
    "host_record",
    "login",
    "pool_record",
    "session_record",
    "sr_record",
    "task_record",
]

SESSIONLESS = frozenset({"session.login_with_password"})
"""Messages whose first parameter is not a session."""


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


def login(world: World, user: str, password: str, originator: str = "") -> tuple[str, World]:
    """session.login_with_password: a new session ref, or SESSION_AUTHENTICATION_FAILED."""
    account = world.accounts.get(user)
    if account is None or account.password != password:
        raise XenAPIError("SESSION_AUTHENTICATION_FAILED", user, "Authentication failure")
    ref, session_uuid, world = new_ids(world)
    info = SessionInfo(account.name, account.role, account.superuser, session_uuid, originator)
    return ref, replace(world, sessions=MappingProxyType({**world.sessions, ref: info}))


def _login(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    ref, world = login(ctx.world, str(args[0]), str(args[1]), str(args[3]))
    return done(world, ref)


def _logout(ctx: Ctx, _: tuple[Value, ...]) -> Result:
    sessions = {k: v for k, v in ctx.world.sessions.items() if k != ctx.session_ref}
    return done(replace(ctx.world, sessions=MappingProxyType(sessions)))


MAP = "(string -> string) map"

_POOL_FIELDS: tuple[tuple[str, str], ...] = (
    ("uuid", "string"),
    ("name_label", "string"),
    ("name_description", "string"),
    ("master", "host ref"),
    ("default_SR", "SR ref"),
    ("suspend_image_SR", "SR ref"),
    ("crash_dump_SR", "SR ref"),
    ("ha_enabled", "bool"),
    ("wlb_enabled", "bool"),
    ("restrictions", MAP),
    ("other_config", MAP),
    ("gui_config", MAP),
    ("tags", "string set"),
)

_HOST_FIELDS: tuple[tuple[str, str], ...] = (
    ("uuid", "string"),
    ("name_label", "string"),
    ("name_description", "string"),
    ("address", "string"),
    ("hostname", "string"),
    ("enabled", "bool"),
    ("API_version_major", "int"),
    ("API_version_minor", "int"),
    ("API_version_vendor", "string"),
    ("API_version_vendor_implementation", MAP),
    ("capabilities", "string set"),
    ("software_version", MAP),
    ("cpu_info", MAP),
    ("memory_overhead", "int"),
    ("bios_strings", MAP),
    ("virtual_hardware_platform_versions", "int set"),
    ("control_domain", "VM ref"),
    ("resident_VMs", "VM ref set"),
    ("metrics", "host_metrics ref"),
    ("other_config", MAP),
    ("tags", "string set"),
)

_SR_FIELDS: tuple[tuple[str, str], ...] = (
    ("uuid", "string"),
    ("name_label", "string"),
    ("name_description", "string"),
    ("type", "string"),
    ("content_type", "string"),
    ("shared", "bool"),
    ("physical_size", "int"),
    ("physical_utilisation", "int"),
    ("virtual_allocation", "int"),
    ("VDIs", "VDI ref set"),
    ("PBDs", "PBD ref set"),
    ("other_config", MAP),
    ("sm_config", MAP),
    ("tags", "string set"),
    ("allowed_operations", "storage_operations set"),
    ("current_operations", "(string -> storage_operations) map"),
    ("clustered", "bool"),
    ("is_tools_sr", "bool"),
)

_SESSION_FIELDS: tuple[tuple[str, str], ...] = (
    ("uuid", "string"),
    ("this_host", "host ref"),
    ("this_user", "user ref"),
    ("pool", "bool"),
    ("is_local_superuser", "bool"),
    ("subject", "subject ref"),
    ("auth_user_name", "string"),
    ("originator", "string"),
    ("parent", "session ref"),
    ("other_config", MAP),
)

SR_DEFAULTS: Mapping[str, Value] = MappingProxyType(
    {
        "uuid": "",
        "name_label": "",
        "name_description": "",
        "type": "ext",
        "content_type": "user",
        "shared": False,
        "physical_size": 0,
        "physical_utilisation": 0,
        "virtual_allocation": 0,
        "VDIs": (),
        "PBDs": (),
        "other_config": {},
        "sm_config": {},
        "tags": (),
        "allowed_operations": (),
        "current_operations": {},
        "clustered": False,
        "is_tools_sr": False,
    }
)
"""An SR's fields where the world's record leaves them out (e.g. imported from a real pool)."""


def pool_record(world: World) -> dict[str, Value]:
    """The pool's record as a client reads it (the fields a VM client uses)."""
    pool = world.pool
    default_sr = next(iter(world.srs), NULL_REF)
    return {
        "uuid": pool.uuid,
        "name_label": "",
        "name_description": "",
        "master": pool.master,
        "default_SR": default_sr,
        "suspend_image_SR": default_sr,
        "crash_dump_SR": default_sr,
        "ha_enabled": False,
        "wlb_enabled": False,
        "restrictions": dict(pool.restrictions),
        "other_config": dict(pool.other_config),
        "gui_config": {},
        "tags": (),
    }


def host_record(world: World, host: Host) -> dict[str, Value]:
    """A host's record: capabilities, the versions of the release followed, resident VMs."""
    capabilities = ("xen-3.0-x86_64", "xen-3.0-x86_32p") + (
        ("hvm-3.0-x86_32", "hvm-3.0-x86_32p", "hvm-3.0-x86_64") if host.hvm else ()
    )
    release = world.release
    return {
        "uuid": host.uuid,
        "name_label": host.name_label,
        "name_description": "",
        "address": host.address,
        "hostname": host.name_label,
        "enabled": host.enabled,
        "API_version_major": release.api_major,
        "API_version_minor": release.api_minor,
        "API_version_vendor": "XenSource",
        "API_version_vendor_implementation": {},
        "capabilities": capabilities,
        "software_version": release.software_version(host.name_label),
        "cpu_info": {
            "cpu_count": str(host.cpu_count),
            "socket_count": "1",
            "vendor": "GenuineIntel",
        },
        "memory_overhead": host.memory_overhead,
        "bios_strings": dict(host.bios_strings),
        "virtual_hardware_platform_versions": host.virtual_hardware_platform_versions,
        "control_domain": host.control_domain,
        "resident_VMs": tuple(r for r, vm in world.vms.items() if vm["resident_on"] == host.ref),
        "metrics": NULL_REF,
        "other_config": {},
        "tags": (),
    }


def sr_record(world: World, ref: str) -> dict[str, Value]:
    """SR ``ref``'s record, every field present."""
    return {**SR_DEFAULTS, **world.srs[ref]}


def session_record(world: World, ref: str) -> dict[str, Value]:
    """Session ``ref``'s record: logged in to the pool master (``this_host``), never a pool one."""
    info = world.sessions[ref]
    return {
        "uuid": info.uuid,
        "this_host": world.pool.master,
        "this_user": NULL_REF,
        "pool": False,
        "is_local_superuser": info.superuser,
        "subject": NULL_REF,
        "auth_user_name": info.user,
        "originator": info.originator,
        "parent": NULL_REF,
        "other_config": {},
    }


def task_record(task: Task) -> dict[str, Value]:
    """A task's record; ``result`` is the encoded text of the value, as xapi stores it."""
    finished = task.status != "pending"
    ended = (task.finished or task.created) if finished else EPOCH  # Date.epoch while pending
    return {
        "uuid": task.uuid,
        "name_label": task.name_label,
        "name_description": "",
        "allowed_operations": (),
        "current_operations": {},
        "created": task.created,
        "finished": ended,
        "status": task.status,
        "resident_on": task.resident_on,
        "progress": 1.0 if finished else task.progress,
        "type": "<none/>",
        "result": Encoded(task.result) if task.status == "success" else "",
        "error_info": task.error_info,
        "other_config": task.other_config,
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
_session_ref = _lookup("session", lambda w: w.sessions)


def _records(cls: str, world: World) -> dict[str, dict[str, Value]]:
    if cls == "pool":
        return {world.pool.ref: pool_record(world)}
    if cls == "host":
        return {ref: host_record(world, h) for ref, h in world.hosts.items()}
    if cls == "SR":
        return {ref: sr_record(world, ref) for ref in world.srs}
    if cls == "session":
        return {ref: session_record(world, ref) for ref in world.sessions}
    return {ref: task_record(t) for ref, t in world.tasks.items()}


_FINDERS = {
    "pool": _pool_ref,
    "host": _host_ref,
    "SR": _sr_ref,
    "task": _task_ref,
    "session": _session_ref,
}


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

    def get_by_name_label(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        records = _records(cls, ctx.world).items()
        return done(ctx.world, tuple(ref for ref, r in records if r["name_label"] == args[0]))

    return {
        "get_all": get_all,
        "get_all_records": get_all_records,
        "get_record": get_record,
        "get_by_uuid": get_by_uuid,
        "get_by_name_label": get_by_name_label,
    }


def _field_getter(cls: str, field: str) -> Handler:
    find = _FINDERS[cls]

    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        return done(ctx.world, _records(cls, ctx.world)[find(ctx.world, args[0])][field])

    return handler


_TASK_ANY = _message("task.destroy/any", role="pool-operator")
"""xapi's extra permission to act on another subject's task (``_R_POOL_OP`` and above)."""


def _assert_task_op_valid(ctx: Ctx, ref: str) -> None:
    """``TaskHelper.assert_op_valid``: a subject may act on its own tasks; others need
    ``task.destroy/any``. A task is one's own when the session that made it belongs to the same
    user; once that session is gone, it is no one's.
    """
    owner = ctx.world.sessions.get(ctx.world.tasks[ref].session)
    if owner is not None and owner.user == ctx.session.user:
        return
    check_permission(ctx.session, _TASK_ANY.name, _TASK_ANY, ())


def _pool_add_to_other_config(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    pool = ctx.world.pool
    _pool_ref(ctx.world, args[0])
    key, value = str(args[1]), str(args[2])
    if key in pool.other_config:
        raise map_duplicate_key("pool", "other_config", pool.ref, key)
    other_config = MappingProxyType({**pool.other_config, key: value})
    return done(replace(ctx.world, pool=replace(pool, other_config=other_config)))


def _pool_remove_from_other_config(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    pool = ctx.world.pool
    _pool_ref(ctx.world, args[0])
    kept = {k: v for k, v in pool.other_config.items() if k != str(args[1])}
    other_config = MappingProxyType(kept)
    return done(replace(ctx.world, pool=replace(pool, other_config=other_config)))


def _host_enabled(enabled: bool) -> Handler:
    """host.disable (xapi_host.ml ``disable``: no new VM starts there; ``auto_enable`` only
    matters across a toolstack restart) or host.enable (``enable``: the simulator's hosts
    always have their storage, so re-enabling is safe)."""

    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref = _host_ref(ctx.world, args[0])
        hosts = {**ctx.world.hosts, ref: replace(ctx.world.hosts[ref], enabled=enabled)}
        return done(replace(ctx.world, hosts=MappingProxyType(hosts)))

    return handler


def _host_compute_free_memory(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """host.compute_free_memory (xapi_host.ml: memory_check.ml
    ``host_compute_free_memory_with_maximum_compression``, the figure VM.start's memory check
    compares with what the VM needs)."""
    ref = _host_ref(ctx.world, args[0])
    return done(ctx.world, free_memory(ctx.world, ctx.world.hosts[ref]))


def _task_destroy(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    ref = _task_ref(ctx.world, args[0])
    _assert_task_op_valid(ctx, ref)
    tasks = {k: v for k, v in ctx.world.tasks.items() if k != ref}
    return done(replace(ctx.world, tasks=MappingProxyType(tasks)))


def _task_cancel(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """Tasks of the model finish at once, so there is nothing left to cancel."""
    _assert_task_op_valid(ctx, _task_ref(ctx.world, args[0]))
    return done(ctx.world)


def _task_other_config(ctx: Ctx, ref: Value, change: Callable[[dict[str, str]], None]) -> Result:
    """Xapi_task's other_config messages: only on one's own task (``assert_op_valid``), then
    ``change`` edits the map (it may raise)."""
    task = ctx.world.tasks[_task_ref(ctx.world, ref)]
    _assert_task_op_valid(ctx, task.ref)
    other_config = dict(task.other_config)
    change(other_config)
    changed = replace(task, other_config=MappingProxyType(other_config))
    return done(replace(ctx.world, tasks=MappingProxyType({**ctx.world.tasks, task.ref: changed})))


def _task_add_to_other_config(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    key, value = str(args[1]), str(args[2])

    def add(other_config: dict[str, str]) -> None:
        if key in other_config:
            raise map_duplicate_key("task", "other_config", str(args[0]), key)
        other_config[key] = value

    return _task_other_config(ctx, args[0], add)


def _task_remove_from_other_config(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    def remove(other_config: dict[str, str]) -> None:
        other_config.pop(str(args[1]), None)

    return _task_other_config(ctx, args[0], remove)


def _task_set_other_config(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """``Helpers.set_map_with_rbac``: each protected key added, changed or removed needs its
    own permission, checked after the task's ownership."""
    new = {str(k): str(v) for k, v in as_map(args[1]).items()}

    def replace_all(other_config: dict[str, str]) -> None:
        check_map_update(ctx.session, "other_config", dict(other_config), new, "task")
        other_config.clear()
        other_config.update(new)

    return _task_other_config(ctx, args[0], replace_all)


_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "pool": _POOL_FIELDS,
    "host": _HOST_FIELDS,
    "SR": _SR_FIELDS,
    "session": _SESSION_FIELDS,
    "task": (
        ("status", "task_status_type"),
        ("result", "string"),
        ("error_info", "string set"),
        ("progress", "float"),
        ("name_label", "string"),
        ("name_description", "string"),
        ("uuid", "string"),
        ("other_config", MAP),
        ("created", "datetime"),
        ("finished", "datetime"),
        ("resident_on", "host ref"),
        ("subtask_of", "task ref"),
        ("subtasks", "task ref set"),
        ("type", "string"),
        ("backtrace", "string"),
    ),
}

_CLASS_MESSAGES: dict[str, tuple[str, ...]] = {
    "pool": ("get_all", "get_all_records", "get_record", "get_by_uuid"),
    "host": ("get_all", "get_all_records", "get_record", "get_by_uuid", "get_by_name_label"),
    "SR": ("get_all", "get_all_records", "get_record", "get_by_uuid", "get_by_name_label"),
    "session": ("get_record", "get_by_uuid"),
    "task": ("get_all", "get_all_records", "get_record", "get_by_uuid", "get_by_name_label"),
}
"""Per class, the generic messages xapi generates for it: ``get_by_name_label`` only where the
class has a ``name`` namespace (pool's ``name_label`` is a plain field, so pool has none)."""


def _class_messages(cls: str) -> dict[str, tuple[Message, Handler]]:
    record_type = f"{cls} record"
    shapes = {
        "get_all": ("", f"{cls} ref set"),
        "get_all_records": ("", f"({cls} ref -> {record_type}) map"),
        "get_record": (f"{cls} ref self", record_type),
        "get_by_uuid": ("string uuid", f"{cls} ref"),
        "get_by_name_label": ("string label", f"{cls} ref set"),
    }
    handlers = _class_handlers(cls)
    entries = {
        f"{cls}.{name}": (_message(f"{cls}.{name}", *shapes[name]), handlers[name])
        for name in _CLASS_MESSAGES[cls]
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
        "pool.add_to_other_config": (
            _message(
                "pool.add_to_other_config",
                "pool ref self,string key,string value",
                role="pool-operator",
            ),
            _pool_add_to_other_config,
        ),
        "pool.remove_from_other_config": (
            _message(
                "pool.remove_from_other_config", "pool ref self,string key", role="pool-operator"
            ),
            _pool_remove_from_other_config,
        ),
        "host.disable": (
            _message("host.disable", "host ref host,bool auto_enable=true", role="pool-operator"),
            _host_enabled(False),
        ),
        "host.enable": (
            _message("host.enable", "host ref host", role="pool-operator"),
            _host_enabled(True),
        ),
        "host.compute_free_memory": (
            _message("host.compute_free_memory", "host ref host", "int"),
            _host_compute_free_memory,
        ),
        "task.destroy": (_message("task.destroy", "task ref self"), _task_destroy),
        "task.cancel": (_message("task.cancel", "task ref self"), _task_cancel),
        "task.add_to_other_config": (
            _message("task.add_to_other_config", "task ref self,string key,string value"),
            _task_add_to_other_config,
        ),
        "task.remove_from_other_config": (
            _message("task.remove_from_other_config", "task ref self,string key"),
            _task_remove_from_other_config,
        ),
        "task.set_other_config": (
            _message("task.set_other_config", f"task ref self,{MAP} value"),
            _task_set_other_config,
        ),
    }
    for cls in _FIELDS:
        entries.update(_class_messages(cls))
    return entries


OTHER_MESSAGES: Mapping[str, tuple[Message, Handler]] = MappingProxyType(_all_messages())
"""Wire name → (message, handler) for the non-VM messages the model answers."""
