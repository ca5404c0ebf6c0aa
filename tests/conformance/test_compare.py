"""The diff: strictness, shape-only fields, typing of target answers, refs and waivers."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from conformance.compare import SHAPE_ONLY_FIELDS, field_mismatch, outcome_mismatch, typed_outcome
from conformance.divergence import DivergenceInfo
from conformance.errors import UsageError
from conformance.refs import RefMap
from conformance.waivers import Waiver, Waivers, load_waivers
from models import catalogue
from models.outcome import Failure, Success
from models.schema import XType

BPS = Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a", "halted", "running"))


@pytest.mark.parametrize(
    ("actual", "strictness", "differs"),
    [
        (BPS, "exact", False),
        (Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a", "halted", "paused")), "exact", True),
        (Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a", "halted", "paused")), "arity", False),
        (Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a",)), "arity", True),
        (Failure("VM_BAD_POWER_STATE", ("OpaqueRef:a",)), "code", False),
        (Failure("OPERATION_BLOCKED", ()), "code", True),
        (Success(""), "code", True),
    ],
)
def test_strictness(actual: Failure | Success, strictness: str, differs: bool) -> None:
    mismatch = outcome_mismatch(BPS, actual, returns=XType("void"), strictness=strictness)  # type: ignore[arg-type]
    assert (mismatch is not None) == differs


def test_shape_only_fields_are_real_fields_with_reasons() -> None:
    assert set(SHAPE_ONLY_FIELDS) <= set(catalogue.FIELDS)
    assert all(reason for reason in SHAPE_ONLY_FIELDS.values())


@pytest.mark.parametrize(
    ("field", "expected", "good", "bad"),
    [
        (
            "uuid",
            "11111111-2222-4333-8444-555555555555",
            "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
            "nope",
        ),
        ("domid", -1, -1, 7),
        ("domid", 3, 12, -1),
        ("resident_on", "OpaqueRef:NULL", "OpaqueRef:NULL", "OpaqueRef:h"),
        ("resident_on", "OpaqueRef:h1", "OpaqueRef:h2", "OpaqueRef:NULL"),
        ("memory_overhead", 1024, 4096, -1),
        ("blobs", {"a": "OpaqueRef:1"}, {"a": "OpaqueRef:2"}, {}),
        (
            "snapshot_time",
            datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC),
            datetime.datetime.now(datetime.UTC),
            "x",
        ),
    ],
)
def test_shape_only_rules_accept_shape_and_reject_nonsense(
    field: str, expected: object, good: object, bad: object
) -> None:
    assert not field_mismatch(field, expected, good)  # type: ignore[arg-type]
    assert field_mismatch(field, expected, bad)  # type: ignore[arg-type]


def test_exact_fields_and_unordered_sets() -> None:
    assert field_mismatch("name_label", "a", "b")
    assert not field_mismatch("allowed_operations", ("start", "clone"), ("clone", "start"))
    assert field_mismatch("allowed_operations", ("start", "clone"), ("clone",))
    assert not field_mismatch(
        "other_config", {"mac_seed": "x", "k": "v"}, {"mac_seed": "y", "k": "v"}
    )
    assert field_mismatch("other_config", {"mac_seed": "x"}, {})


def test_target_answers_are_typed_by_the_declared_return_type() -> None:
    typed = typed_outcome(Success("1073741824"), catalogue.message("get_memory_static_max").returns)
    assert typed == Success(1073741824)
    record = typed_outcome(
        Success({"VCPUs_max": "2", "name_label": "x"}), XType("record", name="VM")
    )
    assert record == Success({"VCPUs_max": 2, "name_label": "x"})


def test_ref_map_binds_both_ways_and_names_suite_objects() -> None:
    refs = RefMap()
    refs.bind("OpaqueRef:model", "OpaqueRef:target")
    assert refs.to_target(("OpaqueRef:model", "x")) == ("OpaqueRef:target", "x")
    assert refs.outcome_to_model(Failure("HANDLE_INVALID", ("VM", "OpaqueRef:target"))) == Failure(
        "HANDLE_INVALID", ("VM", "OpaqueRef:model")
    )
    assert refs.display("OpaqueRef:model") == "vm1"


def _info(actual: Failure) -> DivergenceInfo:
    return DivergenceInfo("VM.start", (), (Success(""),), actual, "lifecycle", "outcome", "m")


def test_waivers_match_method_and_code_until_they_expire(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text(
        '[[waiver]]\nmethod = "VM.start"\ncode = "NO_HOSTS_AVAILABLE"\nreason = "r"\nexpires = 2027-01-31\n'
    )
    before = load_waivers(path, today=datetime.date(2027, 1, 31))
    assert before.match(_info(Failure("NO_HOSTS_AVAILABLE"))) is not None
    assert before.match(_info(Failure("OTHER"))) is None
    after = load_waivers(path, today=datetime.date(2027, 2, 1))
    assert after.match(_info(Failure("NO_HOSTS_AVAILABLE"))) is None
    assert len(after.expired()) == 1


@pytest.mark.parametrize(
    "text",
    [
        "not toml [",
        '[[waiver]]\nmethod = "VM.start"\n',
        '[[waiver]]\nmethod="a"\nreason="r"\nexpires="soon"\n',
    ],
)
def test_malformed_waiver_files_are_usage_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "w.toml"
    path.write_text(text)
    with pytest.raises(UsageError):
        load_waivers(path)


def test_missing_waiver_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_waivers(tmp_path / "absent.toml")


def test_waiver_without_code_covers_any_answer() -> None:
    waivers = Waivers((Waiver("VM.start", "", "r", datetime.date(2999, 1, 1)),))
    assert waivers.match(_info(Failure("ANYTHING"))) is not None
