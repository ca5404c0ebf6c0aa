"""Running xapi's operation check on a VM, once per value of the facts the caller cannot see."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from models.operations import OpContext, allowed_operations, check_operation_error
from models.outcome import Value
from models.transition import Branch, Result, attempt, failed, vm_of
from models.world import Record, World, with_vm

__all__ = ["driver_variants", "guarded", "merge", "op_context", "refresh", "update_vm"]


def driver_variants(world: World) -> tuple[bool, ...]:
    """The guest-driver states to consider: the known one, or both when unknown."""
    known = world.facts.guest_has_pv_drivers
    return (True, False) if known is None else (known,)


def op_context(world: World, *, drivers: bool, strict: bool = True) -> OpContext:
    """The OpContext for this world and one guest-driver assumption."""
    return OpContext(
        strict=strict,
        clone_suspended_allowed=world.facts.clone_suspended_allowed
        or world.pool.other_config.get("allow_clone_suspended_vm") == "true",
        guest_has_pv_drivers=drivers,
        booted_flags=world.booted_flags,
    )


def merge(*results: Result) -> Result:
    """The union of several results, without duplicate branches, in first-seen order."""
    seen: list[Branch] = []
    for result in results:
        seen.extend(branch for branch in result if branch not in seen)
    return tuple(seen)


def guarded(
    world: World,
    ref: Value,
    op: str,
    body: Callable[[Record], Result],
    *,
    strict: bool = True,
) -> Result:
    """``check_operation_error`` for ``op`` then ``body``, branching on unknown guest drivers."""
    vm = vm_of(world, ref)
    results: list[Result] = []
    for drivers in driver_variants(world):
        context = op_context(world, drivers=drivers, strict=strict)
        failure = check_operation_error(str(ref), vm, op, context)
        results.append(failed(world, failure) if failure else attempt(world, lambda: body(vm)))
    return merge(*results)


def refresh(world: World, ref: str) -> World:
    """The world after update_allowed_operations on VM ``ref`` (if it still exists)."""
    vm = world.vms.get(ref)
    if vm is None:
        return world
    drivers = driver_variants(world)[0]
    ops = allowed_operations(ref, vm, op_context(world, drivers=drivers))
    return with_vm(world, ref, {**vm, "allowed_operations": tuple(sorted(ops))})


def update_vm(
    world: World, ref: str, changes: Mapping[str, Value], *, recompute: bool = True
) -> World:
    """The world where VM ``ref`` has ``changes`` applied, allowed_operations recomputed."""
    updated = with_vm(world, ref, {**world.vms[ref], **changes})
    return refresh(updated, ref) if recompute else updated
