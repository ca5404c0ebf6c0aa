"""The wire codecs: round trips both ways, xapi's exact bytes, and malformed input."""

from __future__ import annotations

import datetime
import json
import math
import re
import xmlrpc.client
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.errors import ProtocolError
from conformance.judge.compare import AnswerRules, typed_answer
from conformance.wire import (
    JsonRpcRequest,
    Quirks,
    WireFormatError,
    WireNull,
    from_wire,
    parse_value_text,
    value_text,
)
from conformance.wire import jsonrpc as jr
from conformance.wire import xmlrpc as xr
from models.outcome import Encoded, Failure, Outcome, Success, Value
from models.schema import XType, parse_type
from tests.models.helpers import driver

UTC = datetime.UTC
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
HEAD = b'<?xml version="1.0"?><methodResponse><params><param><value><struct>'
TAIL = b"</struct></value></param></params></methodResponse>"

# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

XML_ILLEGAL = "".join(map(chr, [*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF]))

xml_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters=XML_ILLEGAL))
"""Strings a client can put in an XML-RPC request."""

any_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\ufffe\uffff"))
"""Strings the model may hold: xapi drops the C0 controls it cannot write."""

clean_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters=XML_ILLEGAL + "\r")
)
"""Strings whose XML text is unique: no two of them read back the same (keys cannot collide)."""

json_text = st.text(st.characters(exclude_categories=["Cs"]))

int64 = st.integers(-(2**63), 2**63 - 1)
finite = st.floats(allow_nan=False, allow_infinity=False)
doubles = st.floats(allow_nan=False)
moments = st.datetimes(
    min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30)
).map(lambda moment: moment.replace(microsecond=0, tzinfo=UTC))


def value_trees(text: st.SearchStrategy[str]) -> st.SearchStrategy[Value]:
    """Value trees: scalars, sets (tuples) and maps/records (dicts keyed by str)."""
    scalars: st.SearchStrategy[Value] = st.one_of(text, int64, doubles, st.booleans(), moments)
    return st.recursive(
        scalars,
        lambda kids: st.one_of(
            st.lists(kids, max_size=4).map(tuple), st.dictionaries(text, kids, max_size=4)
        ),
        max_leaves=12,
    )


def outcomes(text: st.SearchStrategy[str]) -> st.SearchStrategy[Outcome]:
    failures = st.builds(Failure, text, st.lists(text, max_size=4).map(tuple))
    return st.one_of(value_trees(text).map(Success), failures)


def typed_values() -> st.SearchStrategy[tuple[XType, Value]]:
    """A XenAPI type with a value of that type, as the model holds it."""
    leaves = st.one_of(
        st.tuples(st.just(parse_type("string")), xml_text),
        st.tuples(st.just(parse_type("int")), int64),
        st.tuples(st.just(parse_type("float")), finite),
        st.tuples(st.just(parse_type("bool")), st.booleans()),
        st.tuples(st.just(parse_type("datetime")), moments),
        st.tuples(st.just(parse_type("vm_power_state")), st.sampled_from(["Halted", "Running"])),
        st.tuples(st.just(parse_type("VM ref")), st.just("OpaqueRef:NULL")),
    )

    def compound(
        kids: st.SearchStrategy[tuple[XType, Value]],
    ) -> st.SearchStrategy[tuple[XType, Value]]:
        return kids.flatmap(
            lambda pair: st.one_of(
                st.lists(st.just(pair[1]), max_size=3).map(
                    lambda items: (XType("set", item=pair[0]), tuple(items))
                ),
                st.dictionaries(xml_text, st.just(pair[1]), max_size=3).map(
                    lambda mapping: (XType("map", key=XType("string"), item=pair[0]), mapping)
                ),
            )
        )

    return st.recursive(leaves, compound, max_leaves=4)


# --------------------------------------------------------------------------------------------
# What each side decodes, per the documented rules
# --------------------------------------------------------------------------------------------


def xapi_text(text: str) -> str:
    """A string after xapi wrote it (C0 controls dropped) and an XML parser read it (CR → LF)."""
    text = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def as_received(value: Value) -> Value:
    """What an XML-RPC client decodes from xapi's encoding of ``value``."""
    if isinstance(value, str):
        return xapi_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float(f"{value:.16g}")
    if isinstance(value, datetime.datetime):
        return basic(value)
    if isinstance(value, Encoded):
        return xapi_text(value_text(value.value))
    if isinstance(value, Mapping):
        received: dict[str, Value] = {}
        for key, item in value.items():
            received.setdefault(xapi_text(key), as_received(item))
        return received
    return tuple(as_received(item) for item in value)


def basic(moment: datetime.datetime) -> str:
    """xapi's basic ISO 8601 text of a UTC datetime."""
    return f"{moment.year:04d}{moment:%m%d}T{moment:%H:%M:%S}Z"


