"""Unmarshalling raw wire arguments into typed values (semantics §4.1 step 4, §11, §15.1).

Error texts are rpclib's ``Failure`` messages, rendered with ``Rpc.to_string``; the spec calls
their exact form unconfirmed (§15.1), so every test that pins a text is marked unconfirmed.
"""

from __future__ import annotations

import math

import pytest

from models import catalogue
from models.outcome import Failure, Value
from models.schema import Field, XType, parse_type
from models.unmarshal import UnmarshalError, rpc_repr, unmarshal, unmarshal_record
from tests.models.helpers import driver, vm_args

ENUMS = catalogue.ENUMS


def _value(raw: object, type_text: str) -> Value:
    return unmarshal(raw, parse_type(type_text), ENUMS)


def _error(raw: object, type_text: str) -> str:
    with pytest.raises(UnmarshalError) as caught:
        _value(raw, type_text)
    assert str(caught.value) == caught.value.text
    return caught.value.text


# ---- rpc_repr: rpclib's Rpc.to_string ---------------------------------------------------------


@pytest.mark.unconfirmed
@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (True, "B(true)"),
        (False, "B(false)"),
        (0, "I(0)"),
        (-42, "I(-42)"),
        (1.5, "F(1.5)"),
        (2.0, "F(2)"),
        (1e20, "F(1e+20)"),
        ("", "S()"),
        ("yes", "S(yes)"),
        ([], "[]"),
        ([1, "a"], "[I(1);S(a)]"),
        (("x",), "[S(x)]"),
        ({}, "{}"),
        ({"a": 1, "b": [True]}, "{a:I(1);b:[B(true)]}"),
        (None, "N"),
    ],
)
def test_rpc_repr_renders_as_rpclib_to_string_unconfirmed(raw: object, text: str) -> None:
    assert rpc_repr(raw) == text


# ---- accepted values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "type_text", "value"),
    [
        ("abc", "string", "abc"),
        ("OpaqueRef:x", "VM ref", "OpaqueRef:x"),
        ("", "void", ""),
        (7, "int", 7),
        ("42", "int", 42),
        ("-7", "int", -7),
        ("9223372036854775807", "int", 2**63 - 1),
        (True, "bool", True),
        (False, "bool", False),
        ("halted", "vm_power_state", "Halted"),
        ("RUNNING", "vm_power_state", "Running"),
        ("Suspended", "vm_power_state", "Suspended"),
        (["a", "b"], "string set", ("a", "b")),
        (("a",), "string set", ("a",)),
        ([], "VM ref set", ()),
        ({"k": "v"}, "(string -> string) map", {"k": "v"}),
        ({"START": "no"}, "(vm_operations -> string) map", {"start": "no"}),
        ({"k": ["halted"]}, "(string -> vm_power_state set) map", {"k": ("Halted",)}),
        ("19700101T00:00:00Z", "datetime", "19700101T00:00:00Z"),
        ({"name_label": "x"}, "VM record", {"name_label": "x"}),
    ],
)
def test_accepted_raw_values(raw: object, type_text: str, value: Value) -> None:
    assert _value(raw, type_text) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [(2, 2.0), (1.5, 1.5), ("2.5", 2.5), ("-3", -3.0), ("1e3", 1000.0), ("1.", 1.0)],
)
def test_floats_accept_doubles_ints_and_numeric_strings(raw: object, value: float) -> None:
    result = _value(raw, "float")
    assert result == value
    assert isinstance(result, float)


@pytest.mark.parametrize("raw", ["nan", "NaN"])
def test_floats_accept_nan(raw: str) -> None:
    result = _value(raw, "float")
    assert isinstance(result, float)
    assert math.isnan(result)


@pytest.mark.parametrize(("raw", "value"), [("inf", float("inf")), ("-Infinity", float("-inf"))])
def test_floats_accept_infinities(raw: str, value: float) -> None:
    assert _value(raw, "float") == value


def test_a_record_is_copied_not_shared() -> None:
    raw = {"a": "b"}
    result = _value(raw, "VM record")
    assert result == raw
    assert result is not raw


# ---- rejected values ---------------------------------------------------------------------------


@pytest.mark.unconfirmed
@pytest.mark.parametrize(
    ("raw", "type_text", "text"),
    [
        (5, "string", "Expected string, got 'I(5)'"),
        (None, "VM ref", "Expected string, got 'N'"),
        (True, "int", "Expected int64, got 'B(true)'"),
        (1.5, "int", "Expected int64, got 'F(1.5)'"),
        ([], "int", "Expected int64, got '[]'"),
        ("forty", "int", "Int64.of_string"),
        ("1.5", "int", "Int64.of_string"),
        ("", "int", "Int64.of_string"),
        (True, "float", "Expected float, got 'B(true)'"),
        ({"a": 1}, "float", "Expected float, got '{a:I(1)}'"),
        ("abc", "float", "float_of_string"),
        ("", "float", "float_of_string"),
        ("yes", "bool", "Expected bool, got 'S(yes)'"),
        (1, "bool", "Expected bool, got 'I(1)'"),
        (0, "vm_power_state", "Expected string, got 'I(0)'"),
        (
            "bogus",
            "vm_power_state",
            "Unhandled pattern when unmarshalling variant type: found 'bogus'",
        ),
        ("a", "string set", "Expected enum, got 'S(a)'"),
        ({"a": "b"}, "string set", "Expected enum, got '{a:S(b)}'"),
        ([1, 2], "string set", "Expected string, got 'I(1)'"),
        ("x", "(string -> string) map", "Expected dict, got 'S(x)'"),
        (["k", "v"], "(string -> string) map", "Expected dict, got '[S(k);S(v)]'"),
        ({"k": 1}, "(string -> string) map", "Expected string, got 'I(1)'"),
        (
            {"frobnicate": "x"},
            "(vm_operations -> string) map",
            "Unhandled pattern when unmarshalling variant type: found 'frobnicate'",
        ),
        (0, "datetime", "Expected datetime, got 'I(0)'"),
        (True, "datetime", "Expected datetime, got 'B(true)'"),
        ("x", "VM record", "Expected dict, got 'S(x)'"),
        ([], "VM record", "Expected dict, got '[]'"),
        (5, "void", "Expected string, got 'I(5)'"),
    ],
)
def test_rejected_raw_values_unconfirmed_text(raw: object, type_text: str, text: str) -> None:
    assert _error(raw, type_text) == text


