"""The operation rules of the VM class: which operation a VM accepts, and which error wins.

Spec §2 (operation × power state), §3/§3.1 (exact error parameters), §4.3 (the order of
``check_operation_error``), §5.1/§5.2 (templates, snapshots), §8 (blocked and allowed operations,
concurrency). Source: xapi ``ocaml/xapi/xapi_vm_lifecycle.ml``.

A VM record is a ``Mapping[str, Value]`` keyed by wire field names. Missing fields take their
datamodel defaults (``power_state`` "Halted", flags false, maps empty, ``domid`` -1).

Not modelled: devices (PCI, vGPU, VUSB, VDIs with ``on_boot=reset``), appliances, VMPP, VMSS and
guest metrics beyond :attr:`OpContext.guest_has_pv_drivers`. The model has no such objects, so the
checks that depend on them never fire: ``VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION``,
``VM_HAS_PCI_ATTACHED``, ``VM_HAS_VGPU``, ``VM_HAS_VUSBS``, ``VM_IS_PART_OF_AN_APPLIANCE``,
``VM_ASSIGNED_TO_PROTECTION_POLICY``, ``VM_ASSIGNED_TO_SNAPSHOT_SCHEDULE`` (§4.3 steps 13-19) and
``VM_NON_SUSPENDABLE`` (guest ``data-cant-suspend-reason``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from models.catalogue import ENUMS
from models.memory import booted_domain_type, metrics_flags
from models.outcome import Failure, Value

__all__ = [
    "IGNORED_OPS",
    "POWER_STATES",
    "RPU_ALLOWED_VM_OPERATIONS",
    "VM_OPERATIONS",
    "OpContext",
    "allowed_operations",
    "allowed_power_states",
    "check_operation_error",
    "is_allowed_concurrently",
    "is_default_template",
    "op_to_string",
]

VM_OPERATIONS: tuple[str, ...] = ENUMS["vm_operations"]
"""The ``vm_operations`` enum in datamodel order (``datamodel_vm.ml`` ``operations``)."""

IGNORED_OPS: frozenset[str] = frozenset(
    {
        "create_template",
        "power_state_reset",
        "csvm",
        "get_boot_record",
        "send_sysrq",
        "send_trigger",
        "query_services",
        "shutdown",
        "call_plugin",
        "changing_memory_live",
        "awaiting_memory_live",
        "changing_memory_limits",
        "changing_shadow_memory_live",
        "changing_VCPUs",
        "assert_operation_valid",
        "data_source_op",
        "update_allowed_operations",
        "import",
        "reverting",
    }
)
"""Operations that never appear in ``allowed_operations`` (§8.2 ``ignored_ops``)."""

RPU_ALLOWED_VM_OPERATIONS: frozenset[str] = frozenset(
    {
        "assert_operation_valid",
        "changing_memory_live",
        "changing_shadow_memory_live",
        "changing_VCPUs_live",
        "clean_reboot",
        "clean_shutdown",
        "clone",
        "copy",
        "csvm",
        "destroy",
        "export",
        "get_boot_record",
        "hard_reboot",
        "hard_shutdown",
        "import",
        "make_into_template",
        "migrate_send",
        "pause",
        "pool_migrate",
        "power_state_reset",
        "provision",
        "resume",
        "resume_on",
        "send_sysrq",
        "send_trigger",
        "start",
        "start_on",
        "suspend",
        "unpause",
        "update_allowed_operations",
    }
)
"""``Xapi_globs.rpu_allowed_vm_operations``: what a VM accepts during a rolling upgrade.

**Unconfirmed.** The list is read from an older ``xapi_globs.ml`` than the spec's snapshot, plus
``migrate_send``, which xapi's own ``test_sxm_allowed_when_rum`` requires to pass during a rolling
upgrade.
"""

POWER_STATES: tuple[str, ...] = ("Halted", "Paused", "Suspended", "Running")
"""The ``vm_power_state`` values in xapi's ``all_power_states`` order (the order of §2.1)."""

_H, _P, _S, _R = POWER_STATES

