"""The memory rules of the VM class: the order and pinning invariants and the boot-time check.

Spec §6.1. Sources: xapi ``ocaml/xapi/vm_memory_constraints.ml`` (the predicates),
``ocaml/xapi/xapi_vm_memory_constraints.ml`` (``assert_valid_for_current_context``: which rule
applies and the MAXPIN reason) and ``Xapi_vm_helpers.validate_memory`` (the boot check,
``transform``). All values are bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models.outcome import Failure, Value

__all__ = [
    "MemoryContext",
    "MemoryTuple",
    "are_pinned",
    "are_pinned_at_static_max",
    "are_valid",
    "boot_check",
    "booted_domain_type",
    "check_constraints",
    "dmc_enabled",
    "metrics_flags",
    "nested_virt",
    "pin_reason",
    "platform_flag",
]

REASON_DMC_DISABLED = "DMC disabled"
REASON_CONTROL_DOMAIN = "control domain"
REASON_NESTED_VIRT = "nested virt"


def _int_field(vm: Mapping[str, Value], key: str, default: int | None = None) -> int:
    """Read an int field of a VM record; a missing field takes ``default`` if one is given."""
    value = vm[key] if default is None else vm.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"VM field {key!r} must be an int, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class MemoryTuple:
    """The five memory fields of a VM, in xapi's ``Vm_memory_constraints.create`` order."""

    static_min: int
    dynamic_min: int
    target: int
    dynamic_max: int
    static_max: int

    @classmethod
    def from_record(cls, vm: Mapping[str, Value]) -> MemoryTuple:
        """Extract the tuple from a VM record (``memory_*`` fields; a missing target is 0)."""
        return cls(
            static_min=_int_field(vm, "memory_static_min"),
            dynamic_min=_int_field(vm, "memory_dynamic_min"),
            target=_int_field(vm, "memory_target", default=0),
            dynamic_max=_int_field(vm, "memory_dynamic_max"),
            static_max=_int_field(vm, "memory_static_max"),
        )


def are_valid(m: MemoryTuple) -> bool:
    """The order rule: ``static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max`` (target ignored)."""
    return m.static_min <= m.dynamic_min <= m.dynamic_max <= m.static_max


def are_pinned(m: MemoryTuple) -> bool:
    """xapi's ``are_pinned``: ``dynamic_min = dynamic_max`` (target and statics ignored)."""
    return m.dynamic_min == m.dynamic_max


def are_pinned_at_static_max(m: MemoryTuple) -> bool:
    """xapi's ``are_valid_and_pinned_at_static_max``: ``static_min ≤ dynamic_min = dynamic_max =
    static_max`` (target ignored)."""
    return m.static_min <= m.dynamic_min and m.dynamic_min == m.dynamic_max == m.static_max


@dataclass(frozen=True)
class MemoryContext:
    """The facts beyond the four limits that decide which memory rule applies (§6.1)."""

    dmc_enabled: bool
    """The pool feature DMC is enabled (see :func:`dmc_enabled`)."""
    is_control_domain: bool
    """The VM's ``is_control_domain`` flag."""
    nested_virt: bool
    """The VM uses nested virtualisation (see :func:`nested_virt`)."""

    @classmethod
    def from_record(
        cls,
        vm: Mapping[str, Value],
        pool_restrictions: Mapping[str, str],
        captured: tuple[bool, bool] | None = None,
    ) -> MemoryContext:
        """The context of a VM record in a pool with ``pool_restrictions``; ``captured`` is the
        VM's ``(nomigrate, nested_virt)`` in its VM_metrics (see :func:`metrics_flags`)."""
        control = vm.get("is_control_domain", False)
        if not isinstance(control, bool):
            raise TypeError("VM field 'is_control_domain' must be a bool")
        return cls(
            dmc_enabled=dmc_enabled(pool_restrictions),
            is_control_domain=control,
            nested_virt=metrics_flags(vm, captured)[1],
        )


