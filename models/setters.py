"""Setters with rules of their own: memory (§6), VCPUs (§6.3) and the validated setters of §10."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from models.accounting import vm_memory_overhead
from models.checks import guarded, refresh, update_vm
from models.errors import XenAPIError, handle_invalid, invalid_value, vm_bad_power_state
from models.features import assert_enabled
from models.memory import MemoryContext, MemoryTuple, booted_domain_type, check_constraints
from models.outcome import Value
from models.placement import free_memory, ocaml_float, resident_host
from models.transition import Ctx, Handler, Result, as_map, done, vm_of
from models.world import NULL_REF, Record, World

__all__ = ["HANDLERS"]

VCPU_RULE = "VCPU values must satisfy: 0 < VCPUs_at_startup ≤ VCPUs_max"
VCPU_LIVE_RULE = "VCPU values must satisfy: 0 < VCPUs ≤ VCPUs_max"


def _int(value: Value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _memory_checked(world: World, ref: str, vm: Record, proposed: MemoryTuple) -> None:
    captured = world.booted_flags.get(ref)
    context = MemoryContext.from_record(vm, world.pool.restrictions, captured)
    failure = check_constraints(proposed, context)
    if failure:
        raise XenAPIError.of(failure)


def _with_overhead(world: World, vm: Record, changes: dict[str, Value]) -> dict[str, Value]:
    """``changes`` and the memory_overhead xapi stores after them (``update_memory_overhead``)."""
    changes["memory_overhead"] = vm_memory_overhead({**vm, **changes}, world.release)
    return changes


def _proposal(vm: Record, **changes: int) -> MemoryTuple:
    current = MemoryTuple.from_record(vm)
    values = {
        "static_min": current.static_min,
        "dynamic_min": current.dynamic_min,
        "target": current.target,
        "dynamic_max": current.dynamic_max,
        "static_max": current.static_max,
    }
    values.update(changes)
    return MemoryTuple(**values)


def _memory_fields(m: MemoryTuple) -> dict[str, Value]:
    return {
        "memory_static_min": m.static_min,
        "memory_dynamic_min": m.dynamic_min,
        "memory_target": m.target,
        "memory_dynamic_max": m.dynamic_max,
        "memory_static_max": m.static_max,
    }


def _reserve_for_dynamic_change(world: World, vm: Record, new_min: int) -> None:
    host = resident_host(world, vm)
    growth = new_min - _int(vm["memory_dynamic_min"])
    if vm["power_state"] != "Running" or host is None or growth <= 0:
        return
    available = free_memory(world, host)
    if growth > available:
        raise XenAPIError(
            "HOST_NOT_ENOUGH_FREE_MEMORY", str(growth // 1024), str(available // 1024)
        )


def _dynamic_range(world: World, ref: str, low: int, high: int) -> Result:
    def body(vm: Record) -> Result:
        _reserve_for_dynamic_change(world, vm, low)
        proposed = _proposal(vm, dynamic_min=low, target=low, dynamic_max=high)
        _memory_checked(world, ref, vm, proposed)
        return done(update_vm(world, ref, _memory_fields(proposed)))

    return guarded(world, ref, "changing_dynamic_range", body)


def set_memory_dynamic_range(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_memory_dynamic_range: Halted or Running; reservation, then constraints."""
    return _dynamic_range(ctx.world, str(args[0]), _int(args[1]), _int(args[2]))


