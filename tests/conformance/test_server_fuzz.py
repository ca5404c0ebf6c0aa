"""Hypothesis fuzzes the embedded server's request bodies over real HTTP.

Structure (XML-RPC and JSON-RPC calls, well-formed or cut and spliced), sizes (up to past xapi's
300 KiB limit), nesting (flat to thousands deep) and encodings (UTF-8, UTF-16, Latin-1, lone
surrogates, control characters). Every answer must be xapi's: a XenAPI response that the
codecs read, or xapi's HTML 500 page that never quotes the request; never a hang, a crash,
another status or shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer, start_in_thread
from conformance.wire import jsonrpc, xmlrpc
from models.outcome import Failure, Success
from models.rpc import REGISTRY
from models.world import Account
from tests.conformance.conftest import PASSWORD

CANARY = "canary-Pa55word-never-echoed"
PAGE_500 = "<html><body><h1>HTTP 500 internal server error</h1>"
METHODS = [*sorted(REGISTRY), "event.from", "event.inject", "system.listMethods", "No.such"]
EXAMPLES = 200
RUN = {"examples": 0, "XenAPI answers": 0, "xapi 500 pages": 0}


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[tuple[RunningServer, requests.Session]]:
    config = ServerConfig(password=PASSWORD, accounts=(Account("fz", CANARY, "read-only"),))
    server = start_in_thread(config)
    http = requests.Session()
    try:
        yield server, http
    finally:
        http.close()
        server.stop()
        print("fuzz: " + ", ".join(f"{n} {what}" for what, n in RUN.items()))


# ---- XML-RPC ------------------------------------------------------------------------------

_LEGAL = st.characters(codec="utf-8", exclude_characters="<&", exclude_categories=("Cc", "Cs"))
_TEXT = st.one_of(
    st.text(_LEGAL, max_size=30),
    st.text(_LEGAL, max_size=30),
    st.text(_LEGAL, max_size=30),
    st.sampled_from([CANARY, "", "&amp;", "&#0;", "&#xD800;", "]]>", "\x00", "\t\r\n"]),
)
_DIGITS = st.integers(1, 5000).map(lambda n: "9" * n) | st.integers().map(str)


def _xml_leaf() -> st.SearchStrategy[str]:
    return st.one_of(
        _TEXT,
        _TEXT.map(lambda t: f"<string>{t}</string>"),
        _DIGITS.map(lambda d: f"<int>{d}</int>"),
        _DIGITS.map(lambda d: f"<i4>{d}</i4>"),
        _DIGITS,
        st.sampled_from(["nan", "inf", "-inf", "1e400", "x", ""]).map(
            lambda d: f"<double>{d}</double>"
        ),
        st.floats().map(lambda f: f"<double>{f!r}</double>"),
        st.sampled_from(["0", "1", "true", ""]).map(lambda b: f"<boolean>{b}</boolean>"),
        st.binary(max_size=20).map(lambda b: f"<base64>{b.hex()}</base64>"),
        st.just("<nil/>"),
        st.just("<dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601>"),
    ) | st.sampled_from(["<unknown/>", "<array></array>", "<struct></struct>", "<value/>"])


def _xml_value(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    member = st.tuples(_TEXT, children).map(
        lambda m: f"<member><name>{m[0]}</name><value>{m[1]}</value></member>"
    )
    return st.one_of(
        st.lists(children, max_size=4).map(
            lambda xs: (
                "<array><data>" + "".join(f"<value>{x}</value>" for x in xs) + "</data></array>"
            )
        ),
        st.lists(member, max_size=4).map(lambda ms: "<struct>" + "".join(ms) + "</struct>"),
    )


_XML_VALUES = st.recursive(_xml_leaf(), _xml_value, max_leaves=12)


@st.composite
def xml_calls(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(METHODS) | _TEXT)
    params = draw(st.lists(_XML_VALUES, max_size=5))
    if draw(st.booleans()):
        params.insert(0, CANARY)  # a password in the body, as in a login
    text = (
        '<?xml version="1.0"?><methodCall><methodName>'
        + method
        + "</methodName><params>"
        + "".join(f"<param><value>{p}</value></param>" for p in params)
        + "</params></methodCall>"
    )
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-16", "latin-1"]))
    return text.encode(encoding, "replace")


# ---- JSON-RPC ------------------------------------------------------------------------------

_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.just(CANARY),
    st.integers(1, 5000).map(lambda n: int("9" * n) if n < 4000 else "9" * n),  # past int64
    st.integers(-(2**63), 2**63 - 1),
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _json_text(value: object, ascii_only: bool) -> str:
    import sys

    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(value, ensure_ascii=ascii_only)
    finally:
        sys.set_int_max_str_digits(limit)


@st.composite
def json_calls(draw: st.DrawFn) -> bytes:
    well_formed = draw(st.sampled_from([True, True, True, False]))  # mostly readable calls
    document: dict[str, object] = {
        "method": draw(st.sampled_from(METHODS) if well_formed else _JSON_LEAVES),
        "params": draw(st.lists(_JSON_VALUES, max_size=5) if well_formed else _JSON_VALUES),
        "id": draw(
            st.integers(-(2**63), 2**63 - 1) if well_formed else st.text(max_size=5) | st.none()
        ),
    }
    if draw(st.booleans()):
        document["jsonrpc"] = draw(st.sampled_from(["2.0", "2.0", "1.0", 2]))
    if isinstance(document["params"], list) and draw(st.booleans()):
        document["params"].insert(0, CANARY)
    if isinstance(document["params"], list) and draw(st.booleans()):
        document["params"].append("@@odd@@")  # becomes a lone surrogate or a control character
    text = _json_text(document, draw(st.booleans()))
    odd = draw(st.sampled_from(["\\ud800", "\\udc00", "\\u0000", "\x01"]))
    text = text.replace("@@odd@@", odd)
    return text.encode("utf-8", "surrogatepass")


# ---- sizes, nesting and splices ---------------------------------------------------------------


@st.composite
def deep(draw: st.DrawFn) -> tuple[str, bytes]:
    depth = draw(st.integers(1, 5000))
    if draw(st.booleans()):
        params = "[" * depth + "]" * depth
        return (
            "/jsonrpc",
            f'{{"id":1,"method":"VM.set_tags","params":["{CANARY}",{params}]}}'.encode(),
        )
    inner = "<value><array><data>" * depth + "</data></array></value>" * depth
    return "/", xmlrpc.encode_request("VM.set_tags", [CANARY]).replace(
        b"</params>", b"<param>" + inner.encode() + b"</param></params>"
    )


@st.composite
def spliced(draw: st.DrawFn, bodies: st.SearchStrategy[bytes]) -> bytes:
    body = draw(bodies)
    cut = draw(st.integers(0, len(body)))
    junk = draw(st.binary(max_size=8) | st.just(b"x" * draw(st.sampled_from([10, 300 * 1024]))))
    return body[:cut] + junk + body[cut:]


WELL_FORMED = st.one_of(
    st.tuples(st.sampled_from(["/", "/RPC2"]), xml_calls()),
    st.tuples(st.just("/jsonrpc"), json_calls()),
)
BROKEN = st.one_of(
    deep(),
    st.tuples(st.just("/"), spliced(xml_calls())),
    st.tuples(st.just("/jsonrpc"), spliced(json_calls())),
    st.tuples(st.sampled_from(["/", "/jsonrpc"]), st.binary(max_size=200)),
)
REQUESTS = st.one_of(WELL_FORMED, WELL_FORMED, BROKEN)


def _check(path: str, response: requests.Response) -> None:
    """A XenAPI answer the codecs read, or xapi's 500 page that quotes nothing."""
    if response.status_code == 200:
        decode = jsonrpc.decode_response if path == "/jsonrpc" else xmlrpc.decode_response
        assert isinstance(decode(response.content), Success | Failure)
        RUN["XenAPI answers"] += 1
        return
    RUN["xapi 500 pages"] += 1
    assert response.status_code == 500, (response.status_code, response.text[:200])
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith(PAGE_500) and response.text.endswith("</body></html>")
    assert CANARY not in response.text


def test_every_body_gets_an_answer_in_xapis_shapes(
    fuzzed: tuple[RunningServer, requests.Session],
) -> None:
    server, http = fuzzed

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(request=REQUESTS)
    def one(request: tuple[str, bytes]) -> None:
        path, body = request
        RUN["examples"] += 1
        _check(path, http.post(server.url.rstrip("/") + path, data=body, timeout=20))

    one()
    login = xmlrpc.encode_request("session.login_with_password", ["root", PASSWORD])
    outcome = xmlrpc.decode_response(http.post(server.url, data=login, timeout=10).content)
    assert isinstance(outcome, Success)  # and the server still serves