def as_sent(value: Value) -> object:
    """What the server decodes from a client's XML-RPC encoding of ``value``."""
    if isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime.datetime):
        return basic(value)
    if isinstance(value, Encoded):
        return value_text(value.value)
    if isinstance(value, Mapping):
        return {key: as_sent(item) for key, item in value.items()}
    return [as_sent(item) for item in value]


def as_json(value: Value, sequence: type[list[object]] | type[tuple[object, ...]]) -> object:
    """What a JSON decoder reads back: datetimes as text, sets as ``sequence``."""
    if isinstance(value, datetime.datetime):
        return basic(value)
    if isinstance(value, Encoded):
        return value_text(value.value)
    if isinstance(value, Mapping):
        return {key: as_json(item, sequence) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return sequence(as_json(item, sequence) for item in value)
    return value


def received_outcome(outcome: Outcome) -> Outcome:
    if isinstance(outcome, Success):
        return Success(as_received(outcome.value))
    return Failure(xapi_text(outcome.code), tuple(xapi_text(p) for p in outcome.params))


def stdlib_tree(raw: object) -> object:
    """``xmlrpc.client.loads`` output in our client-side shape (tuples, datetime text)."""
    if isinstance(raw, xmlrpc.client.DateTime):
        return raw.value
    if isinstance(raw, list):
        return tuple(stdlib_tree(item) for item in raw)
    if isinstance(raw, dict):
        return {key: stdlib_tree(item) for key, item in raw.items()}
    return raw


# --------------------------------------------------------------------------------------------
# XML-RPC round trips
# --------------------------------------------------------------------------------------------


@given(xml_text, st.lists(value_trees(xml_text), max_size=4))
def test_xml_request_round_trip(method: str, params: list[Value]) -> None:
    name, decoded = xr.decode_request(xr.encode_request(method, params))
    assert name == method
    assert decoded == tuple(as_sent(param) for param in params)


@given(st.lists(value_trees(st.text()) | st.builds(Encoded, value_trees(st.text())), max_size=4))
def test_received_params_are_what_the_round_trip_gives(params: list[Value]) -> None:
    """``received_params`` skips the XML where it can, and gives what the round trip gives."""
    try:
        expected = xr.decode_request(xr.encode_request("m", params))[1]
    except ValueError:
        with pytest.raises(ValueError):
            xr.received_params(params)
        return
    received = xr.received_params(params)
    assert received == expected
    assert [type(r) for r in received] == [type(e) for e in expected]


@given(typed_values())
def test_xml_request_round_trip_typed(pair: tuple[XType, Value]) -> None:
    xtype, value = pair
    _, (decoded,) = xr.decode_request(xr.encode_request("VM.m", [value]))
    assert from_wire(decoded, xtype) == value


@given(outcomes(any_text))
def test_xml_response_round_trip(outcome: Outcome) -> None:
    assert xr.decode_response(xr.encode_response(outcome)) == received_outcome(outcome)


def _general(outcome: Outcome) -> bytes:
    """``encode_response(outcome)`` as the general encoder writes it (value by value)."""
    struct: dict[str, Value] = (
        {"Status": "Success", "Value": outcome.value}
        if isinstance(outcome, Success)
        else {"Status": "Failure", "ErrorDescription": tuple(outcome.description)}
    )
    out = ['<?xml version="1.0"?>', "<methodResponse><params><param>"]
    xr._encode(struct, xr._XAPI, out)
    out.append("</param></params></methodResponse>")
    return "".join(out).encode("utf-8")


def _other_containers(value: Value) -> Value:
    """``value`` with its sets as lists and its maps read-only (the model holds both kinds)."""
    if isinstance(value, tuple):
        return [_other_containers(item) for item in value]
    if isinstance(value, dict):
        return MappingProxyType({k: _other_containers(v) for k, v in value.items()})
    return value


@given(outcomes(any_text), st.booleans())
def test_an_answer_without_quirks_is_written_as_the_general_encoder_writes_it(
    outcome: Outcome, other_containers: bool
) -> None:
    """Answers are written by their values' exact types, the texts escaped once: the same
    bytes as the general encoder, twice in a row (the second time from what was remembered)."""
    if other_containers and isinstance(outcome, Success):
        outcome = Success(_other_containers(outcome.value))
    assert xr.encode_response(outcome) == _general(outcome) == xr.encode_response(outcome)


def _read_whole(body: bytes) -> Outcome:
    """The answer as the full parser reads it (never record by record, never remembered)."""
    return xr._guarded(body, lambda: xr._outcome(xr._parse(body)))


refs = st.uuids().map(lambda uuid: f"OpaqueRef:{uuid}")
records_by_ref = st.dictionaries(
    st.one_of(refs, any_text), st.dictionaries(st.one_of(refs, any_text), value_trees(any_text))
)
"""Maps of records by ref (``get_all_records``), a ref among a record's field or map keys too."""


@settings(max_examples=40)
@given(records_by_ref)
def test_a_map_of_records_reads_as_the_full_parser_reads_it(records: Value) -> None:
    body = xr.encode_response(Success(records))
    assert xr.decode_response(body) == _read_whole(body) == received_outcome(Success(records))


def test_a_record_that_comes_back_unchanged_is_read_and_typed_once() -> None:
    """Two answers of a pool's records: the record that did not change between them is the
    very same object, read and typed, the changed one is read again."""
    d = driver()
    kept, changed = d.new_vm(), d.new_vm()
    before = d.world.vms
    d.ok("VM.set_name_label", changed, "renamed")
    returns = AnswerRules.of("VM.get_all_records").answer
    answers = []
    for vms in (before, d.world.vms):
        raw = xr.decode_response(xr.encode_response(Success(dict(vms))))
        typed, problem = typed_answer(raw, returns, "xmlrpc")
        assert problem is None and isinstance(raw, Success) and isinstance(typed, Success)
        assert isinstance(raw.value, Mapping) and isinstance(typed.value, Mapping)
        answers.append((raw.value, typed.value))
    (raw_before, typed_before), (raw_after, typed_after) = answers
    assert raw_before[kept] is raw_after[kept] and typed_before[kept] is typed_after[kept]
    assert typed_after[changed]["name_label"] == "renamed" != typed_before[changed]["name_label"]


@given(typed_values())
def test_xml_response_round_trip_typed(pair: tuple[XType, Value]) -> None:
    xtype, value = pair
    decoded = xr.decode_response(xr.encode_response(Success(value)))
    assert isinstance(decoded, Success)
    assert from_wire(decoded.value, xtype) == from_wire(as_received(value), xtype)


@given(outcomes(clean_text))
def test_stdlib_reads_every_response(outcome: Outcome) -> None:
    body = xr.encode_response(outcome)
    (struct,), method = xmlrpc.client.loads(body)
    assert method is None
    assert isinstance(struct, dict)
    expected = xr.decode_response(body)
    if isinstance(expected, Success):
        assert struct["Status"] == "Success"
        assert stdlib_tree(struct["Value"]) == expected.value
    else:
        assert struct == {"Status": "Failure", "ErrorDescription": expected.description}


@given(value_trees(any_text))
def test_value_text_round_trip(value: Value) -> None:
    assert parse_value_text(value_text(value)) == as_received(value)


def test_server_reads_what_the_stdlib_client_sends() -> None:
    moment = xmlrpc.client.DateTime("20240101T00:00:00")
    body = xmlrpc.client.dumps(("OpaqueRef:s", {"a": [1, True, 1.5, ""]}, moment), "VM.start")
    assert xr.decode_request(body.encode()) == (
        "VM.start",
        ("OpaqueRef:s", {"a": [1, True, 1.5, ""]}, "20240101T00:00:00"),
    )


def test_server_decodes_every_xmlrpc_type() -> None:
    body = (
        b"<methodCall><methodName>m</methodName><params>"
        b"<param><value><i4>-4</i4></value></param>"
        b"<param><value><i8>9223372036854775807</i8></value></param>"
        b"<param><value><string>a&amp;b</string></value></param>"
        b"<param><value><string/></value></param>"
        b"<param><value>  spaced  </value></param>"
        b"<param><value>\n  <boolean>0</boolean>\n</value></param>"
        b"<param><value><double>1e300</double></value></param>"
        b"<param><value><nil/></value></param>"
        b"<param><value><base64>aGk=</base64></value></param>"
        b"<param><value><array/></value></param>"
        b"<param><value><struct><member><name>k</name><value>1</value></member>"
        b"<member><name>k</name><value>2</value></member></struct></value></param>"
        b"</params></methodCall>"
    )
    name, params = xr.decode_request(body)
    assert name == "m"
    assert params == (
        -4,
        2**63 - 1,
        "a&b",
        "",
        "  spaced  ",
        False,
        1e300,
        None,
        b"hi",
        [],
        {"k": "1"},
    )


# --------------------------------------------------------------------------------------------
# XML-RPC golden bytes
# --------------------------------------------------------------------------------------------


def test_golden_success_with_a_ref() -> None:
    assert xr.encode_response(Success("OpaqueRef:abc")) == (
        HEAD + b"<member><name>Status</name><value>Success</value></member>"
        b"<member><name>Value</name><value>OpaqueRef:abc</value></member>" + TAIL
    )


def test_golden_failure_with_params() -> None:
    assert xr.encode_response(Failure("HANDLE_INVALID", ("VM", "OpaqueRef:x"))) == (
        HEAD + b"<member><name>Status</name><value>Failure</value></member>"
        b"<member><name>ErrorDescription</name><value><array><data>"
        b"<value>HANDLE_INVALID</value><value>VM</value><value>OpaqueRef:x</value>"
        b"</data></array></value></member>" + TAIL
    )


def test_golden_void_success() -> None:
    assert b"<name>Value</name><value></value></member>" in xr.encode_response(Success(""))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("OpaqueRef:abc", "<value>OpaqueRef:abc</value>"),
        ("", "<value></value>"),
        (123, "<value>123</value>"),
        (-(2**63), "<value>-9223372036854775808</value>"),
        (True, "<value><boolean>1</boolean></value>"),
        (False, "<value><boolean>0</boolean></value>"),
        (1.5, "<value><double>1.5</double></value>"),
        (0.1 + 0.2, "<value><double>0.3</double></value>"),
        (1e16, "<value><double>1e+16</double></value>"),
        (math.inf, "<value><double>inf</double></value>"),
        (EPOCH, "<value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value>"),
        ((), "<value><array><data></data></array></value>"),
        ({}, "<value><struct></struct></value>"),
        (
            ("a", 1),
            "<value><array><data><value>a</value><value>1</value></data></array></value>",
        ),
        (
            {"k": "v"},
            "<value><struct><member><name>k</name><value>v</value></member></struct></value>",
        ),
        ("a<b&\"c'\x01\t", "<value>a&lt;b&amp;&quot;c'\t</value>"),
    ],
)
def test_golden_value_text(value: Value, text: str) -> None:
    assert value_text(value) == text


