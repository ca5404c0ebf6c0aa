"""The transport against hostile loopback servers: every case ends within its deadline.

Each test shows both sides where there are two: the honest answer goes through, the hostile one
is a ``TargetError`` whose message says what happened, never with the password in it.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

import pytest

from conformance.engine.harness import Harness
from conformance.errors import (
    MalformedAnswer,
    ProtocolError,
    TargetStalled,
    TargetTimeout,
    TargetUnreachable,
)
from conformance.judge.divergence import Divergence
from conformance.runner.cli import build_parser
from conformance.runner.command import _touch_target
from conformance.runner.connect import RunConfig, open_connection
from conformance.server.process import RunningServer
from conformance.targets import JsonRpcTarget, TargetSettings, XmlRpcTarget
from conformance.targets.inprocess import InProcessTarget
from conformance.targets.transport import excerpt
from models.outcome import Success
from tests.conformance import hostile
from tests.conformance.conftest import PASSWORD
from tests.conformance.detect import replayed
from tests.conformance.test_harness import Tampered, connect, new_vm

FAST = TargetSettings(timeout=1.0)
"""For hostile servers: a short deadline (they misbehave for ``hostile.HOSTILE_S``)."""
HONEST = TargetSettings(timeout=30.0)
"""For honest servers: a deadline a loaded machine always meets."""
WAIT_S = 30.0
"""The longest a test waits for an event that follows at once from what it did."""


def _login(target: XmlRpcTarget | JsonRpcTarget, password: str = PASSWORD) -> object:
    return target.call("session.login_with_password", "root", password, "2.21", "test")


@pytest.mark.parametrize("behave", [hostile.silent, hostile.drip, hostile.drip_body])
def test_a_call_ends_within_its_deadline(behave: hostile.Behaviour) -> None:
    """The server drips a byte more often than the deadline, for a minute: only a deadline on
    the whole exchange ends the call as a timeout, and the client hangs up on the server."""
    with hostile.hostile_server(behave) as server:
        target = XmlRpcTarget(server.url, FAST)
        with pytest.raises(TargetTimeout, match=r"within 1s \(the per-call deadline, --timeout\)"):
            _login(target)
        assert server.hung_up.wait(WAIT_S), "the client left the connection open"


def test_an_honest_server_answers_within_the_same_deadline(server: RunningServer) -> None:
    target = XmlRpcTarget(server.url, HONEST)
    for _ in range(3):  # keep-alive: the connection is reused and still bounded
        assert isinstance(_login(target), Success)


def test_consecutive_missed_deadlines_stall_the_target_and_later_calls_fail_at_once() -> None:
    with hostile.hostile_server(hostile.silent) as server:
        target = XmlRpcTarget(server.url, TargetSettings(timeout=0.5, stall_after=3))
        for _ in range(2):
            with pytest.raises(TargetTimeout):
                _login(target)
        with pytest.raises(TargetStalled, match="3 calls in a row"):
            _login(target)
        seen = len(server.requests)
        with pytest.raises(TargetStalled, match="stalled"):
            target.call("VM.get_all", "OpaqueRef:x")
        assert len(server.requests) == seen, "a stalled target is not called again"


def test_an_answer_in_time_resets_the_count_of_missed_deadlines(server: RunningServer) -> None:
    with hostile.proxy(server.url, stall_after=1) as (relay, _):
        target = XmlRpcTarget(relay.url, TargetSettings(timeout=5, stall_after=2))
        assert isinstance(_login(target), Success)
        with pytest.raises(TargetTimeout):
            _login(target)
    assert target.stalled == ""


@pytest.mark.parametrize("behave", [hostile.huge, hostile.huge_chunked])
def test_an_answer_over_the_size_bound_is_refused_early(behave: hostile.Behaviour) -> None:
    settings = TargetSettings(timeout=30, max_response_bytes=2**20)
    with hostile.hostile_server(behave) as server:
        with pytest.raises(ProtocolError, match="over the 1 MB bound; raise --max-response-mb"):
            _login(XmlRpcTarget(server.url, settings))
        assert server.hung_up.wait(WAIT_S), "the client read on past the bound"


def test_an_answer_under_the_size_bound_is_read(server: RunningServer) -> None:
    target = XmlRpcTarget(server.url, TargetSettings(max_response_bytes=2**20))
    session = _login(target)
    assert isinstance(session, Success)
    assert isinstance(target.call("VM.get_all_records", session.value), Success)


def test_a_redirect_is_never_followed_and_its_location_is_named() -> None:
    with hostile.hostile_server(hostile.echo_body) as elsewhere:
        redirect = hostile.redirect_to(elsewhere.url + "steal")
        with (
            hostile.hostile_server(redirect) as server,
            pytest.raises(ProtocolError, match="HTTP 307, a redirect to http://127") as caught,
        ):
            _login(XmlRpcTarget(server.url, FAST))
        assert elsewhere.requests == [], "the login was sent to the redirect's target"
    assert f"{elsewhere.url}steal" in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("target_class", [XmlRpcTarget, JsonRpcTarget])
@pytest.mark.parametrize("behave", [hostile.echo_error, hostile.echo_body])
def test_errors_quote_a_short_excerpt_with_the_password_masked(
    behave: hostile.Behaviour, target_class: type[XmlRpcTarget]
) -> None:
    with hostile.hostile_server(behave) as server:
        with pytest.raises(ProtocolError) as caught:
            _login(target_class(server.url, FAST))
        assert server.requests and PASSWORD.encode() in server.requests[0].body
    message = str(caught.value)
    assert PASSWORD not in message
    assert len(message) < 500


def test_session_refs_the_target_gave_are_masked_in_its_errors(server: RunningServer) -> None:
    target = XmlRpcTarget(server.url, HONEST)
    session = _login(target)
    assert isinstance(session, Success)
    assert session.value in target.secrets and PASSWORD in target.secrets
    text = f"echo of {session.value} and {PASSWORD}"
    assert excerpt(text, target.secrets) == "echo of *** and ***"


def test_an_excerpt_never_keeps_half_a_secret_at_its_cut() -> None:
    secret = "p" * 30
    text = "x" * 190 + secret + "tail"
    assert "p" not in excerpt(text, [secret])
    assert len(excerpt("y" * 1000)) == 200


def test_a_server_that_closes_idle_connections_is_reconnected(server: RunningServer) -> None:
    with hostile.proxy(server.url, hang_up=True) as (relay, _):
        target = XmlRpcTarget(relay.url, HONEST)
        for _ in range(3):
            assert isinstance(_login(target), Success)
            assert relay.closed.acquire(timeout=WAIT_S), "the server kept the connection"
        assert isinstance(_login(target), Success)


def _id_as_text(_request: hostile.Request, body: bytes) -> bytes:
    """A JSON-RPC answer whose numeric id comes back as a string."""
    document = json.loads(body)
    return json.dumps({**document, "id": str(document["id"])}).encode()


def test_a_json_rpc_answer_that_does_not_echo_the_id_is_malformed(server: RunningServer) -> None:
    assert isinstance(_login(JsonRpcTarget(server.url)), Success)
    wrong_id = re.escape("""id member is "1" where the request's was 1""")
    with (
        hostile.proxy(server.url, rewrite=_id_as_text) as (relay, _),
        pytest.raises(MalformedAnswer, match=wrong_id) as raised,
    ):
        _login(JsonRpcTarget(relay.url))
    # the body quoted is a login's: the session it holds is masked
    assert re.findall(r"OpaqueRef:[^\s\"']*", str(raised.value)) == ["OpaqueRef:***"]


