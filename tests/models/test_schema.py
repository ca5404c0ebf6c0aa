"""The type notation of the published reference: parsing and printing (models/schema.py)."""

from __future__ import annotations

import pytest

from models import catalogue
from models.schema import ROLES, Message, Param, XType, parse_type

STRING = XType("string")


@pytest.mark.parametrize(
    ("text", "xtype"),
    [
        ("string", STRING),
        ("int", XType("int")),
        ("float", XType("float")),
        ("bool", XType("bool")),
        ("datetime", XType("datetime")),
        ("void", XType("void")),
        ("VM ref", XType("ref", name="VM")),
        ("VM record", XType("record", name="VM")),
        ("vm_power_state", XType("enum", name="vm_power_state")),
        ("string set", XType("set", item=STRING)),
        ("VDI ref set", XType("set", item=XType("ref", name="VDI"))),
        ("(string -> string) map", XType("map", key=STRING, item=STRING)),
        (
            "(VM ref -> VM record) map",
            XType("map", key=XType("ref", name="VM"), item=XType("record", name="VM")),
        ),
        (
            "(string -> vm_operations set) map",
            XType("map", key=STRING, item=XType("set", item=XType("enum", name="vm_operations"))),
        ),
        ("  int  ", XType("int")),
    ],
)
def test_parse_type(text: str, xtype: XType) -> None:
    assert parse_type(text) == xtype


@pytest.mark.parametrize(
    ("xtype", "text"),
    [
        (STRING, "string"),
        (XType("int"), "int"),
        (XType("void"), "void"),
        (XType("datetime"), "datetime"),
        (XType("ref", name="host"), "host ref"),
        (XType("record", name="VM"), "VM record"),
        (XType("enum", name="on_crash_behaviour"), "on_crash_behaviour"),
        (XType("set", item=XType("ref", name="VM")), "VM ref set"),
        (XType("map", key=STRING, item=XType("int")), "(string -> int) map"),
        (
            XType("map", key=XType("enum", name="vm_operations"), item=STRING),
            "(vm_operations -> string) map",
        ),
    ],
)
def test_str_prints_the_reference_notation(xtype: XType, text: str) -> None:
    assert str(xtype) == text
    assert parse_type(text) == xtype


def test_every_catalogue_type_round_trips_through_its_text() -> None:
    types = [f.type for f in catalogue.FIELDS.values()]
    for message in catalogue.MESSAGES.values():
        types.append(message.returns)
        types.extend(p.type for p in message.params)
    assert len(types) > 300
    for xtype in types:
        assert parse_type(str(xtype)) == xtype


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("(string) map", "malformed map type '(string) map'"),
        ("(string ->string) map", "malformed map type '(string ->string) map'"),
        ("", "unknown type ''"),
        ("   ", "unknown type ''"),
        ("two words", "unknown type 'two words'"),
        ("(string -> two words) map", "unknown type 'two words'"),
    ],
)
def test_parse_type_rejects_malformed_text(text: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_type(text)
    assert str(caught.value) == error


def test_message_wire_name_and_required_count() -> None:
    message = Message(
        "snapshot",
        (
            Param("vm", XType("ref", name="VM")),
            Param("new_name", STRING),
            Param("ignore_vdis", XType("set", item=XType("ref", name="VDI")), has_default=True),
        ),
        XType("ref", name="VM"),
        "vm-power-admin",
    )
    assert message.wire_name == "VM.snapshot"
    assert message.required_count == 2


def test_roles_are_in_decreasing_order_of_privilege() -> None:
    assert ROLES == (
        "pool-admin",
        "pool-operator",
        "vm-power-admin",
        "vm-admin",
        "vm-operator",
        "client-cert",
        "read-only",
    )