def pin_reason(ctx: MemoryContext) -> str | None:
    """Why the VM must be pinned at static_max, in xapi's priority order; None: the order rule."""
    if not ctx.dmc_enabled:
        return REASON_DMC_DISABLED
    if ctx.is_control_domain:
        return REASON_CONTROL_DOMAIN
    if ctx.nested_virt:
        return REASON_NESTED_VIRT
    return None


def check_constraints(m: MemoryTuple, ctx: MemoryContext) -> Failure | None:
    """``assert_valid_for_current_context``: the error of the rule that applies, or None.

    When pinning is required only the pinned rule is checked (it implies the order rule):
    ``MEMORY_CONSTRAINT_VIOLATION_MAXPIN [reason]``. Otherwise the order rule:
    ``MEMORY_CONSTRAINT_VIOLATION_ORDER []``.
    """
    reason = pin_reason(ctx)
    if reason is not None:
        if are_pinned_at_static_max(m):
            return None
        return Failure("MEMORY_CONSTRAINT_VIOLATION_MAXPIN", (reason,))
    if are_valid(m):
        return None
    return Failure("MEMORY_CONSTRAINT_VIOLATION_ORDER")


def boot_check(m: MemoryTuple) -> Failure | None:
    """The weaker boot-time rule (``transform``): ``MEMORY_CONSTRAINT_VIOLATION []`` only when
    ``static_max < static_min`` or ``dynamic_max < dynamic_min``; dynamic values outside the
    static range are clamped by xapi, not rejected."""
    if m.static_max < m.static_min or m.dynamic_max < m.dynamic_min:
        return Failure("MEMORY_CONSTRAINT_VIOLATION")
    return None


def platform_flag(vm: Mapping[str, Value], key: str) -> bool:
    """xapi's ``Vm_platform.is_true ~default:false`` on the VM's ``platform`` map.

    True for "true" or "1" (case-insensitive); False when the key is missing or has any other
    value.
    """
    platform = vm.get("platform", {})
    if not isinstance(platform, Mapping):
        raise TypeError("VM field 'platform' must be a map")
    value = platform.get(key)
    return isinstance(value, str) and value.lower() in {"true", "1"}


def nested_virt(vm: Mapping[str, Value]) -> bool:
    """The platform asks for nested virt: ``platform:nested-virt`` is "true" or "1".

    What xenopsd captures at boot and VM.start's CP-18860 check read; the memory rules and the
    mobility checks read :func:`metrics_flags` instead.
    """
    return platform_flag(vm, "nested-virt")


def metrics_flags(vm: Mapping[str, Value], captured: tuple[bool, bool] | None) -> tuple[bool, bool]:
    """``(nomigrate, nested_virt)`` as xapi_vm_lifecycle.ml ``nomigrate``/``nested_virt`` read them.

    The VM's VM_metrics first: VM.create makes them with both false, xenopsd sets them from the
    platform at each boot and nothing clears them at shutdown; clone, copy, snapshot and revert
    copy them (xapi_vm_helpers.ml ``copy_metrics``). ``captured`` is that pair, None while no
    boot has set it. Only a VM without metrics (a null ref) falls back to its platform keys.
    """
    if vm.get("metrics", "OpaqueRef:NULL") != "OpaqueRef:NULL":
        return captured if captured is not None else (False, False)
    return platform_flag(vm, "nomigrate"), nested_virt(vm)


def booted_domain_type(vm: Mapping[str, Value], captured: str | None) -> str:
    """The domain type xapi reads of a live VM (VM_metrics ``current_domain_type``): what its
    last boot reported (``captured``), or its record's where the model saw no boot."""
    if captured:
        return captured
    recorded = vm.get("domain_type", "")
    return recorded if isinstance(recorded, str) else ""


def dmc_enabled(pool_restrictions: Mapping[str, str]) -> bool:
    """The pool feature DMC is enabled iff ``restrict_dmc`` is exactly "false".

    A missing key means disabled: ``Features.of_assoc_list`` treats unknown features as
    restricted unless they are in ``enabled_when_unknown``, and DMC is not.
    """
    return pool_restrictions.get("restrict_dmc") == "false"