def test_a_server_gone_mid_run_is_unreachable(server: RunningServer) -> None:
    with hostile.proxy(server.url, die_after=1) as (relay, _):
        target = XmlRpcTarget(relay.url, HONEST)
        assert isinstance(_login(target), Success)
        with pytest.raises(TargetUnreachable):
            _login(target)
        with pytest.raises(TargetUnreachable, match="cannot reach"):
            _login(target)


def test_a_bad_port_is_a_usage_error_not_a_traceback() -> None:
    from conformance.errors import UsageError

    with pytest.raises(UsageError, match="port"):
        XmlRpcTarget("http://127.0.0.1:99999/")


def test_a_name_that_never_resolves_costs_the_deadline_not_the_resolver_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    released, answered = threading.Event(), threading.Event()
    real = socket.getaddrinfo

    def black_hole(host: str, *args: object, **kwargs: object) -> object:
        if host == "black-hole.test":
            released.wait(hostile.HOSTILE_S)  # a resolver with no answer: libc retries long
            answered.set()
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", black_hole)
    try:
        with pytest.raises(TargetTimeout, match=r"within 1s \(resolving black-hole.test\)"):
            _login(XmlRpcTarget("http://black-hole.test:9/", FAST))
        assert not answered.is_set(), "the call waited for the resolver"
    finally:
        released.set()


