"""The query language of VM.get_all_records_where (``models.where``), as xapi's database
filter parses and evaluates it: precedence, columns, stored text and both kinds of error."""

from __future__ import annotations

import pytest

from models.errors import XenAPIError
from models.where import LEXING_ERROR, PARSE_ERROR, column_of, matches, parse, stored_text

VM = {
    "name_label": "web",
    "power_state": "Halted",
    "is_a_template": False,
    "user_version": 7,
    "memory_static_max": 512 * 2**20,
    "tags": ("a", "it's"),
    "other_config": {"k": "v"},
}


@pytest.mark.parametrize(
    ("expr", "selected"),
    [
        ("true", True),
        ("false", False),
        ('field "name__label" = "web"', True),
        ('"web" = field "name__label"', True),
        ('field "power_state" = "Running"', False),
        ('field "is_a_template" = "false" and field "user_version" = "7"', True),
        ('field "memory__static_max" = "536870912"', True),
        ("not true and false", True),  # not (true and false): not binds loosest
        ("(not true) and false", False),
        ("true or false and false", False),  # (true or false) and false: one level, leftwards
        ('field "tags" = "' + "('a' 'it\\'s')" + '"', True),  # quotes escaped in a set
        ('field "_ref" = "OpaqueRef:vm"', True),
    ],
)
def test_an_expression_selects_as_xapi_evaluates_it(expr: str, selected: bool) -> None:
    assert matches(parse(expr), "OpaqueRef:vm", VM) is selected


def test_columns_join_a_namespace_with_two_underscores() -> None:
    assert column_of("name_label") == "name__label"
    assert column_of("VCPUs_at_startup") == "VCPUs__at_startup"
    assert column_of("HVM_boot_policy") == "HVM__boot_policy"
    assert column_of("power_state") == "power_state"
    assert column_of("memory_overhead") == "memory__overhead"


def test_values_are_compared_as_the_database_stores_them() -> None:
    assert stored_text(True) == "true"
    assert stored_text(0.1) == "0.100000000000000006"
    assert stored_text({"k": "v"}) == "(('k' 'v'))"
    assert stored_text(()) == "()"


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ("field \"power_state\" = 'Halted'", LEXING_ERROR),
        ('power_state = "Halted"', LEXING_ERROR),
        ('"a" = = @', PARSE_ERROR),  # the parser stops before the lexer reaches @
        ('field "power_state" = "Halted" and', PARSE_ERROR),
        ("", PARSE_ERROR),
    ],
)
def test_text_outside_the_language_is_an_invalid_value(expr: str, error: str) -> None:
    with pytest.raises(XenAPIError) as raised:
        parse(expr)
    assert raised.value.code == "INVALID_VALUE"
    assert raised.value.params == (expr, error)


def test_a_field_the_table_has_not_is_an_internal_error_where_it_is_reached() -> None:
    with pytest.raises(XenAPIError) as raised:
        matches(parse('field "name_label" = "web"'), "OpaqueRef:vm", VM)
    assert (raised.value.code, raised.value.params) == (
        "INTERNAL_ERROR",
        ("missing field", "name_label", ""),
    )
    assert not matches(parse('false and field "name_label" = "web"'), "OpaqueRef:vm", VM)