def test_value_text_normalises_datetimes_to_utc_seconds() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2024, 5, 6, 9, 8, 7, 999_999, tzinfo=plus_two)
    assert (
        value_text(moment)
        == "<value><dateTime.iso8601>20240506T07:08:07Z</dateTime.iso8601></value>"
    )
    assert value_text(datetime.datetime(1970, 1, 1)) == value_text(EPOCH)


def test_golden_request() -> None:
    body = xr.encode_request("VM.set_memory", ["OpaqueRef:s", 2**40, True, 0.1, EPOCH, "a\r<"])
    assert body == (
        b'<?xml version="1.0"?><methodCall><methodName>VM.set_memory</methodName><params>'
        b"<param><value>OpaqueRef:s</value></param>"
        b"<param><value>1099511627776</value></param>"
        b"<param><value><boolean>1</boolean></value></param>"
        b"<param><value><double>0.1</double></value></param>"
        b"<param><value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value></param>"
        b"<param><value>a&#13;&lt;</value></param>"
        b"</params></methodCall>"
    )


def test_request_refuses_characters_xml_cannot_carry() -> None:
    with pytest.raises(ValueError, match=r"XML 1\.0"):
        xr.encode_request("m", ["a\x00b"])
    with pytest.raises(TypeError):
        xr.encode_request("m", [None])  # type: ignore[list-item]