_STATE_GROUPS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("import",), ()),
    (("changing_VCPUs", "changing_static_range", "changing_memory_limits"), (_H,)),
    (
        (
            "changing_shadow_memory",
            "changing_NVRAM",
            "make_into_template",
            "provision",
            "start",
            "start_on",
            "create_vtpm",
        ),
        (_H,),
    ),
    (("unpause",), (_P,)),
    (("csvm", "resume", "resume_on"), (_S,)),
    (
        (
            "awaiting_memory_live",
            "call_plugin",
            "clean_reboot",
            "clean_shutdown",
            "changing_memory_live",
            "changing_shadow_memory_live",
            "changing_VCPUs_live",
            "data_source_op",
            "pause",
            "pool_migrate",
            "send_sysrq",
            "send_trigger",
            "snapshot_with_quiesce",
            "sysprep",
            "suspend",
        ),
        (_R,),
    ),
    (("changing_dynamic_range",), (_H, _R)),
    (("clone", "copy"), (_H,)),
    (("create_template", "destroy", "export"), (_H, _S)),
    (("hard_reboot",), (_P, _R)),
    (("checkpoint", "get_boot_record", "shutdown", "hard_shutdown"), (_P, _S, _R)),
    (("migrate_send",), (_H, _S, _R)),
    (
        (
            "assert_operation_valid",
            "metadata_export",
            "power_state_reset",
            "revert",
            "reverting",
            "snapshot",
            "update_allowed_operations",
            "query_services",
        ),
        POWER_STATES,
    ),
)
_ALLOWED_STATES: Mapping[str, tuple[str, ...]] = {
    op: states for ops, states in _STATE_GROUPS for op in ops
}
"""§2.1, before the control-domain and clone/copy additions."""

_RUNNING_IF_CONTROL_DOMAIN = frozenset(
    {"changing_VCPUs", "changing_static_range", "changing_memory_limits"}
)
_SUSPENDED_IF_CLONABLE = frozenset({"clone", "copy"})

_OP_STRING_QUIRKS: Mapping[str, str] = {
    "changing_VCPUs": "(unknown operation)",
    "changing_memory_limits": "(unknown operation)",
    "query_services": "(unknown operation)",
    "create_template": "(unknown operation)",
    "data_source_op": "data_sources_op",
    "assert_operation_valid": "assertoperationvalid",
}

_TEMPLATE_OPS = frozenset(
    {
        "changing_dynamic_range",
        "changing_static_range",
        "changing_memory_limits",
        "changing_shadow_memory",
        "changing_VCPUs",
        "changing_NVRAM",
        "clone",
        "copy",
        "export",
        "metadata_export",
        "provision",
    }
)
_TEMPLATE_OPS_UNLESS_DEFAULT = frozenset({"destroy", "migrate_send"})
_SNAPSHOT_OPS = frozenset(
    {"revert", "clone", "copy", "export", "destroy", "hard_shutdown", "metadata_export"}
)
_SUSPEND_LIKE_OPS = frozenset({"suspend", "checkpoint", "pool_migrate", "migrate_send"})
_STRICT_FEATURE_OPS = _SUSPEND_LIKE_OPS | {"clean_shutdown", "clean_reboot"}
_CONTROL_DOMAIN_OPS = frozenset(
    {
        "data_source_op",
        "changing_memory_live",
        "awaiting_memory_live",
        "metadata_export",
        "changing_dynamic_range",
        "changing_memory_limits",
        "changing_static_range",
        "start",
        "start_on",
        "changing_VCPUs",
        "destroy",
    }
)
_DOM0_FORBIDDEN_OPS = frozenset({"changing_VCPUs", "destroy"})
_PV_DOMAIN_TYPES = frozenset({"pv", "pvh", "pv_in_pvh"})
_CONCURRENT_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"clone", "copy", "export"}),
    frozenset({"snapshot", "checkpoint"}),
    frozenset({"get_boot_record"}),
)
_ALLOWED_AFTER_SOLE_OP: Mapping[str, frozenset[str]] = {
    "snapshot_with_quiesce": frozenset({"snapshot"}),
    "migrate_send": frozenset({"metadata_export", "clean_shutdown", "clean_reboot"}),
}


