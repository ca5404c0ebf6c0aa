"""The memory rules (spec §6.1, §14 ``test_vm_memory_constraints.ml`` truth tables)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from models.memory import (
    MemoryContext,
    MemoryTuple,
    are_pinned,
    are_pinned_at_static_max,
    are_valid,
    boot_check,
    check_constraints,
    dmc_enabled,
    nested_virt,
    pin_reason,
    platform_flag,
)
from models.outcome import Failure, Value

MIB = 1024 * 1024

MiBTuple = tuple[int, int, int, int, int]

# The tables of xapi's ocaml/tests/test_vm_memory_constraints.ml, in MiB:
# (static_min, dynamic_min, target, dynamic_max, static_max).
PINNED: list[MiBTuple] = [
    (0, 0, 0, 0, 5),
    (0, 1, 1, 1, 5),
    (0, 2, 2, 2, 5),
    (0, 3, 3, 3, 5),
    (0, 4, 4, 4, 5),
    (0, 5, 5, 5, 5),
]
UNPINNED: list[MiBTuple] = [
    (0, 0, 0, 1, 5),
    (0, 1, 1, 2, 5),
    (0, 2, 2, 3, 5),
    (0, 2, 3, 3, 5),
    (0, 3, 4, 4, 5),
    (0, 4, 5, 5, 5),
]
VALID: list[MiBTuple] = [
    (0, 1, 2, 3, 4),
    (1, 2, 3, 4, 5),
    (1, 1, 2, 3, 4),
    (1, 2, 3, 4, 4),
    (2, 2, 2, 3, 4),
    (1, 2, 3, 3, 3),
    (3, 3, 3, 3, 4),
    (1, 2, 2, 2, 2),
    (4, 4, 4, 4, 4),
    (1, 1, 1, 1, 1),
]
INVALID: list[MiBTuple] = [
    (2, 1, 2, 3, 4),
    (4, 1, 2, 3, 4),
    (5, 1, 2, 3, 4),
    (0, 4, 2, 3, 4),
    (0, 5, 2, 3, 4),
    (0, 1, 2, 5, 4),
]
PINNED_AT_STATIC_MAX: list[MiBTuple] = [
    (0, 0, 0, 0, 0),
    (0, 1, 1, 1, 1),
    (0, 2, 2, 2, 2),
    (1, 2, 2, 2, 2),
]


def mib(values: MiBTuple) -> MemoryTuple:
    """A MemoryTuple in bytes from a MiB tuple."""
    return MemoryTuple(*(v * MIB for v in values))


def ctx(dmc: bool = True, control: bool = False, nested: bool = False) -> MemoryContext:
    return MemoryContext(dmc_enabled=dmc, is_control_domain=control, nested_virt=nested)


# --- the predicates ----------------------------------------------------------------------------


@pytest.mark.parametrize("values", [(0, 1, 2, 3, 4), (1, 2, 2, 2, 2), (4, 4, 4, 4, 4)])
def test_spec_14_valid_examples_are_valid(values: MiBTuple) -> None:
    assert are_valid(mib(values))


@pytest.mark.parametrize("values", [(2, 1, 2, 3, 4), (0, 4, 2, 3, 4), (0, 1, 2, 5, 4)])
def test_spec_14_invalid_examples_are_invalid(values: MiBTuple) -> None:
    assert not are_valid(mib(values))


@pytest.mark.parametrize("values", VALID)
def test_are_valid_true(values: MiBTuple) -> None:
    assert are_valid(mib(values))


@pytest.mark.parametrize("values", INVALID)
def test_are_valid_false(values: MiBTuple) -> None:
    assert not are_valid(mib(values))


@pytest.mark.parametrize("values", PINNED)
def test_are_pinned_true(values: MiBTuple) -> None:
    assert are_pinned(mib(values))


@pytest.mark.parametrize("values", UNPINNED)
def test_are_pinned_false(values: MiBTuple) -> None:
    assert not are_pinned(mib(values))


def test_are_pinned_ignores_target_and_statics() -> None:
    assert are_pinned(MemoryTuple(9, 3, 1, 3, 0))


@pytest.mark.parametrize("values", PINNED_AT_STATIC_MAX)
def test_are_pinned_at_static_max_true(values: MiBTuple) -> None:
    assert are_pinned_at_static_max(mib(values))


@pytest.mark.parametrize("values", INVALID + UNPINNED)
def test_are_pinned_at_static_max_false(values: MiBTuple) -> None:
    assert not are_pinned_at_static_max(mib(values))


def test_are_pinned_at_static_max_needs_static_min_below() -> None:
    assert not are_pinned_at_static_max(mib((3, 2, 2, 2, 2)))


def test_target_is_ignored_by_the_order_rule() -> None:
    assert are_valid(mib((1, 2, 99, 3, 4)))
    assert are_pinned_at_static_max(mib((1, 2, 0, 2, 2)))


# --- which rule applies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "reason"),
    [
        (ctx(dmc=True), None),
        (ctx(dmc=False), "DMC disabled"),
        (ctx(dmc=True, control=True), "control domain"),
        (ctx(dmc=True, nested=True), "nested virt"),
        (ctx(dmc=False, control=True, nested=True), "DMC disabled"),
        (ctx(dmc=True, control=True, nested=True), "control domain"),
    ],
)
def test_pin_reason_priority(context: MemoryContext, reason: str | None) -> None:
    assert pin_reason(context) == reason


@pytest.mark.parametrize("values", VALID)
def test_dmc_on_valid_order_passes(values: MiBTuple) -> None:
    assert check_constraints(mib(values), ctx(dmc=True)) is None


@pytest.mark.parametrize("values", INVALID)
def test_dmc_on_bad_order_is_order_violation(values: MiBTuple) -> None:
    assert check_constraints(mib(values), ctx(dmc=True)) == Failure(
        "MEMORY_CONSTRAINT_VIOLATION_ORDER", ()
    )


@pytest.mark.parametrize("values", PINNED_AT_STATIC_MAX)
@pytest.mark.parametrize(
    "context", [ctx(dmc=False), ctx(control=True), ctx(nested=True)], ids=["dmc", "ctrl", "nv"]
)
def test_pinned_at_static_max_passes_when_pinning_required(
    values: MiBTuple, context: MemoryContext
) -> None:
    assert check_constraints(mib(values), context) is None


@pytest.mark.parametrize("values", [(0, 1, 2, 3, 4), (0, 2, 2, 2, 5), *INVALID])
@pytest.mark.parametrize(
    ("context", "reason"),
    [
        (ctx(dmc=False), "DMC disabled"),
        (ctx(control=True), "control domain"),
        (ctx(nested=True), "nested virt"),
        (ctx(dmc=False, control=True, nested=True), "DMC disabled"),
        (ctx(control=True, nested=True), "control domain"),
    ],
)
def test_not_pinned_is_maxpin_with_reason(
    values: MiBTuple, context: MemoryContext, reason: str
) -> None:
    """With pinning required, even an order violation is reported as MAXPIN."""
    assert check_constraints(mib(values), context) == Failure(
        "MEMORY_CONSTRAINT_VIOLATION_MAXPIN", (reason,)
    )


def test_pinned_but_static_min_too_big_is_maxpin() -> None:
    assert check_constraints(mib((5, 4, 4, 4, 4)), ctx(dmc=False)) == Failure(
        "MEMORY_CONSTRAINT_VIOLATION_MAXPIN", ("DMC disabled",)
    )


# --- the boot check ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        *VALID,
        (2, 1, 2, 3, 4),  # dynamic_min below static_min: clamped
        (0, 1, 2, 5, 4),  # dynamic_max above static_max: clamped
        (0, 4, 2, 4, 4),  # target outside the dynamic range: clamped
    ],
)
def test_boot_check_passes_what_transform_can_clamp(values: MiBTuple) -> None:
    assert boot_check(mib(values)) is None


@pytest.mark.parametrize(
    "values",
    [
        (4, 1, 2, 3, 3),  # static_max < static_min
        (0, 3, 2, 2, 4),  # dynamic_max < dynamic_min
        (5, 3, 3, 2, 4),  # both
    ],
)
def test_boot_check_fails_on_inverted_ranges(values: MiBTuple) -> None:
    assert boot_check(mib(values)) == Failure("MEMORY_CONSTRAINT_VIOLATION", ())


# --- reading records ---------------------------------------------------------------------------


def _record(**overrides: Value) -> dict[str, Value]:
    record: dict[str, Value] = {
        "memory_static_min": 1,
        "memory_dynamic_min": 2,
        "memory_target": 3,
        "memory_dynamic_max": 4,
        "memory_static_max": 5,
    }
    record.update(overrides)
    return record


def test_memory_tuple_from_record() -> None:
    assert MemoryTuple.from_record(_record()) == MemoryTuple(1, 2, 3, 4, 5)


def test_memory_tuple_from_record_missing_target_is_zero() -> None:
    record = _record()
    del record["memory_target"]
    assert MemoryTuple.from_record(record).target == 0


def test_memory_tuple_from_record_missing_limit_raises() -> None:
    record = _record()
    del record["memory_static_max"]
    with pytest.raises(KeyError):
        MemoryTuple.from_record(record)


@pytest.mark.parametrize("bad", ["5", True, 5.0])
def test_memory_tuple_from_record_rejects_non_int(bad: Value) -> None:
    with pytest.raises(TypeError):
        MemoryTuple.from_record(_record(memory_static_max=bad))


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ({"nested-virt": "true"}, True),
        ({"nested-virt": "1"}, True),
        ({"nested-virt": "TRUE"}, True),
        ({"nested-virt": "false"}, False),
        ({"nested-virt": "0"}, False),
        ({"nested-virt": "yes"}, False),
        ({}, False),
    ],
)
def test_nested_virt_reads_platform(platform: Mapping[str, Value], expected: bool) -> None:
    assert nested_virt({"platform": platform}) is expected


def test_nested_virt_without_platform_field() -> None:
    assert nested_virt({}) is False


def test_platform_flag_rejects_non_map() -> None:
    with pytest.raises(TypeError):
        platform_flag({"platform": "nested-virt=true"}, "nested-virt")


@pytest.mark.parametrize(
    ("restrictions", "expected"),
    [
        ({"restrict_dmc": "false"}, True),
        ({"restrict_dmc": "true"}, False),
        ({"restrict_dmc": "False"}, False),
        ({}, False),
        ({"restrict_vtpm": "false"}, False),
    ],
)
def test_dmc_enabled_only_when_restrict_dmc_is_false(
    restrictions: Mapping[str, str], expected: bool
) -> None:
    assert dmc_enabled(restrictions) is expected


def test_memory_context_from_record() -> None:
    vm: dict[str, Value] = {"is_control_domain": True, "platform": {"nested-virt": "1"}}
    assert MemoryContext.from_record(vm, {"restrict_dmc": "false"}) == MemoryContext(
        dmc_enabled=True, is_control_domain=True, nested_virt=True
    )
    assert MemoryContext.from_record({}, {}) == MemoryContext(
        dmc_enabled=False, is_control_domain=False, nested_virt=False
    )


def test_memory_context_from_record_rejects_non_bool_control_flag() -> None:
    with pytest.raises(TypeError):
        MemoryContext.from_record({"is_control_domain": "true"}, {})