@given(value_trees(any_text))
def test_encoded_task_result_round_trip(value: Value) -> None:
    """The model's ``Encoded(v)`` reaches a client as a string that parses back to ``v``."""
    decoded = xr.decode_response(xr.encode_response(Success({"result": Encoded(value)})))
    assert isinstance(decoded, Success)
    assert isinstance(decoded.value, Mapping)
    result = decoded.value["result"]
    assert isinstance(result, str)
    assert parse_value_text(result) == as_received(value)
    for version in ("1.0", "2.0"):
        body = jr.encode_response(Success(Encoded(value)), 1, version)
        assert jr.decode_response(body) == Success(value_text(value))


def test_golden_encoded() -> None:
    assert (
        value_text(Encoded("OpaqueRef:x"))
        == "<value>&lt;value&gt;OpaqueRef:x&lt;/value&gt;</value>"
    )
    assert value_text(Encoded("")) == "<value>&lt;value&gt;&lt;/value&gt;</value>"
    assert jr.encode_response(Success(Encoded(1)), 1, "2.0") == (
        b'{"jsonrpc":"2.0","result":"<value>1</value>","id":1}'
    )


def test_parse_value_text_reads_task_results() -> None:
    assert parse_value_text("<value>OpaqueRef:abc</value>") == "OpaqueRef:abc"
    assert parse_value_text("<value></value>") == ""
    assert parse_value_text("<value><array><data><value>1</value></data></array></value>") == ("1",)