@dataclass(frozen=True)
class OpContext:
    """The facts beyond the VM record that ``check_operation_error`` reads."""

    strict: bool = True
    """xapi's ``strict``: true for ``allowed_operations`` and wrapped calls; false only for
    ``pool_migrate`` with ``force``. Non-strict skips the mobility, nested-virt and guest-feature
    (except ``feature-vcpu-hotplug``) checks."""
    clone_suspended_allowed: bool = False
    """The pool's ``other_config:allow_clone_suspended_vm`` is "true": clone and copy then also
    accept a Suspended VM."""
    guest_has_pv_drivers: bool = True
    """The guest has PV drivers or a guest agent reporting every feature flag. False: an HVM
    guest without drivers and without any ``feature-*`` flag (only matters for a live VM whose
    ``domain_type`` is not PV/PVH)."""
    rolling_upgrade: bool = False
    """A rolling pool upgrade is in progress (pool ``other_config:rolling_upgrade_in_progress``)."""
    vtpm_count: int = 0
    """How many VTPMs the VM already has."""
    booted_flags: Mapping[str, tuple[bool, bool]] = field(default_factory=dict)
    """Per VM, ``(nomigrate, nested_virt)`` captured at its last boot (xapi's VM_metrics)."""
    booted_domain_types: Mapping[str, str] = field(default_factory=dict)
    """Per VM, its domain type at its last boot (VM_metrics.current_domain_type); a VM whose
    boot the model did not see is taken at its record's ``domain_type``."""


def _str_field(vm: Mapping[str, Value], key: str, default: str) -> str:
    value = vm.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"VM field {key!r} must be a string, got {type(value).__name__}")
    return value


def _bool_field(vm: Mapping[str, Value], key: str) -> bool:
    value = vm.get(key, False)
    if not isinstance(value, bool):
        raise TypeError(f"VM field {key!r} must be a bool, got {type(value).__name__}")
    return value


def _int_field(vm: Mapping[str, Value], key: str, default: int) -> int:
    value = vm.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"VM field {key!r} must be an int, got {type(value).__name__}")
    return value


def _str_map(vm: Mapping[str, Value], key: str) -> Mapping[str, str]:
    value = vm.get(key, {})
    if not isinstance(value, Mapping):
        raise TypeError(f"VM field {key!r} must be a (string -> string) map")
    result: dict[str, str] = {}
    for item_key, item in value.items():
        if not isinstance(item, str):
            raise TypeError(f"VM field {key!r} must be a (string -> string) map")
        result[item_key] = item
    return result


def _bool_of_assoc(mapping: Mapping[str, str], key: str) -> bool:
    """xapi's ``bool_of_assoc``: the value is "1" or, case-insensitively, "true"."""
    value = mapping.get(key)
    return value is not None and (value == "1" or value.lower() == "true")


def _power_state(vm: Mapping[str, Value]) -> str:
    state = _str_field(vm, "power_state", _H)
    if state not in POWER_STATES:
        raise ValueError(f"unknown power state {state!r}")
    return state


def _known_op(op: str) -> str:
    if op not in _ALLOWED_STATES:
        raise ValueError(f"unknown VM operation {op!r}")
    return op


def allowed_power_states(op: str, vm: Mapping[str, Value], ctx: OpContext) -> tuple[str, ...]:
    """The power states in which ``op`` passes the power-state check, in xapi's list order (§2.1).

    Control domains also allow Running for ``changing_VCPUs``, ``changing_static_range`` and
    ``changing_memory_limits``; clone and copy also allow Suspended on a snapshot or when the
    pool allows cloning suspended VMs.
    """
    clonable = op in _SUSPENDED_IF_CLONABLE and (
        _bool_field(vm, "is_a_snapshot") or ctx.clone_suspended_allowed
    )
    control_domain = op in _RUNNING_IF_CONTROL_DOMAIN and _bool_field(vm, "is_control_domain")
    return _states_allowing(_known_op(op), control_domain=control_domain, clonable=clonable)


