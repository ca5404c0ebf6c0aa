"""Running xapi's operation check on a VM, once per value of the facts the caller cannot see.

Where the guest-driver fact is unknown and xapi's answer depends on it, each branch fixes the
fact (``assume_drivers``): once a target has answered as a guest without drivers would, the
model keeps that fact for the rest of the example. allowed_operations, which xapi stores as it
sees the guest, is kept for both assumptions until a branch decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from models.operations import OpContext, allowed_operations, check_operation_error
from models.outcome import Value
from models.transition import Branch, Result, attempt, failed, vm_of
from models.world import Record, World, frozen, with_vm

__all__ = [
    "assume_drivers",
    "driver_variants",
    "guarded",
    "merge",
    "op_context",
    "readings",
    "refresh",
    "update_vm",
]


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
        booted_domain_types=world.booted_domain_types,
    )


def assume_drivers(world: World, drivers: bool) -> World:
    """``world`` once the guest-driver fact is known to be ``drivers`` (unchanged if known)."""
    if world.facts.guest_has_pv_drivers is not None:
        return world
    vms = dict(world.vms)
    if not drivers:
        for ref, ops in world.allowed_without_drivers.items():
            if ref in vms:
                vms[ref] = frozen({**vms[ref], "allowed_operations": ops})
    return replace(
        world,
        vms=MappingProxyType(vms),
        facts=replace(world.facts, guest_has_pv_drivers=drivers),
        allowed_without_drivers=MappingProxyType({}),
    )


def readings(world: World) -> tuple[World, ...]:
    """The worlds a read of allowed_operations may reveal: one per guest-driver assumption
    where the stored values differ, else ``world`` alone."""
    undecided = any(
        ref in world.vms and ops != world.vms[ref]["allowed_operations"]
        for ref, ops in world.allowed_without_drivers.items()
    )
    if not undecided:
        return (world,)
    return tuple(assume_drivers(world, drivers) for drivers in (True, False))


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
    """``check_operation_error`` for ``op`` then ``body``, branching on unknown guest drivers.

    When the assumptions give different answers, each branch fixes the fact it assumed.
    """
    vm = vm_of(world, ref)
    results: list[Result] = []
    variants = driver_variants(world)
    passed: Result | None = None  # the body's result: the same under every assumption
    for drivers in variants:
        context = op_context(world, drivers=drivers, strict=strict)
        failure = check_operation_error(str(ref), vm, op, context)
        if failure:
            results.append(failed(world, failure))
            continue
        if passed is None:
            passed = attempt(world, lambda: body(vm))
        results.append(passed)
    if len(results) > 1 and results[0] != results[1]:
        results = [
            tuple(Branch(b.outcome, assume_drivers(b.world, d)) for b in result)
            for d, result in zip(variants, results, strict=True)
        ]
    return merge(*results)


def refresh(world: World, ref: str) -> World:
    """The world after update_allowed_operations on VM ``ref`` (if it still exists)."""
    vm = world.vms.get(ref)
    if vm is None:
        return world
    variants = driver_variants(world)
    ops = _sorted_ops(ref, vm, op_context(world, drivers=variants[0]))
    refreshed = with_vm(world, ref, {**vm, "allowed_operations": ops})
    if len(variants) == 1:
        return refreshed
    without = _sorted_ops(ref, vm, op_context(world, drivers=False))
    alternatives = {k: v for k, v in world.allowed_without_drivers.items() if k != ref}
    if without != ops:
        alternatives[ref] = without
    return replace(refreshed, allowed_without_drivers=MappingProxyType(alternatives))


def _sorted_ops(ref: str, vm: Record, context: OpContext) -> tuple[str, ...]:
    return tuple(sorted(allowed_operations(ref, vm, context)))


def update_vm(
    world: World, ref: str, changes: Mapping[str, Value], *, recompute: bool = True
) -> World:
    """The world where VM ``ref`` has ``changes`` applied, allowed_operations recomputed."""
    updated = with_vm(world, ref, {**world.vms[ref], **changes})
    return refresh(updated, ref) if recompute else updated