# --------------------------------------------------------------------------------------------
# XML-RPC malformed input
# --------------------------------------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<methodCall><methodName>&lol2;</methodName><params/></methodCall>"
)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<methodCall><methodName>m</methodName><params>",
        BILLION_LAUGHS,
        b'<!DOCTYPE methodCall SYSTEM "file:///etc/passwd"><methodCall/>',
        b"<methodResponse><params/></methodResponse>",
        b"<methodCall><methodName>m</methodName></methodCall>",
        b"<methodCall><params/><methodName>m</methodName></methodCall>",
        b"<methodCall><methodName>m</methodName><params><value>1</value></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><int>abc</int>"
        b"</value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><i4>9223372036854775808"
        b"</i4></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><double/>"
        b"</value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><blob>x</blob>"
        b"</value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value>x<i4>1</i4>"
        b"</value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><struct><member>"
        b"<value>1</value></member></struct></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><array><value>1</value>"
        b"</array></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value>&undefined;</value>"
        b"</param></params></methodCall>",
        "<methodCall><methodName>é</methodName><params/></methodCall>".encode("latin-1"),
    ],
)
def test_malformed_requests(body: bytes) -> None:
    with pytest.raises(WireFormatError):
        xr.decode_request(body)


def test_deep_nesting_is_a_wire_format_error() -> None:
    depth = 50_000
    nested = b"<value><array><data>" * depth + b"</data></array></value>" * depth
    body = b"<methodCall><methodName>m</methodName><params><param>%s</param></params></methodCall>"
    with pytest.raises(WireFormatError, match="nesting"):
        xr.decode_request(body % nested)


def test_server_booleans_follow_rpclib() -> None:
    """rpclib reads ``<boolean>`` as ``data = "1"``: anything else is false, ``true`` included."""
    body = b"<methodCall><methodName>m</methodName><params>%s</params></methodCall>"
    params = b"".join(
        b"<param><value><boolean>%s</boolean></value></param>" % text
        for text in (b"1", b"0", b"true", b" 1")
    )
    assert xr.decode_request(body % params) == ("m", (True, False, False, False))


def response(struct: bytes) -> bytes:
    return (
        b"<methodResponse><params><param><value>"
        + struct
        + b"</value></param></params></methodResponse>"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>500 Internal Server Error</body></html>",
        b"garbage",
        response(b"OpaqueRef:abc"),
        response(b"<struct><member><name>Value</name><value>1</value></member></struct>"),
        response(b"<struct><member><name>Status</name><value>Success</value></member></struct>"),
        response(b"<struct><member><name>Status</name><value>Weird</value></member></struct>"),
        response(
            b"<struct><member><name>Status</name><value>Failure</value></member>"
            b"<member><name>ErrorDescription</name><value><array><data/></array></value>"
            b"</member></struct>"
        ),
        response(
            b"<struct><member><name>Status</name><value>Failure</value></member>"
            b"<member><name>ErrorDescription</name><value>X</value></member></struct>"
        ),
        b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1"
        b"</int></value></member><member><name>faultString</name><value>boom</value></member>"
        b"</struct></value></fault></methodResponse>",
        BILLION_LAUGHS,
    ],
)
def test_malformed_responses(body: bytes) -> None:
    with pytest.raises(WireFormatError):
        xr.decode_response(body)


def test_response_errors_say_what_was_received() -> None:
    body = b"<html>" + b"x" * 1000 + b"</html>"
    with pytest.raises(WireFormatError, match="received '<html>xxx") as caught:
        xr.decode_response(body)
    assert len(str(caught.value)) < 400
    assert isinstance(caught.value, ProtocolError)


def test_fault_is_reported() -> None:
    body = xmlrpc.client.dumps(xmlrpc.client.Fault(1, "boom"), methodresponse=True).encode()
    with pytest.raises(WireFormatError, match=r"fault.*boom"):
        xr.decode_response(body)


def test_failure_params_are_stringified() -> None:
    body = response(
        b"<struct><member><name>Status</name><value>Failure</value></member>"
        b"<member><name>ErrorDescription</name><value><array><data><value>X</value>"
        b"<value><i4>3</i4></value></data></array></value></member></struct>"
    )
    assert xr.decode_response(body) == Failure("X", ("3",))


@pytest.mark.parametrize("text", ["", "OpaqueRef:abc", "<value>"])
def test_malformed_value_text(text: str) -> None:
    with pytest.raises(WireFormatError):
        parse_value_text(text)


# --------------------------------------------------------------------------------------------
# JSON-RPC
# --------------------------------------------------------------------------------------------

versions = st.sampled_from(["1.0", "2.0"])
ids = st.one_of(int64, json_text)


@given(json_text, st.lists(value_trees(json_text), max_size=4), ids, versions)
def test_json_request_round_trip(
    method: str, params: list[Value], id_: object, version: jr.Version
) -> None:
    request = jr.decode_request(jr.encode_request(method, params, id_, version))
    assert request == JsonRpcRequest(
        method, tuple(as_json(param, list) for param in params), id_, version
    )


@given(outcomes(json_text), ids, versions)
def test_json_response_round_trip(outcome: Outcome, id_: object, version: jr.Version) -> None:
    decoded = jr.decode_response(jr.encode_response(outcome, id_, version))
    if isinstance(outcome, Success):
        assert decoded == Success(as_json(outcome.value, tuple))  # type: ignore[arg-type]
    else:
        assert decoded == outcome