def op_to_string(op: str) -> str:
    """``Record_util.vm_operation_to_string``: the op name inside error params (§3.1 quirks)."""
    return _OP_STRING_QUIRKS.get(op, op)


def is_default_template(vm: Mapping[str, Value]) -> bool:
    """``is_default_template``, or ``other_config:default_template`` is "1"/"true" (any case)."""
    return _bool_field(vm, "is_default_template") or _bool_of_assoc(
        _str_map(vm, "other_config"), "default_template"
    )


def is_allowed_concurrently(op: str, current_ops: Collection[str]) -> bool:
    """Whether ``op`` may start while ``current_ops`` run (§8.5; the power state is not checked).

    ``check_operation_error`` asks only when ``current_ops`` is non-empty. With no current op
    this is xapi's function as written: true only for the grouped ops and the hard ops.
    """
    current = tuple(current_ops)
    if any(op in group and all(c in group for c in current) for group in _CONCURRENT_GROUPS):
        return True
    if op == "hard_shutdown":
        return "hard_shutdown" not in current
    if op == "hard_reboot":
        return "hard_shutdown" not in current and "hard_reboot" not in current
    return len(current) == 1 and op in _ALLOWED_AFTER_SOLE_OP.get(current[0], frozenset())


@dataclass(frozen=True)
class _Facts:
    """What the checks of §4.3 read of one VM and its context, read and typed once.

    Everything an op's verdict depends on is here, and nothing else (the VM's ref only appears
    in error parameters), so equal facts give equal verdicts: ``allowed_operations`` is
    remembered per value of them.
    """

    power_state: str
    blocked: tuple[tuple[str, str], ...]
    """``blocked_operations`` as (op, reason) pairs, in the record's order."""
    current: tuple[tuple[str, str], ...]
    """``current_operations`` as (task, op) pairs, in the record's order."""
    is_template: bool
    is_snapshot: bool
    is_default_template: bool
    """Read only for a template (the one check that asks is about templates)."""
    is_control_domain: bool
    is_dom0: bool
    """A control domain whose ``domid`` is 0 (``domid`` is read only for a control domain)."""
    is_system_domain: bool
    domain_type: str
    nomigrate: bool
    nested_virt: bool
    """The VM_metrics pair :func:`models.memory.metrics_flags` gives."""
    strict: bool
    clone_suspended_allowed: bool
    guest_has_pv_drivers: bool
    rolling_upgrade: bool
    vtpm_count: int

    @property
    def is_live(self) -> bool:
        return self.power_state in (_R, _P)


def _facts(vm_ref: str, vm: Mapping[str, Value], ctx: OpContext, *, strict: bool) -> _Facts:
    is_template = _bool_field(vm, "is_a_template")
    is_control_domain = _bool_field(vm, "is_control_domain")
    nomigrate, nested = metrics_flags(vm, ctx.booted_flags.get(vm_ref))
    return _Facts(
        power_state=_power_state(vm),
        blocked=tuple(_str_map(vm, "blocked_operations").items()),
        current=tuple(_str_map(vm, "current_operations").items()),
        is_template=is_template,
        is_snapshot=_bool_field(vm, "is_a_snapshot"),
        is_default_template=is_template and is_default_template(vm),
        is_control_domain=is_control_domain,
        is_dom0=is_control_domain and _int_field(vm, "domid", -1) == 0,
        is_system_domain=_bool_of_assoc(_str_map(vm, "other_config"), "is_system_domain"),
        domain_type=booted_domain_type(vm, ctx.booted_domain_types.get(vm_ref)),
        nomigrate=nomigrate,
        nested_virt=nested,
        strict=strict,
        clone_suspended_allowed=ctx.clone_suspended_allowed,
        guest_has_pv_drivers=ctx.guest_has_pv_drivers,
        rolling_upgrade=ctx.rolling_upgrade,
        vtpm_count=ctx.vtpm_count,
    )


@dataclass(frozen=True)
class _Subject:
    """One ``check_operation_error`` question: this op on the VM ``ref`` with these facts."""

    ref: str
    facts: _Facts
    op: str

    def fail(self, code: str, *params: str) -> Failure:
        return Failure(code, params)


