"""Getters of classes the model holds no objects of, for refs that name nothing: xapi's database
says HANDLE_INVALID [class; ref] (exnHelper.ml, DBCache_NotFound "missing reference"), and
get_by_uuid UUID_INVALID [class; uuid]; not MESSAGE_METHOD_UNKNOWN. Model and simulator over
both protocols."""

from __future__ import annotations

import pytest

from models.outcome import Failure
from tests.xapi.conftest import Api

NULL = "OpaqueRef:NULL"
UNKNOWN = "OpaqueRef:00000000-1111-2222-3333-444444444444"


@pytest.mark.parametrize(
    "method",
    ["VM_metrics.get_record", "VDI.get_virtual_size", "VBD.get_VM", "network.get_record"],
)
@pytest.mark.parametrize("ref", [NULL, UNKNOWN])
def test_null_and_unknown_refs_are_handle_invalid(api: Api, method: str, ref: str) -> None:
    cls = method.partition(".")[0]
    assert api.fails(method, ref) == Failure("HANDLE_INVALID", (cls, ref))


def test_unknown_uuid_is_uuid_invalid(api: Api) -> None:
    uuid = "00000000-1111-2222-3333-444444444444"
    assert api.fails("VDI.get_by_uuid", uuid) == Failure("UUID_INVALID", ("VDI", uuid))


def test_a_session_is_checked_first(api: Api) -> None:
    outcome = api.raw("VM_metrics.get_record", "OpaqueRef:not-a-session", NULL)
    assert isinstance(outcome, Failure) and outcome.code == "SESSION_INVALID"


def test_names_that_are_no_class_stay_unknown(api: Api) -> None:
    assert api.fails("Nothing.get_record", NULL).code == "MESSAGE_METHOD_UNKNOWN"


@pytest.mark.parametrize(
    ("method", "arg"),
    [("message.get_since", "20260101T00:00:00Z"), ("VDI.get_all_records_where", "true")],
)
def test_reads_that_take_no_ref_are_not_refused_as_bad_refs(
    api: Api, method: str, arg: str
) -> None:
    """message.get_since takes a date and get_all_records_where an expression: neither is
    HANDLE_INVALID [class; argument]; the simulator does not answer them."""
    assert api.fails(method, arg).code == "MESSAGE_METHOD_UNKNOWN"
