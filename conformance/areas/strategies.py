"""Hypothesis strategies for XenAPI values: VM records, memory tuples, maps, labels, bad refs."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from hypothesis import strategies as st

from conformance.judge.refs import RUN_TAG
from models import catalogue
from models.operations import VM_OPERATIONS
from models.outcome import Value
from models.schema import XType
from models.where import column_of, stored_text

__all__ = [
    "BAD_REFS",
    "EDGE_FLOATS",
    "EDGE_INTS",
    "EDGE_TEXTS",
    "LABELS",
    "MADE_UP_REF",
    "UNWRITTEN_REF",
    "UNWRITTEN_REFS",
    "blocked_maps",
    "memory_tuples",
    "value_of",
    "vm_record",
    "vm_records",
    "where_expressions",
]

MIB = 2**20
PV_FIELDS = (
    "PV_bootloader",
    "PV_kernel",
    "PV_ramdisk",
    "PV_args",
    "PV_bootloader_args",
    "PV_legacy_args",
)
SIZES = st.sampled_from([64 * MIB, 128 * MIB, 256 * MIB, 512 * MIB, 1024 * MIB, 2048 * MIB])
LABELS = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"
    ),
    max_size=12,
)
"""Short texts of characters XML 1.0 and JSON both carry (no controls, surrogates, U+FFFE or
U+FFFF: xapi's XML-RPC parser refuses those, and the suite's encoder with it)."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
EDGE_INTS = (0, -1, 2**31 - 1, 2**31, 2**32, 2**53, 2**53 + 1, INT64_MAX - 1, INT64_MAX, INT64_MIN)
"""int64 values at the edges: 32-bit bounds, where a double stops holding every integer, and
the int64 bounds (2^63 - 1 through a double comes out as 2^63, out of range)."""
EDGE_FLOATS = (0.0, 0.1, 1.0 / 3, 1e-300, 2.5e15, 1.7976931348623157e308)
"""Doubles xapi prints to 16 significant digits (``%.16g``) and reads back."""
EDGE_TEXTS = (
    "",
    " ",
    "xapi-conformance \U0001f600 \U00010348 \U0010fffd",
    "tab\tand\nnewline",
    "<&>\"'; DROP",
    "é中文\u200b\ufeff",
    "x" * 4096,
)
"""Texts at the edges: empty, blank, beyond the Basic Multilingual Plane, the controls XML
carries (tab and LF: CR is normalised by XML parsers), markup, combining and zero-width
characters, and a long one."""
MADE_UP_REF = "OpaqueRef:00000000-dead-beef-0000-000000000000"
"""A ref that names nothing, which setters write (``BAD_REFS``)."""
UNWRITTEN_REF = "OpaqueRef:00000000-0000-0000-0000-00000000dead"
"""A ref that names nothing, which no example writes (``UNWRITTEN_REFS``)."""
BAD_REFS = st.sampled_from(["OpaqueRef:NULL", MADE_UP_REF, "not-a-ref", ""])
UNWRITTEN_REFS = st.sampled_from(["OpaqueRef:NULL", UNWRITTEN_REF, "not-a-ref", ""])
"""Refs that name nothing and that no example writes into a record (``BAD_REFS`` are what
setters write, ``VM.set_affinity`` keeps one): a read of another class's object by one of them
is HANDLE_INVALID whatever the VMs hold, another client's among them (the model cannot tell
whether a ref a VM record holds names an object it does not model)."""


@st.composite
def memory_tuples(draw: st.DrawFn, valid: bool | None = None) -> tuple[int, int, int, int]:
    """(static_min, dynamic_min, dynamic_max, static_max); ordered when ``valid`` is True."""
    values = sorted(draw(st.lists(SIZES, min_size=4, max_size=4)))
    if valid is None:
        valid = draw(st.booleans())
    if not valid:
        values = draw(st.permutations(values))
    return values[0], values[1], values[2], values[3]


def vm_record(run_id: str, **overrides: Value) -> dict[str, Value]:
    """A complete, valid VM.create record as a careful client sends it, tagged with ``run_id``.

    HVM (``BIOS order``), 128 MiB–512 MiB memory in order, 2 VCPUs with 1 at startup.
    """
    record: dict[str, Value] = {
        "name_label": "xapi-conformance",
        "name_description": "created by xapi-conformance; safe to delete",
        "user_version": 1,
        "is_a_template": False,
        "affinity": "OpaqueRef:NULL",
        "memory_static_min": 128 * MIB,
        "memory_dynamic_min": 256 * MIB,
        "memory_dynamic_max": 512 * MIB,
        "memory_static_max": 512 * MIB,
        "VCPUs_params": {},
        "VCPUs_max": 2,
        "VCPUs_at_startup": 1,
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "dc"},
        "platform": {},
        "PCI_bus": "",
        "other_config": {RUN_TAG: run_id},
        "recommendations": "",
        **dict.fromkeys(PV_FIELDS, ""),
    }
    record.update(overrides)
    return record