@pytest.mark.unconfirmed
def test_an_enum_of_an_unknown_enum_type_matches_nothing_unconfirmed_text() -> None:
    with pytest.raises(UnmarshalError) as caught:
        unmarshal("Halted", XType("enum", name="no_such_enum"), ENUMS)
    assert caught.value.text == "Unhandled pattern when unmarshalling variant type: found 'Halted'"


# ---- constructor records -----------------------------------------------------------------------

_FIELDS = (
    Field("name_label", XType("string"), "RW", has_default=True, default=""),
    Field("VCPUs_max", XType("int"), "RW"),
    Field(
        "power_state",
        parse_type("vm_power_state"),
        "RO/runtime",
        has_default=True,
        default="Halted",
    ),
)


def test_unmarshal_record_types_given_fields_and_fills_defaults() -> None:
    typed = unmarshal_record({"VCPUs_max": "4", "extra": 1}, _FIELDS, ENUMS)
    assert typed == {"name_label": "", "VCPUs_max": 4, "power_state": "Halted"}


def test_unmarshal_record_types_enums_case_insensitively() -> None:
    typed = unmarshal_record({"VCPUs_max": 1, "power_state": "paused"}, _FIELDS, ENUMS)
    assert typed["power_state"] == "Paused"


@pytest.mark.unconfirmed
def test_unmarshal_record_missing_required_field_unconfirmed_text() -> None:
    with pytest.raises(UnmarshalError) as caught:
        unmarshal_record({"name_label": "x"}, _FIELDS, ENUMS)
    assert caught.value.text == 'Server_helpers.Dispatcher_FieldNotFound("VCPUs_max")'


@pytest.mark.unconfirmed
def test_unmarshal_record_reports_a_bad_field_value_unconfirmed_text() -> None:
    with pytest.raises(UnmarshalError) as caught:
        unmarshal_record({"VCPUs_max": "many"}, _FIELDS, ENUMS)
    assert caught.value.text == "Int64.of_string"


# ---- through the RPC layer: INTERNAL_ERROR before the session check (§4.1) --------------------


@pytest.mark.unconfirmed
def test_create_with_a_non_struct_record_unconfirmed_text() -> None:
    d = driver()
    assert d.fails("VM.create", "not a record") == Failure(
        "INTERNAL_ERROR", ("Expected dict, got 'S(not a record)'",)
    )


@pytest.mark.unconfirmed
def test_a_non_string_session_is_a_type_error_unconfirmed_text() -> None:
    d = driver()
    assert d.raw("VM.get_all", 5) == Failure("INTERNAL_ERROR", ("Expected string, got 'I(5)'",))
    assert d.raw("VM.get_all", ["s"]) == Failure(
        "INTERNAL_ERROR", ("Expected string, got '[S(s)]'",)
    )


def test_a_json_number_for_a_float_parameter_is_stored_as_a_float() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_HVM_shadow_multiplier", ref, 2)
    value = d.field(ref, "HVM_shadow_multiplier")
    assert value == 2.0
    assert isinstance(value, float)


@pytest.mark.unconfirmed
def test_a_bad_float_parameter_unconfirmed_text() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_HVM_shadow_multiplier", ref, "lots") == Failure(
        "INTERNAL_ERROR", ("float_of_string",)
    )
    assert d.fails("VM.set_HVM_shadow_multiplier", ref, True) == Failure(
        "INTERNAL_ERROR", ("Expected float, got 'B(true)'",)
    )
    assert d.field(ref, "HVM_shadow_multiplier") == 1.0


@pytest.mark.unconfirmed
def test_a_bad_set_parameter_unconfirmed_text() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_tags", ref, "web") == Failure(
        "INTERNAL_ERROR", ("Expected enum, got 'S(web)'",)
    )


@pytest.mark.unconfirmed
def test_an_unknown_blocked_operation_key_unconfirmed_text() -> None:
    d = driver()
    ref = d.new_vm()
    assert d.fails("VM.set_blocked_operations", ref, {"frobnicate": "true"}) == Failure(
        "INTERNAL_ERROR", ("Unhandled pattern when unmarshalling variant type: found 'frobnicate'",)
    )
    assert d.field(ref, "blocked_operations") == {}


def test_blocked_operation_keys_are_matched_case_insensitively() -> None:
    d = driver()
    ref = d.new_vm()
    d.ok("VM.set_blocked_operations", ref, {"START": "true"})
    assert d.field(ref, "blocked_operations") == {"start": "true"}
    assert d.fails("VM.start", ref, False, False) == Failure("OPERATION_BLOCKED", (ref, "true"))


@pytest.mark.unconfirmed
def test_a_type_error_inside_the_create_record_unconfirmed_text() -> None:
    d = driver()
    assert d.fails("VM.create", vm_args(VCPUs_max=[2])) == Failure(
        "INTERNAL_ERROR", ("Expected int64, got '[I(2)]'",)
    )
