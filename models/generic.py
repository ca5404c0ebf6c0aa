"""Behaviour that follows from the catalogue alone: getters, setters, map and set edits, queries."""

from __future__ import annotations

from collections.abc import Callable

from models.catalogue import MessageKind, kind_of
from models.checks import readings, update_vm
from models.errors import internal_error, map_duplicate_key, uuid_invalid
from models.outcome import Success, Value
from models.records import read_record, read_records
from models.schema import Message
from models.transition import Branch, Ctx, Handler, Result, as_map, done, vm_of
from models.world import World

__all__ = ["generic_handler", "revealing_read"]

RECOMPUTING_FIELDS = frozenset({"blocked_operations"})
"""Fields whose edits recompute allowed_operations (the forwarding layer does it for these)."""


def _getter(field: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        vm_of(ctx.world, args[0])
        if field == "allowed_operations":
            return revealing_read(ctx.world, lambda world: read_record(world, str(args[0]))[field])
        return done(ctx.world, read_record(ctx.world, str(args[0]))[field])

    return handler


def revealing_read(world: World, value_in: Callable[[World], Value]) -> Result:
    """A read that shows allowed_operations: one branch per world the answer may reveal.

    Where the answer is the same in every such world it reveals nothing, and the fact stays
    unknown.
    """
    values = [(value_in(seen), seen) for seen in readings(world)]
    if all(value == values[0][0] for value, _ in values):
        return done(world, values[0][0])
    return tuple(Branch(Success(value), seen) for value, seen in values)


def _setter(field: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref = str(args[0])
        vm_of(ctx.world, ref)
        value = tuple(dict.fromkeys(args[1])) if isinstance(args[1], tuple) else args[1]
        recompute = field in RECOMPUTING_FIELDS
        return done(update_vm(ctx.world, ref, {field: value}, recompute=recompute))

    return handler


def _map_add(field: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref, key, value = str(args[0]), str(args[1]), args[2]
        current = as_map(vm_of(ctx.world, ref)[field])
        if key == "":
            raise internal_error("Db_exn.Empty_key_in_map")  # text unconfirmed (§15.1)
        if key in current:
            raise map_duplicate_key("VM", field, ref, key)
        changes = {field: {**current, key: value}}
        return done(update_vm(ctx.world, ref, changes, recompute=field in RECOMPUTING_FIELDS))

    return handler


def _map_remove(field: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref, key = str(args[0]), str(args[1])
        current = as_map(vm_of(ctx.world, ref)[field])
        changes = {field: {k: v for k, v in current.items() if k != key}}
        return done(update_vm(ctx.world, ref, changes, recompute=field in RECOMPUTING_FIELDS))

    return handler


def _set_edit(field: str, *, add: bool) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref, item = str(args[0]), args[1]
        current = vm_of(ctx.world, ref)[field]
        items = tuple(current) if isinstance(current, tuple) else ()
        edited = (*items, item) if add and item not in items else items
        if not add:
            edited = tuple(x for x in items if x != item)
        return done(update_vm(ctx.world, ref, {field: edited}, recompute=False))

    return handler


def _get_record(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    vm_of(ctx.world, args[0])
    return revealing_read(ctx.world, lambda world: read_record(world, str(args[0])))


def _get_all(ctx: Ctx, _: tuple[Value, ...]) -> Result:
    return done(ctx.world, tuple(ctx.world.vms))


def _get_all_records(ctx: Ctx, _: tuple[Value, ...]) -> Result:
    return revealing_read(ctx.world, read_records)


def _get_by_uuid(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    for ref, vm in ctx.world.vms.items():
        if vm["uuid"] == args[0]:
            return done(ctx.world, ref)
    raise uuid_invalid("VM", str(args[0]))


def _get_by_name_label(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    refs = tuple(ref for ref, vm in ctx.world.vms.items() if vm["name_label"] == args[0])
    return done(ctx.world, refs)


_BY_FIELD: dict[MessageKind, Callable[[str], Handler]] = {
    MessageKind.GET_FIELD: _getter,
    MessageKind.SET_FIELD: _setter,
    MessageKind.MAP_ADD: _map_add,
    MessageKind.MAP_REMOVE: _map_remove,
    MessageKind.SET_ADD: lambda field: _set_edit(field, add=True),
    MessageKind.SET_REMOVE: lambda field: _set_edit(field, add=False),
}

_QUERIES: dict[MessageKind, Handler] = {
    MessageKind.GET_RECORD: _get_record,
    MessageKind.GET_ALL: _get_all,
    MessageKind.GET_ALL_RECORDS: _get_all_records,
    MessageKind.GET_BY_UUID: _get_by_uuid,
    MessageKind.GET_BY_NAME_LABEL: _get_by_name_label,
}


def generic_handler(message: Message) -> Handler | None:
    """The catalogue-derived handler of ``message``, or None if it needs explicit rules."""
    kind, field = kind_of(message)
    if kind in _QUERIES:
        return _QUERIES[kind]
    if kind in _BY_FIELD and field is not None:
        return _BY_FIELD[kind](field)
    return None