@given(typed_values(), versions)
def test_json_response_round_trip_typed(pair: tuple[XType, Value], version: jr.Version) -> None:
    xtype, value = pair
    decoded = jr.decode_response(jr.encode_response(Success(value), 1, version))
    assert isinstance(decoded, Success)
    assert from_wire(decoded.value, xtype) == value


def test_golden_json_responses() -> None:
    failure = Failure("VM_BAD_POWER_STATE", ("OpaqueRef:v", "halted", "running"))
    assert jr.encode_response(Success("OpaqueRef:abc"), 1, "1.0") == (
        b'{"result":"OpaqueRef:abc","error":null,"id":1}'
    )
    assert jr.encode_response(failure, "a", "1.0") == (
        b'{"result":null,"error":["VM_BAD_POWER_STATE","OpaqueRef:v","halted","running"],"id":"a"}'
    )
    assert jr.encode_response(Success(123), 2, "2.0") == b'{"jsonrpc":"2.0","result":123,"id":2}'
    assert jr.encode_response(failure, 7, "2.0") == (
        b'{"jsonrpc":"2.0","error":{"code":1,"message":"VM_BAD_POWER_STATE",'
        b'"data":["OpaqueRef:v","halted","running"]},"id":7}'
    )
    assert jr.encode_response(Success(EPOCH), 3, "2.0") == (
        b'{"jsonrpc":"2.0","result":"19700101T00:00:00Z","id":3}'
    )


def test_golden_json_requests() -> None:
    assert jr.encode_request("VM.start", ["OpaqueRef:s", False], 9) == (
        b'{"jsonrpc":"2.0","method":"VM.start","params":["OpaqueRef:s",false],"id":9}'
    )
    assert jr.encode_request("VM.get_all", ["s"], "x", "1.0") == (
        b'{"method":"VM.get_all","params":["s"],"id":"x"}'
    )


def test_json_v2_params_may_be_missing_null_or_an_object() -> None:
    assert jr.decode_request(b'{"jsonrpc":"2.0","method":"m","id":1}').params == ()
    assert jr.decode_request(b'{"jsonrpc":"2.0","method":"m","params":null,"id":1}').params == ()
    named = jr.decode_request(b'{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":1}')
    assert named.params == ({"a": 1},)


def test_json_v2_error_as_a_raw_array_is_read() -> None:
    body = b'{"jsonrpc":"2.0","error":["HOST_IS_SLAVE","10.0.0.1"],"id":0}'
    assert jr.decode_response(body) == Failure("HOST_IS_SLAVE", ("10.0.0.1",))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"method":"m","params":[]}',
        b'{"method":"m","params":[],"id":null}',
        b'{"jsonrpc":"2.0","method":"m","params":[]}',
        b'{"method":"m","params":[],"id":1.5}',
        b'{"method":"m","params":[],"id":true}',
        b'{"method":"m","params":[],"id":[1]}',
        b'{"method":"m","params":{"a":1},"id":1}',
        b'{"method":"m","id":1}',
        b'{"method":"m","params":"x","id":1}',
        b'{"jsonrpc":"2.0","method":"m","params":"x","id":1}',
        b'{"jsonrpc":"1.0","method":"m","params":[],"id":1}',
        b'{"params":[],"id":1}',
        b'{"method":7,"params":[],"id":1}',
        b'{"method":"m","params":[9223372036854775808],"id":1}',
        b'{"method":"m","params":[' + b"[" * 100_000 + b"]" * 100_000 + b'],"id":1}',
    ],
)
def test_malformed_json_requests(body: bytes) -> None:
    with pytest.raises(WireFormatError):
        jr.decode_request(body)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>500</html>",
        b'"just a string"',
        b'{"result":"x","error":null}',
        b'{"result":"x","id":1}',
        b'{"result":"x","error":["E"],"id":1}',
        b'{"result":null,"error":[],"id":1}',
        b'{"jsonrpc":"2.0","id":1}',
        b'{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"E"},"id":1}',
        b'{"jsonrpc":"2.0","error":{"code":"1","message":"E"},"id":1}',
        b'{"jsonrpc":"2.0","error":{"code":1},"id":1}',
        b'{"jsonrpc":"2.0","error":{"code":1,"message":"E","data":"x"},"id":1}',
        b'{"jsonrpc":"2.0","error":"E","id":1}',
        b'{"jsonrpc":"3.0","result":1,"id":1}',
    ],
)
def test_malformed_json_responses(body: bytes) -> None:
    with pytest.raises(WireFormatError, match="received"):
        jr.decode_response(body)