def _states_allowing(op: str, *, control_domain: bool, clonable: bool) -> tuple[str, ...]:
    """§2.1's states for ``op``, with Running for a control domain's memory and vCPU ops and
    Suspended for a clone or copy that may take a suspended VM."""
    states = _ALLOWED_STATES[op]
    if op in _RUNNING_IF_CONTROL_DOMAIN and control_domain:
        return (*states, _R)
    if op in _SUSPENDED_IF_CLONABLE and clonable:
        return (*states, _S)
    return states


def _check_blocked(s: _Subject) -> Failure | None:
    for op, reason in s.facts.blocked:
        if op == s.op:
            return s.fail("OPERATION_BLOCKED", s.ref, reason)
    return None


def _check_power_state(s: _Subject) -> Failure | None:
    facts = s.facts
    allowed = _states_allowing(
        s.op,
        control_domain=facts.is_control_domain,
        clonable=facts.is_snapshot or facts.clone_suspended_allowed,
    )
    if facts.power_state in allowed:
        return None
    expected = ", ".join(state.lower() for state in allowed)
    return s.fail("VM_BAD_POWER_STATE", s.ref, expected, facts.power_state.lower())


def _check_concurrency(s: _Subject) -> Failure | None:
    current = s.facts.current
    if not current or is_allowed_concurrently(s.op, tuple(op for _task, op in current)):
        return None
    ops = [op_to_string(op) for _task, op in current]
    tasks = [task for task, _op in current]
    if len(current) == 1:
        return s.fail("OTHER_OPERATION_IN_PROGRESS", "VM", s.ref, ops[0], tasks[0])
    return s.fail(
        "OTHER_OPERATION_IN_PROGRESS",
        "VM",
        s.ref,
        "{" + ",".join(ops) + "}",
        "{" + ",".join(tasks) + "}",
    )


def _check_template(s: _Subject) -> Failure | None:
    facts = s.facts
    if not facts.is_template or facts.is_snapshot or s.op in _TEMPLATE_OPS:
        return None
    if s.op in _TEMPLATE_OPS_UNLESS_DEFAULT and not facts.is_default_template:
        return None
    return s.fail("VM_IS_TEMPLATE", s.ref, op_to_string(s.op))


def _check_snapshot(s: _Subject) -> Failure | None:
    if not s.facts.is_snapshot or s.op in _SNAPSHOT_OPS:
        return None
    return s.fail("VM_IS_SNAPSHOT", s.ref, op_to_string(s.op))


def _check_provision(s: _Subject) -> Failure | None:
    if s.op == "provision" and not s.facts.is_template:
        return s.fail("PROVISION_ONLY_ALLOWED_ON_TEMPLATE")
    return None


def _check_revert(s: _Subject) -> Failure | None:
    if s.op == "revert" and not s.facts.is_snapshot:
        return s.fail("REVERT_ONLY_ALLOWED_ON_SNAPSHOT")
    return None


def _check_mobility(s: _Subject) -> Failure | None:
    facts = s.facts
    if s.op not in _SUSPEND_LIKE_OPS or not facts.strict:
        return None
    if facts.nomigrate or facts.nested_virt:
        return s.fail("VM_IS_IMMOBILE", s.ref)
    return None


def _check_nested_virt(s: _Subject) -> Failure | None:
    if s.op == "changing_dynamic_range" and s.facts.strict and s.facts.nested_virt:
        return s.fail("VM_IS_USING_NESTED_VIRT", s.ref)
    return None


def _check_control_domain(s: _Subject) -> Failure | None:
    if not s.facts.is_control_domain:
        return None
    if s.op in _DOM0_FORBIDDEN_OPS and s.facts.is_dom0:
        return s.fail("OPERATION_NOT_ALLOWED", "This operation is not allowed on dom0")
    if s.op not in _CONTROL_DOMAIN_OPS:
        return s.fail("OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain")
    return None