def set_memory_dynamic_min(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_memory_dynamic_min: dynamic_range with dynamic_max from the DB."""
    vm = vm_of(ctx.world, args[0])
    return _dynamic_range(ctx.world, str(args[0]), _int(args[1]), _int(vm["memory_dynamic_max"]))


def set_memory_dynamic_max(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_memory_dynamic_max: dynamic_range with dynamic_min from the DB."""
    vm = vm_of(ctx.world, args[0])
    return _dynamic_range(ctx.world, str(args[0]), _int(vm["memory_dynamic_min"]), _int(args[1]))


def _static_range(world: World, ref: str, low: int, high: int) -> Result:
    def body(vm: Record) -> Result:
        proposed = _proposal(vm, static_min=low, static_max=high)
        _memory_checked(world, ref, vm, proposed)
        changes = _with_overhead(world, vm, _memory_fields(proposed))
        if vm["is_control_domain"] is True and vm["power_state"] == "Running":
            changes["requires_reboot"] = True
        return done(update_vm(world, ref, changes))

    return guarded(world, ref, "changing_static_range", body)


def set_memory_static_range(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_memory_static_range: Halted (or a running control domain); constraints."""
    return _static_range(ctx.world, str(args[0]), _int(args[1]), _int(args[2]))


def set_memory_static_min(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_memory_static_min: static_range with static_max from the DB."""
    vm = vm_of(ctx.world, args[0])
    return _static_range(ctx.world, str(args[0]), _int(args[1]), _int(vm["memory_static_max"]))


def set_memory_static_max(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_memory_static_max: static_range with static_min from the DB."""
    vm = vm_of(ctx.world, args[0])
    return _static_range(ctx.world, str(args[0]), _int(vm["memory_static_min"]), _int(args[1]))


def _limits(world: World, ref: str, values: tuple[int, int, int, int]) -> Result:
    static_min, static_max, dynamic_min, dynamic_max = values

    def body(vm: Record) -> Result:
        proposed = MemoryTuple(static_min, dynamic_min, dynamic_min, dynamic_max, static_max)
        _memory_checked(world, ref, vm, proposed)
        changes = _with_overhead(world, vm, _memory_fields(proposed))
        return done(update_vm(world, ref, changes))

    return guarded(world, ref, "changing_memory_limits", body)


def set_memory_limits(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_memory_limits(static_min, static_max, dynamic_min, dynamic_max); target=dynamic_min."""
    values = (_int(args[1]), _int(args[2]), _int(args[3]), _int(args[4]))
    return _limits(ctx.world, str(args[0]), values)


def set_memory(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_memory(value): set_memory_limits(current static_min, value, value, value)."""
    vm, value = vm_of(ctx.world, args[0]), _int(args[1])
    return _limits(ctx.world, str(args[0]), (_int(vm["memory_static_min"]), value, value, value))


def _multiplier(op: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref, value = str(args[0]), args[1]
        assert isinstance(value, float)

        def body(vm: Record) -> Result:
            if value < 1.0:
                raise invalid_value("multiplier", ocaml_float(value))
            if op == "changing_shadow_memory_live" and _booted_pv(ctx.world, ref, vm):
                # xenopsd refuses a PV domain (Unimplemented), which xapi_xenops.ml ignores
                return done(update_vm(ctx.world, ref, {}))
            changes = _with_overhead(ctx.world, vm, {"HVM_shadow_multiplier": value})
            return done(update_vm(ctx.world, ref, changes))

        return guarded(ctx.world, ref, op, body)

    handler.__doc__ = (
        f"Shadow multiplier setter ({op}): the multiplier must be at least 1.0; the overhead"
        " follows (xapi_vm_helpers.ml set_HVM_shadow_multiplier, xapi_vm.ml"
        " set_shadow_multiplier_live); live on a PV domain nothing changes (xenopsd)."
    )
    return handler


def _booted_pv(world: World, ref: str, vm: Record) -> bool:
    """Whether the VM's domain is PV: its type at its last boot (the record's if not seen)."""
    return booted_domain_type(vm, world.booted_domain_types.get(ref)) == "pv"


def _no_op(op: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref = str(args[0])
        return guarded(ctx.world, ref, op, lambda _: done(refresh(ctx.world, ref)))

    handler.__doc__ = f"A message whose only effect is the {op} operation check."
    return handler


def _is_dom0(vm: Record) -> bool:
    return vm["is_control_domain"] is True and vm["domid"] == 0


def set_VCPUs_max(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_VCPUs_max: changing_VCPUs, then 1 ≤ v and v ≥ VCPUs_at_startup."""
    ref, value = str(args[0]), _int(args[1])

    def body(vm: Record) -> Result:
        if value < 1 or value < _int(vm["VCPUs_at_startup"]):
            raise invalid_value(VCPU_RULE, str(value))
        changes = _with_overhead(ctx.world, vm, {"VCPUs_max": value})
        return done(update_vm(ctx.world, ref, changes))

    return guarded(ctx.world, ref, "changing_VCPUs", body)


def set_VCPUs_at_startup(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_VCPUs_at_startup: no op check at all; 1 ≤ v ≤ VCPUs_max; allowed ops not recomputed."""
    ref, value = str(args[0]), _int(args[1])
    vm = vm_of(ctx.world, ref)
    if _is_dom0(vm):
        raise XenAPIError("OPERATION_NOT_ALLOWED", "set_VCPUs_at_startup is not allowed on dom0")
    if not 1 <= value <= _int(vm["VCPUs_max"]):
        raise invalid_value(VCPU_RULE, str(value))
    changes = _with_overhead(ctx.world, vm, {"VCPUs_at_startup": value})
    return done(update_vm(ctx.world, ref, changes, recompute=False))


def set_VCPUs_number_live(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_VCPUs_number_live: changing_VCPUs_live, range 1..VCPUs_max, then at_startup := n.

    Out of range, xenopsd raises ``Invalid_vcpus vcpu_max`` (xenops_server.ml VM_set_vcpus) and
    xapi_xenops.ml set_vcpus turns it into INVALID_VALUE [rule; the VM's VCPUs_max]: the
    parameter is the maximum, not the number asked for.
    """
    ref, value = str(args[0]), _int(args[1])

    def body(vm: Record) -> Result:
        assert_enabled(ctx.world.pool.restrictions, "Live_set_vcpus")
        if not 1 <= value <= _int(vm["VCPUs_max"]):
            raise invalid_value(VCPU_LIVE_RULE, str(_int(vm["VCPUs_max"])))
        changes = _with_overhead(ctx.world, vm, {"VCPUs_at_startup": value})
        return done(update_vm(ctx.world, ref, changes))

    return guarded(ctx.world, ref, "changing_VCPUs_live", body)


def add_to_VCPUs_params_live(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.add_to_VCPUs_params_live: the op check, then NOT_IMPLEMENTED as xapi answers."""

    def body(_: Record) -> Result:
        raise XenAPIError("NOT_IMPLEMENTED", "add_to_VCPUs_params_live")

    return guarded(ctx.world, str(args[0]), "changing_VCPUs_live", body)


_HA_PRIORITIES = ("restart", "best-effort", "")


def _ha_priority(world: World, ref: str, value: str) -> Result:
    vm = vm_of(world, ref)
    if value not in _HA_PRIORITIES:
        raise invalid_value("ha_restart_priority", value)
    if vm["ha_restart_priority"] == value:  # xapi_vm.ml: nothing is written unless it changes
        return done(world)
    changes: dict[str, Value] = {"ha_restart_priority": value}
    if vm["power_state"] == "Running":
        changes["ha_always_run"] = value == "restart"
    return done(update_vm(world, ref, changes))


def set_ha_restart_priority(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_ha_restart_priority: one of restart, best-effort or ""; allowed ops recomputed."""
    return _ha_priority(ctx.world, str(args[0]), str(args[1]))


def set_ha_always_run(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_ha_always_run (deprecated): set_ha_restart_priority("restart" or "")."""
    return _ha_priority(ctx.world, str(args[0]), "restart" if args[1] is True else "")


def set_domain_type(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_domain_type: not "unspecified"; HVM_boot_policy follows."""
    ref, value = str(args[0]), str(args[1])
    vm_of(ctx.world, ref)
    if value == "unspecified":
        raise invalid_value("domain_type", value)
    policy = "BIOS order" if value == "hvm" else ""
    changes: dict[str, Value] = {"domain_type": value, "HVM_boot_policy": policy}
    return done(update_vm(ctx.world, ref, changes, recompute=False))


def set_HVM_boot_policy(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_HVM_boot_policy: domain_type follows ("" → pv, else hvm)."""
    ref, value = str(args[0]), str(args[1])
    vm_of(ctx.world, ref)
    changes: dict[str, Value] = {
        "HVM_boot_policy": value,
        "domain_type": "pv" if value == "" else "hvm",
    }
    return done(update_vm(ctx.world, ref, changes, recompute=False))


def _in_state(vm: Record, ref: str, state: str) -> None:
    actual = str(vm["power_state"])
    if actual != state:
        raise vm_bad_power_state(ref, state.lower(), actual.lower())


def set_has_vendor_device(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_has_vendor_device: Halted only; true raises hardware_platform_version to ≥ 2."""
    ref, value = str(args[0]), args[1] is True
    vm = vm_of(ctx.world, ref)
    _in_state(vm, ref, "Halted")
    changes: dict[str, Value] = {"has_vendor_device": value}
    if value:
        changes["hardware_platform_version"] = max(2, _int(vm["hardware_platform_version"]))
    return done(update_vm(ctx.world, ref, changes, recompute=False))


def set_suspend_VDI(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_suspend_VDI: Suspended only; the VM's own suspend VDI changes nothing (xapi_vm.ml
    acts only when the VDI differs); the model has no other VDIs, so any other is unknown."""
    ref, value = str(args[0]), str(args[1])
    vm = vm_of(ctx.world, ref)
    _in_state(vm, ref, "Suspended")
    if value == vm["suspend_VDI"]:
        return done(ctx.world)
    raise handle_invalid("VDI", value)


MADE_INTO_TEMPLATE: Mapping[str, Value] = {
    "is_a_template": True,
    "ha_always_run": False,
    "metrics": NULL_REF,
}
"""What xapi_vm_helpers.ml ``set_is_a_template true`` writes (its metrics are destroyed)."""


def set_is_a_template(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_is_a_template (§5.5): true is make_into_template; false checks nothing, stays stale."""
    ref = str(args[0])
    if args[1] is not True:
        vm_of(ctx.world, ref)
        return done(update_vm(ctx.world, ref, {"is_a_template": False}, recompute=False))
    changes = dict(MADE_INTO_TEMPLATE)
    return guarded(
        ctx.world, ref, "make_into_template", lambda _: done(update_vm(ctx.world, ref, changes))
    )


def _nvram(
    write: Callable[[Mapping[str, Value], tuple[Value, ...], str], Mapping[str, Value]],
) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref = str(args[0])

        def body(vm: Record) -> Result:
            nvram = write(as_map(vm["NVRAM"]), args[1:], ref)
            return done(update_vm(ctx.world, ref, {"NVRAM": nvram}))

        return guarded(ctx.world, ref, "changing_NVRAM", body)

    handler.__doc__ = "An NVRAM edit: the changing_NVRAM check (Halted), then the map edit."
    return handler


def _nvram_set(_: Mapping[str, Value], args: tuple[Value, ...], __: str) -> Mapping[str, Value]:
    return as_map(args[0])


def _nvram_add(old: Mapping[str, Value], args: tuple[Value, ...], ref: str) -> Mapping[str, Value]:
    key = str(args[0])
    if key in old:
        raise XenAPIError("MAP_DUPLICATE_KEY", "VM", "NVRAM", ref, key)
    return {**old, key: args[1]}


def _nvram_remove(old: Mapping[str, Value], args: tuple[Value, ...], _: str) -> Mapping[str, Value]:
    return {k: v for k, v in old.items() if k != args[0]}


def _non_negative(field_name: str) -> Handler:
    def handler(ctx: Ctx, args: tuple[Value, ...]) -> Result:
        ref = str(args[0])
        vm_of(ctx.world, ref)
        value = args[1]
        assert isinstance(value, int)
        if value < 0:
            raise invalid_value(f"{field_name} must be non-negative", str(value))
        return done(update_vm(ctx.world, ref, {field_name: value}))

    handler.__doc__ = f"VM.set_{field_name}: INVALID_VALUE for a negative value (xapi_vm.ml)."
    return handler


def set_appliance(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_appliance: never on a control domain, template or snapshot; the ref is stored as
    given (xapi's DB setter does not check it), then allowed_operations are recomputed."""
    ref = str(args[0])
    vm = vm_of(ctx.world, ref)
    if any(vm[flag] is True for flag in ("is_control_domain", "is_a_template", "is_a_snapshot")):
        raise XenAPIError(
            "OPERATION_NOT_ALLOWED",
            "Control domains, templates and snapshots cannot be assigned to appliances.",
        )
    return done(update_vm(ctx.world, ref, {"appliance": args[1]}))


def set_snapshot_schedule(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_snapshot_schedule (xapi_vm.ml): the VMSS feature first, then the schedule must be
    a VMSS, null or "" (the model has no VMSS objects: any other ref is INVALID_VALUE [ref])."""
    assert_enabled(ctx.world.pool.restrictions, "VMSS")
    ref, value = str(args[0]), str(args[1])
    if value not in (NULL_REF, ""):
        raise XenAPIError("INVALID_VALUE", value)
    vm_of(ctx.world, ref)
    return done(update_vm(ctx.world, ref, {"snapshot_schedule": value}))


HANDLERS: dict[str, Handler] = {
    "set_snapshot_schedule": set_snapshot_schedule,
    "set_start_delay": _non_negative("start_delay"),
    "set_shutdown_delay": _non_negative("shutdown_delay"),
    "set_order": _non_negative("order"),
    "set_appliance": set_appliance,
    "set_memory_dynamic_range": set_memory_dynamic_range,
    "set_memory_dynamic_min": set_memory_dynamic_min,
    "set_memory_dynamic_max": set_memory_dynamic_max,
    "set_memory_static_range": set_memory_static_range,
    "set_memory_static_min": set_memory_static_min,
    "set_memory_static_max": set_memory_static_max,
    "set_memory_limits": set_memory_limits,
    "set_memory": set_memory,
    "set_memory_target_live": _no_op("changing_memory_live"),
    "wait_memory_target_live": _no_op("awaiting_memory_live"),
    "set_HVM_shadow_multiplier": _multiplier("changing_shadow_memory"),
    "set_shadow_multiplier_live": _multiplier("changing_shadow_memory_live"),
    "set_VCPUs_max": set_VCPUs_max,
    "set_VCPUs_at_startup": set_VCPUs_at_startup,
    "set_VCPUs_number_live": set_VCPUs_number_live,
    "add_to_VCPUs_params_live": add_to_VCPUs_params_live,
    "set_ha_restart_priority": set_ha_restart_priority,
    "set_ha_always_run": set_ha_always_run,
    "set_domain_type": set_domain_type,
    "set_HVM_boot_policy": set_HVM_boot_policy,
    "set_has_vendor_device": set_has_vendor_device,
    "set_suspend_VDI": set_suspend_VDI,
    "set_is_a_template": set_is_a_template,
    "set_NVRAM": _nvram(_nvram_set),
    "add_to_NVRAM": _nvram(_nvram_add),
    "remove_from_NVRAM": _nvram(_nvram_remove),
}