def test_a_null_in_an_answer_reads_as_wire_null_for_the_judge_to_refuse() -> None:
    """xapi never sends a null; a server that does has answered wrongly (a divergence where
    the value is typed), not unreadably (a tool error)."""
    nil = response(
        b"<struct><member><name>Status</name><value>Success</value></member>"
        b"<member><name>Value</name><value><nil/></value></member></struct>"
    )
    answers = [
        xr.decode_response(nil),
        jr.decode_response(b'{"result":null,"error":null,"id":1}'),
        jr.decode_response(b'{"jsonrpc":"2.0","result":[1,null],"id":1}'),
    ]
    values = [answer.value for answer in answers if isinstance(answer, Success)]
    assert len(values) == 3
    nulls = [values[0], values[1], values[2][1]]  # type: ignore[index]
    assert all(type(null) is WireNull for null in nulls)
    assert type(parse_value_text("<value><nil/></value>")) is WireNull


def test_json_duplicate_members_first_wins() -> None:
    body = b'{"method":"a","method":"b","params":[],"id":1}'
    assert jr.decode_request(body).method == "a"


def test_json_output_is_utf8_and_parseable() -> None:
    body = jr.encode_response(Success({"é": "≤\x01"}), 1, "2.0")
    assert json.loads(body) == {"jsonrpc": "2.0", "result": {"é": "≤\x01"}, "id": 1}
    assert "≤".encode() in body


# --------------------------------------------------------------------------------------------
# from_wire
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "type_text", "expected"),
    [
        ("123", "int", 123),
        (123, "int", 123),
        ("-9223372036854775808", "int", -(2**63)),
        ("1.5", "float", 1.5),
        (2, "float", 2.0),
        (1.5, "float", 1.5),
        (True, "bool", True),
        ("19700101T00:00:00Z", "datetime", EPOCH),
        ("19700101T02:00:00+02:00", "datetime", EPOCH),
        (datetime.datetime(1970, 1, 1), "datetime", EPOCH),
        ("Halted", "vm_power_state", "Halted"),
        ("OpaqueRef:NULL", "VM ref", "OpaqueRef:NULL"),
        ("", "void", ""),
        (["OpaqueRef:a", "OpaqueRef:b"], "VM ref set", ("OpaqueRef:a", "OpaqueRef:b")),
        ({"a": "1"}, "(string -> int) map", {"a": 1}),
        ({"+07": "x"}, "(int -> string) map", {"7": "x"}),
        ({"k": ["1"]}, "(string -> int set) map", {"k": (1,)}),
        ({"memory": "1", "tags": ["a"]}, "VM record", {"memory": "1", "tags": ["a"]}),
    ],
)
def test_from_wire_coerces(raw: object, type_text: str, expected: Value) -> None:
    assert from_wire(raw, parse_type(type_text)) == expected


def test_from_wire_datetimes_are_aware_utc() -> None:
    moment = from_wire("20240101T10:00:00-01:30", parse_type("datetime"))
    assert isinstance(moment, datetime.datetime)
    assert moment.tzinfo is UTC
    assert moment == datetime.datetime(2024, 1, 1, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "type_text"),
    [
        ("abc", "int"),
        ("1.0", "int"),
        (1.0, "int"),
        (True, "int"),
        ("9223372036854775808", "int"),
        ("١٢", "int"),
        ("x", "float"),
        (True, "float"),
        ("true", "bool"),
        (1, "bool"),
        ("yesterday", "datetime"),
        ("19701301T00:00:00Z", "datetime"),
        ("1970-01-01", "datetime"),
        ("1970-01-01T00:00:00Z", "datetime"),  # hyphens: Date.to_rfc3339 leaves them out
        ("19700101T00:00:00.5Z", "datetime"),  # xapi keeps whole seconds
        ("19700101T000000Z", "datetime"),
        ("19700101T00:00:00", "datetime"),  # no zone: xapi writes Z for UTC
        (1, "string"),
        (None, "VM ref"),
        ("a", "VM ref set"),
        (["x"], "int set"),
        (["a"], "(string -> string) map"),
        ({"a": 1}, "(string -> string) map"),
        ({"x": "1"}, "(int -> string) map"),
        ("x", "VM record"),
        ("x", "void"),
        (None, "void"),
    ],
)
def test_from_wire_refuses(raw: object, type_text: str) -> None:
    with pytest.raises(WireFormatError):
        from_wire(raw, parse_type(type_text))


# ---- quirks: the wrong typings seeded faults use ---------------------------------------------


def test_without_quirks_ints_and_bools_are_typed_as_xapi_types_them() -> None:
    answer = Success({"n": 5, "b": True})
    assert b"<value>5</value>" in xr.encode_response(answer)
    assert b"<boolean>1</boolean>" in xr.encode_response(answer)
    assert json.loads(jr.encode_response(answer, 1, "2.0"))["result"] == {"n": 5, "b": True}