def _has_implicit_feature_support(facts: _Facts) -> bool:
    """Not live, booted PV/PVH (xapi_vm_lifecycle.ml ``has_definitely_booted_pv`` reads the
    domain type of the last boot, not the record's), or PV drivers present."""
    booted_pv = facts.domain_type in _PV_DOMAIN_TYPES
    return not facts.is_live or booted_pv or facts.guest_has_pv_drivers


def _check_guest_features(s: _Subject) -> Failure | None:
    """``check_op_for_feature``; without implicit support the guest has no feature flag."""
    if _has_implicit_feature_support(s.facts):
        return None
    if (s.op in _STRICT_FEATURE_OPS and s.facts.strict) or s.op == "changing_VCPUs_live":
        return s.fail("VM_LACKS_FEATURE", s.ref)
    return None


def _check_quiesce(s: _Subject) -> Failure | None:
    if s.op == "snapshot_with_quiesce":
        return s.fail("VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED", s.ref)
    return None


def _check_system_domain(s: _Subject) -> Failure | None:
    if s.op == "query_services" and not s.facts.is_system_domain:
        return s.fail("NOT_SYSTEM_DOMAIN", s.ref)
    return None


def _check_rolling_upgrade(s: _Subject) -> Failure | None:
    if s.facts.rolling_upgrade and s.op not in RPU_ALLOWED_VM_OPERATIONS:
        return s.fail("NOT_SUPPORTED_DURING_UPGRADE")
    return None


def _check_vtpm(s: _Subject) -> Failure | None:
    if s.op == "create_vtpm" and s.facts.vtpm_count > 0:
        return s.fail("VTPM_MAX_AMOUNT_REACHED", str(s.facts.vtpm_count))
    return None


_CHECKS: tuple[Callable[[_Subject], Failure | None], ...] = (
    _check_blocked,  # 1
    _check_power_state,  # 2
    _check_concurrency,  # 3
    _check_template,  # 4
    _check_snapshot,  # 5
    _check_provision,  # 6
    _check_revert,  # 7
    _check_mobility,  # 8
    _check_nested_virt,  # 9
    _check_control_domain,  # 10
    _check_guest_features,  # 11
    _check_quiesce,  # 12
    # 13-19 (on_boot=reset VDIs, PCI, vGPU, VUSB, appliance, VMPP, VMSS): not modelled.
    _check_system_domain,  # 20
    _check_rolling_upgrade,  # 21
    _check_vtpm,  # 22
)
"""§4.3 in order; the first error wins."""


def _first_failure(subject: _Subject) -> Failure | None:
    for check in _CHECKS:
        failure = check(subject)
        if failure is not None:
            return failure
    return None


def check_operation_error(
    vm_ref: str, vm: Mapping[str, Value], op: str, ctx: OpContext
) -> Failure | None:
    """xapi's ``check_operation_error``: the first error of §4.3 for ``op`` on ``vm``, or None.

    Raises ValueError for an op outside :data:`VM_OPERATIONS` (xapi cannot receive one).
    """
    known = _known_op(op)
    return _first_failure(_Subject(vm_ref, _facts(vm_ref, vm, ctx, strict=ctx.strict), known))


_CANDIDATES: tuple[str, ...] = tuple(op for op in VM_OPERATIONS if op not in IGNORED_OPS)


def allowed_operations(vm_ref: str, vm: Mapping[str, Value], ctx: OpContext) -> frozenset[str]:
    """``update_allowed_operations`` (§8.2): every non-ignored op that passes the strict check.

    ``ctx.strict`` is ignored (xapi always uses strict here). During a rolling upgrade the
    strict check already rejects ops outside :data:`RPU_ALLOWED_VM_OPERATIONS`, so xapi's
    intersection with that list changes nothing.
    """
    return _allowed(_facts(vm_ref, vm, ctx, strict=True))


@functools.lru_cache(maxsize=4096)
def _allowed(facts: _Facts) -> frozenset[str]:
    """The candidates that pass every check on a VM with ``facts`` (the ref only names it)."""
    return frozenset(op for op in _CANDIDATES if _first_failure(_Subject("", facts, op)) is None)