def test_a_tls_handshake_dripped_a_byte_at_a_time_ends_within_the_deadline() -> None:
    with hostile.raw_server(hostile.tls_drip) as address:
        target = XmlRpcTarget(f"https://{address}/", FAST)
        with pytest.raises(TargetTimeout, match=r"within 1s \(in the TLS handshake\)"):
            _login(target)  # a byte every DRIP_S for a minute: only the deadline ends it


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without proxy settings (lower-case ones would win over the test's)."""
    import os

    for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    return monkeypatch


def test_an_http_proxy_from_the_environment_relays_the_calls(
    server: RunningServer, no_proxies: pytest.MonkeyPatch
) -> None:
    monkeypatch = no_proxies
    seen: list[hostile.Request] = []
    with hostile.hostile_server(hostile.forward_proxy(seen)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://me:pw@"))
        monkeypatch.setenv("NO_PROXY", "")
        assert isinstance(_login(XmlRpcTarget(server.url, HONEST)), Success)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # now bypassed
        assert isinstance(_login(XmlRpcTarget(server.url, HONEST)), Success)
    assert len(seen) == 1
    head = seen[0].head.decode()
    assert head.startswith(f"POST {server.url} HTTP/1.1")
    assert "Proxy-Authorization: Basic bWU6cHc=" in head  # me:pw, sent to the proxy only


def test_an_https_target_is_tunnelled_through_the_proxy_and_a_refusal_is_named(
    no_proxies: pytest.MonkeyPatch,
) -> None:
    monkeypatch = no_proxies
    seen: list[hostile.Request] = []
    with hostile.hostile_server(hostile.forward_proxy(seen)) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        target = XmlRpcTarget("https://xapi.example.test:8443/", FAST)
        with pytest.raises(TargetUnreachable, match=r"through the proxy .*407") as caught:
            _login(target)
    assert "NO_PROXY" in str(caught.value)
    assert seen[0].head.startswith(b"CONNECT xapi.example.test:8443 HTTP/1.")


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "https://127.0.0.1:3128"])
def test_a_proxy_of_a_kind_not_supported_is_refused_clearly(
    proxy: str, no_proxies: pytest.MonkeyPatch
) -> None:
    from conformance.errors import UsageError

    monkeypatch = no_proxies
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "")
    with pytest.raises(UsageError, match=r"only http:// proxies are supported.*NO_PROXY"):
        XmlRpcTarget("http://127.0.0.1:9/")


def _pending(request: hostile.Request, body: bytes) -> bytes:
    """Every task stays pending."""
    return (
        hostile.xml_success("pending") if hostile.method_of(request) == "task.get_status" else body
    )


@pytest.mark.parametrize("stalls", [False, True])
def test_after_a_task_pending_past_its_timeout_the_example_s_clean_up_sends_nothing(
    server: RunningServer, stalls: bool
) -> None:
    """The harness would otherwise send five undo calls per VM, each waiting its deadline on a
    target that stopped answering; what the run made is left to its closing sweep's one try."""
    with hostile.proxy(server.url, rewrite=_pending if stalls else None) as (relay_server, relay):
        config = RunConfig(target=relay_server.url, password=PASSWORD, settings=FAST)
        connection, close = open_connection(config)
        harness = Harness(connection, "async")
        vm = new_vm(harness)
        if stalls:
            with pytest.raises(TargetStalled, match=r"task .* of Async.VM.start is still pending"):
                harness.call_async("VM.start", vm, False, False)
        else:
            harness.call_async("VM.start", vm, False, False)
        sent = relay.forwarded
        harness.teardown()
        close()
        assert (relay.forwarded == sent) is stalls


@pytest.mark.parametrize("stalls", [False, True])
def test_the_closing_sweep_of_a_stalled_target_is_one_try(
    server: RunningServer, stalls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep after a run: its login, the records, the logout on an honest target; on one
    that stopped answering, the login alone, given up at its deadline."""
    monkeypatch.setenv("XAPI_PASSWORD", PASSWORD)
    with hostile.proxy(server.url, stall_after=0 if stalls else None) as (relay_server, relay):
        args = build_parser().parse_args(["run", "--target", relay_server.url, "--timeout", "1"])
        if stalls:
            with pytest.raises(TargetStalled):
                _touch_target(args, "sweep-run")
        else:
            _touch_target(args, "sweep-run")
        assert (relay.forwarded == 1) is stalls


def test_a_reproducer_does_not_take_an_answer_with_another_id(
    server: RunningServer, tmp_path: Path
) -> None:
    # A JSON-RPC finding's reproducer replayed through a proxy that answers a numeric id as a
    # string cannot replay (exit 2, as the suite's run cannot log in), where the server itself
    # conforms (exit 0): it never says "conforms now" to answers the suite refuses.
    def wrap(inner: InProcessTarget) -> Tampered:
        return Tampered(inner, "VM.get_name_label", lambda _o: Success(("a",)))

    harness = Harness(connect(protocol="jsonrpc", wrap=wrap), "fields")
    with pytest.raises(Divergence) as raised:
        harness.call("VM.get_name_label", new_vm(harness))
    harness.teardown()
    script = tmp_path / "reproducer.py"
    script.write_text(raised.value.info.reproducer)
    env = {"XAPI_PASSWORD": PASSWORD}
    code, printed = replayed(script, [server.url, "root", "jsonrpc"], env)
    assert code == 0, printed
    with hostile.proxy(server.url, rewrite=_id_as_text) as (relay, _):
        code, printed = replayed(script, [relay.url, "root", "jsonrpc"], env)
    assert code == 2 and "the id member is" in printed, printed