def test_quirks_type_ints_and_bools_wrongly_on_both_protocols() -> None:
    answer = Success({"n": 5, "b": True})
    quirky = Quirks(int_typed=True, bool_text=True)
    xml = xr.encode_response(answer, quirky)
    assert b"<value><int>5</int></value>" in xml and b"<value>true</value>" in xml
    result = json.loads(jr.encode_response(answer, 1, "2.0", quirky))["result"]
    assert result == {"n": "5", "b": "true"}


# --------------------------------------------------------------------------------------------
# The lean response decoder reads exactly what the full parser reads
# --------------------------------------------------------------------------------------------


def _full_parser(body: bytes) -> Outcome | str:
    """The full parser's outcome, or its error's message."""
    try:
        return xr._guarded(body, lambda: xr._outcome(xr._parse(body)))
    except WireFormatError as error:
        return f"error: {error}"


def _decoded(body: bytes) -> Outcome | str:
    try:
        return xr.decode_response(body)
    except WireFormatError as error:
        return f"error: {error}"


LEAN_SNIPPETS = (
    b"<value>",
    b"</value>",
    b"<struct>",
    b"<array><data>",
    b"<value/>",
    b"<nil/>",
    b"<string/>",
    b"<int></int>",
    b"<i4> 7 </i4>",
    b"<boolean>1</boolean>",
    b"&amp;",
    b"&#13;",
    b"&foo;",
    b"\r\n",
    b"<!-- c -->",
    b"<![CDATA[x]]>",
    b"<value a='1'>",
    b" ",
    b"x",
    b"\x01",
    b"\xff",
    b"]]>",
    b"<?pi?>",
    b"<!DOCTYPE d>",
    b"</member>",
    b"<member><name>a</name>",
    b"<value><struct>",
    b"</struct></value>",
    b"</data></array></value>",
    b"<value><i4>1</i4></value>",
)


@given(
    outcomes(any_text),
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 3), st.sampled_from(LEAN_SNIPPETS)),
        max_size=3,
    ),
)
def test_the_lean_decoder_agrees_with_the_full_parser(
    outcome: Outcome, edits: list[tuple[int, int, bytes]]
) -> None:
    """On xapi's bytes and on bytes mangled anywhere (a snippet put in, some bytes cut out):
    the same outcome, or the same error."""
    body = xr.encode_response(outcome)
    for offset, cut, snippet in edits:
        at = offset % (len(body) + 1)
        body = body[:at] + snippet + body[at + cut :]
    assert _decoded(body) == _full_parser(body)


@given(outcomes(clean_text))
def test_xapi_layout_is_read_in_one_scan(outcome: Outcome) -> None:
    """xapi's own bytes are read by the one-scan decoder, never left to a slower one, and it
    reads what the full parser reads."""
    body = xr.encode_response(outcome)
    text = body.decode("utf-8").removeprefix('<?xml version="1.0"?>')
    end = len(text) - len(xr._COMPACT_TAIL)
    tokens = xr._COMPACT_TOKEN.findall(text, len(xr._COMPACT_HEAD), end)
    assert xr._lean_status(xr._compact_value(tokens)) == _full_parser(body)


@pytest.mark.parametrize(
    "body",
    [
        response(b"<struct/>"),
        response(b"<array/>"),
        response(b"<struct><member><name/><value/></member></struct>"),
        b' <?xml version="1.0"?>' + response(b"x"),
        b'<?xml version="1.0"?>\n' + response(b"x") + b"\n",
        b'<?xml version="1.0"?>' + response(b"x") + b"<x/>",
        b'<?xml version="1.0" encoding="UTF-8"?>' + response(b"x"),
        b"\xef\xbb\xbf" + response(b"x"),
        response(
            b"<struct> <member> <name>Status</name> <value>Success</value> </member>"
            b"<member><name>Value</name><value><array> <data> <value>1</value> </data>"
            b"</array></value></member><member><name>Value</name><value>2</value>"
            b"</member></struct>"
        ),
    ],
)
def test_the_lean_decoder_agrees_on_edge_cases(body: bytes) -> None:
    assert _decoded(body) == _full_parser(body)


def test_a_json_answer_must_echo_the_requests_id_as_sent() -> None:
    answer = b'{"jsonrpc":"2.0","result":"ok","id":%s}'
    assert jr.decode_response(answer % b"7", request_id=7) == Success("ok")
    assert jr.decode_response(answer % b'"a7"', request_id="a7") == Success("ok")
    assert jr.decode_response(answer % b'"7"') == Success("ok")  # no request to hold it to
    for wrong in (b'"7"', b"8"):
        with pytest.raises(WireFormatError, match=r"id member is .* where the request's was 7"):
            jr.decode_response(answer % wrong, request_id=7)