def vm_records() -> st.SearchStrategy[dict[str, Value]]:
    """VM.create records with generated labels, ordered memory, VCPU counts and, half the
    time, blocked operations, tags and other_config keys (so copies of shaped VMs are made).
    The machine adds its run's tag to other_config."""

    def build(
        label: str,
        memory: tuple[int, int, int, int],
        vcpus: int,
        shape: dict[str, Value],
    ) -> dict[str, Value]:
        static_min, dynamic_min, dynamic_max, static_max = memory
        return vm_record(
            "",
            name_label=f"xapi-conformance {label}",
            memory_static_min=static_min,
            memory_dynamic_min=dynamic_min,
            memory_dynamic_max=dynamic_max,
            memory_static_max=static_max,
            VCPUs_max=vcpus,
            VCPUs_at_startup=vcpus,
            **shape,
        )

    shapes = st.fixed_dictionaries(
        {},
        optional={
            "blocked_operations": blocked_maps(),
            "tags": st.lists(st.sampled_from(["a", "b", "c"]), unique=True).map(tuple),
            "other_config": st.dictionaries(st.sampled_from(["k1", "folder"]), LABELS, max_size=2),
        },
    )
    return st.builds(build, LABELS, memory_tuples(valid=True), st.integers(1, 2), shapes)


def blocked_maps() -> st.SearchStrategy[dict[str, str]]:
    """blocked_operations maps over real vm_operations values."""
    return st.dictionaries(
        st.sampled_from(VM_OPERATIONS), st.sampled_from(["true", "maintenance", "x"]), max_size=3
    )


def value_of(xtype: XType) -> st.SearchStrategy[Value]:
    """Any value of ``xtype`` (refs are null or bogus: the caller substitutes real ones)."""
    simple: dict[str, st.SearchStrategy[Value]] = {
        "string": LABELS | st.sampled_from(EDGE_TEXTS),
        "int": st.integers(-1, 4) | st.sampled_from(EDGE_INTS),
        "float": st.sampled_from([0.5, 1.0, 2.0]) | st.sampled_from(EDGE_FLOATS),
        "bool": st.booleans(),
        "ref": BAD_REFS,
        "datetime": st.just("19700101T00:00:00Z"),
        "record": st.just({}),
        "void": st.just(""),
    }
    if xtype.kind == "enum":
        return st.sampled_from(catalogue.ENUMS[xtype.name])
    if xtype.kind == "set" and xtype.item is not None:
        return st.lists(value_of(xtype.item), max_size=2).map(tuple)
    if xtype.kind == "map" and xtype.key is not None and xtype.item is not None:
        return st.dictionaries(value_of(xtype.key).map(str), value_of(xtype.item), max_size=2)
    return simple[xtype.kind]


WHERE_FIELDS = (
    "name_label",
    "name_description",
    "power_state",
    "is_a_template",
    "is_a_snapshot",
    "user_version",
    "VCPUs_max",
    "memory_static_max",
    "actions_after_crash",
    "HVM_boot_policy",
    "HVM_shadow_multiplier",
    "domain_type",
)
"""Fields a filter compares whose stored text the model knows exactly (its own, not chosen by
the server): strings, enums, bools, ints and a double (``%0.18g``)."""
WHERE_MISTAKES = (
    'field "name_label" = "xapi-conformance"',
    "field \"power_state\" = 'Halted'",
    'power_state = "Halted"',
    'field "power_state" = "Halted" and',
    "",
)
"""Expressions a client gets wrong: an API name where the column is ``name__label``, quotes
the language has not, a bare name, a dangling ``and``, nothing."""


def where_expressions(record: Mapping[str, Value]) -> st.SearchStrategy[str]:
    """Expressions of VM.get_all_records_where's language (``models.where``) about the VM
    ``record``: comparisons of its fields that hold or not, ``true`` and ``false``, joined by
    and/or, negated, bracketed; now and then one a client gets wrong."""
    comparison = st.builds(
        partial(_comparison, record), st.sampled_from(WHERE_FIELDS), st.booleans()
    )
    leaves = comparison | st.sampled_from(["true", "false"])
    expressions = st.recursive(leaves, _combined, max_leaves=4)
    return st.one_of(expressions, expressions, st.sampled_from(WHERE_MISTAKES))


def _comparison(record: Mapping[str, Value], field: str, holds: bool) -> str:
    text = stored_text(record[field]) if holds else "xapi-conformance other"
    return f'field "{column_of(field)}" = "{text}"'


def _combined(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds("{} {} {}".format, inner, st.sampled_from(["and", "or"]), inner),
        inner.map("not {}".format),
        inner.map("({})".format),
    )
