"""A wrong answer of any shape to a call the suite judges is a divergence (exit 1 with a
reproducer), never a tool error: a number where a map belongs, a date as a plain string, an
int64 out of range, a mangled or unreadable string. Each case is judged through the harness
against an in-process target whose answer to one method is tampered with, and passes untampered.
"""

from __future__ import annotations

import xmlrpc.client as xmlrpc_client
from collections.abc import Callable

import pytest

from conformance.engine.harness import Harness
from conformance.errors import MalformedAnswer
from conformance.faults import lookup
from conformance.judge.divergence import Divergence
from conformance.reproduce.verdict import conforms
from conformance.targets.base import Protocol_
from conformance.targets.inprocess import InProcessTarget
from conformance.wire import (
    DateTimeText,
    Quirks,
    WireFormatError,
    WireNull,
    from_wire,
    jsonrpc,
    xmlrpc,
)
from models.outcome import Outcome, Success
from models.records import EPOCH
from models.schema import XType
from tests.conformance.test_harness import Tampered, _server, connect, new_vm


def _unreadable(_: Outcome) -> Outcome:
    raise MalformedAnswer("http://target/ answered with a malformed body: not XML")


def _lone_surrogate(outcome: Outcome) -> Outcome:
    return Success(f"{outcome.value}\ud83d")


def _plain_date(outcome: Outcome) -> Outcome:
    return Success(str(outcome.value))


# (case id, protocol, method, the tampered answer)
CASES: tuple[tuple[str, Protocol_, str, Callable[[Outcome], Outcome]], ...] = (
    ("number where a map belongs", "xmlrpc", "VM.get_other_config", lambda _o: Success(7)),
    ("array where a string belongs", "jsonrpc", "VM.get_name_label", lambda _o: Success(("a",))),
    ("date as a plain string", "xmlrpc", "VM.get_snapshot_time", _plain_date),
    ("int64 out of range", "xmlrpc", "VM.get_user_version", lambda _o: Success(str(2**63))),
    ("int64 rounded", "jsonrpc", "VM.get_user_version", lambda _o: Success(2**53)),
    ("body that is not XML", "xmlrpc", "VM.get_name_label", _unreadable),
    ("lone surrogate", "jsonrpc", "VM.get_name_label", _lone_surrogate),
    ("record missing", "xmlrpc", "VM.get_record", lambda _o: Success("")),
)


def _harness(protocol: Protocol_, method: str, answer: Callable[[Outcome], Outcome]) -> Harness:
    def wrap(inner: InProcessTarget) -> Tampered:
        return Tampered(inner, method, answer)

    return Harness(connect(protocol=protocol, wrap=wrap), "fields")


def _read(harness: Harness, method: str) -> None:
    vm = new_vm(harness)
    harness.call("VM.set_user_version", vm, 2**53 + 1)
    harness.call(method, vm)


@pytest.mark.parametrize(("case", "protocol", "method", "answer"), CASES, ids=[c[0] for c in CASES])
def test_a_wrong_answer_is_a_divergence_with_a_reproducer(
    case: str, protocol: Protocol_, method: str, answer: Callable[[Outcome], Outcome]
) -> None:
    harness = _harness(protocol, method, answer)
    with pytest.raises(Divergence) as raised:
        _read(harness, method)
    info = raised.value.info
    assert method in info.reproducer, case
    info.reproducer.encode("utf-8")  # a report holds it: it must be writable
    str(raised.value).encode("utf-8")
    harness.teardown()


@pytest.mark.parametrize(("case", "protocol", "method", "answer"), CASES, ids=[c[0] for c in CASES])
def test_the_same_reads_conform_untampered(
    case: str, protocol: Protocol_, method: str, answer: Callable[[Outcome], Outcome]
) -> None:
    del answer
    harness = _harness(protocol, method, lambda outcome: outcome)
    _read(harness, method)
    harness.finish()
    assert not harness.connection.tally.divergences, case


def test_an_xml_rpc_date_is_told_from_a_string_holding_a_date() -> None:
    as_xapi = xmlrpc.decode_response(xmlrpc.encode_response(Success(EPOCH)))
    as_text = xmlrpc.decode_response(
        xmlrpc.encode_response(Success(EPOCH), Quirks(datetime_text=True))
    )
    assert isinstance(as_xapi, Success) and isinstance(as_text, Success)
    assert isinstance(as_xapi.value, DateTimeText)
    assert as_text.value == as_xapi.value and not isinstance(as_text.value, DateTimeText)


@pytest.mark.parametrize(
    ("method", "date", "holds"),
    [
        ("VM.get_snapshot_time", "19700101T00:00:00Z", lambda d: d),
        ("VM.get_record", {"snapshot_time": "19700101T00:00:00Z"}, lambda d: {"snapshot_time": d}),
    ],
    ids=["getter", "record"],
)
def test_the_reproducer_tells_a_date_from_a_string_as_the_suite_does(
    method: str, date: object, holds: Callable[[object], object]
) -> None:
    """Over XML-RPC a date sent as a plain string diverges in the reproducer's verdict as in
    the suite; over JSON-RPC, where xapi sends dates as strings, it conforms."""
    as_xapi = holds(xmlrpc_client.DateTime("19700101T00:00:00Z"))
    expected = ("ok", date)
    assert conforms(method, ("ok", as_xapi), expected, protocol="xmlrpc", strictness="exact")
    assert not conforms(method, ("ok", date), expected, protocol="xmlrpc", strictness="exact")
    assert conforms(method, ("ok", date), expected, protocol="jsonrpc", strictness="exact")


def test_a_null_reads_as_null_and_types_as_nothing() -> None:
    """A JSON null (xapi never sends one) decodes as ``WireNull``, which no type accepts, not
    even void's empty text."""
    outcome = jsonrpc.decode_response(b'{"jsonrpc": "2.0", "result": {"a": null}, "id": 1}')
    assert isinstance(outcome, Success) and isinstance(outcome.value, dict)
    null = outcome.value["a"]
    assert isinstance(null, WireNull)
    for kind in ("string", "void"):
        with pytest.raises(WireFormatError, match="null"):
            from_wire(null, XType(kind))
    assert from_wire("", XType("void")) == ""


@pytest.mark.parametrize("quirky", [True, False], ids=["empty text as null", "as xapi"])
def test_nulls_in_the_records_a_run_imports_are_judged_not_a_tool_error(quirky: bool) -> None:
    """Over JSON-RPC, a server writing "" as null: the pool's records still import (their
    facts read leniently) and the first empty text read is a divergence; as xapi, none."""
    state = _server(faults=lookup(["empty-text-null"] if quirky else []))
    harness = Harness(connect(state, protocol="jsonrpc"), "fields")
    vm = new_vm(harness)
    if quirky:
        with pytest.raises(Divergence, match="null where xapi sends a string") as raised:
            harness.call("VM.get_PV_args", vm)
        assert "The target answered success null;" in raised.value.info.message
    else:
        harness.call("VM.get_PV_args", vm)
        harness.finish()
        assert not harness.connection.tally.divergences
    harness.teardown()


def test_the_reproducer_judges_a_null_as_the_suite_does() -> None:
    expected = ("ok", "")
    rules = {"protocol": "jsonrpc", "strictness": "exact"}
    assert conforms("VM.get_name_description", ("ok", ""), expected, **rules)  # type: ignore[arg-type]
    assert not conforms("VM.get_name_description", ("ok", None), expected, **rules)  # type: ignore[arg-type]
