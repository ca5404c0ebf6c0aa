"""The embedded server over real HTTP: every message, both protocols, limits and concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
import xmlrpc.client
from typing import Any

import pytest
import requests

from conformance.errors import ProtocolError, TargetUnreachable, UsageError
from conformance.server.process import RunningServer
from conformance.targets import JsonRpcTarget, TargetSettings, XmlRpcTarget, open_target
from conformance.wire import xmlrpc as xml_codec
from models import catalogue
from models.outcome import Failure, Success
from models.rpc import apply
from models.schema import XType
from models.transition import Call
from tests.conformance.conftest import PASSWORD
from tests.models.helpers import vm_args

EXIT_WAIT_S = 120.0
"""The longest a test waits for a served process to exit once told to (a bound against a
hang, never a measure: the machine may be loaded)."""


def _login(
    target: XmlRpcTarget | JsonRpcTarget, user: str = "root", password: str = PASSWORD
) -> str:
    outcome = target.call("session.login_with_password", user, password, "1.0", "tests")
    assert isinstance(outcome, Success), outcome
    return str(outcome.value)


def _placeholder(xtype: XType, session: str) -> object:
    values: dict[str, object] = {
        "string": "x",
        "int": "1",
        "float": 1.5,
        "bool": False,
        "ref": "OpaqueRef:NULL",
        "set": [],
        "map": {},
        "record": {},
        "datetime": "19700101T00:00:00Z",
    }
    if xtype.kind == "enum":
        return catalogue.ENUMS[xtype.name][0]
    if xtype == XType("ref", name="session"):
        return session
    return values[xtype.kind]


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_every_vm_message_answers_over_http_as_the_model_predicts(
    server: RunningServer, protocol: str
) -> None:
    target = open_target(server.url, protocol)
    session = _login(target)  # type: ignore[arg-type]
    vm = target.call("VM.create", session, vm_args())
    assert isinstance(vm, Success)
    unknown = []
    for message in catalogue.MESSAGES.values():
        args = [_placeholder(p.type, session) for p in message.params]
        if message.params and message.params[0].type == XType("ref", name="VM"):
            args[0] = vm.value
        if message.name == "destroy":
            continue  # keep the VM for the messages after it; destroy is exercised below
        before = server.state.world
        expected = apply(before, Call(message.wire_name, (session, *args)))[0].outcome
        actual = target.call(message.wire_name, session, *args)  # type: ignore[arg-type]
        assert type(actual) is type(expected), (message.name, expected, actual)
        if isinstance(expected, Failure):
            assert actual == expected, message.name
            if expected.code == "MESSAGE_METHOD_UNKNOWN":
                unknown.append(message.name)
        else:
            wire = xml_codec.decode_response(xml_codec.encode_response(expected))
            if protocol == "xmlrpc" and not message.name.startswith(
                ("create", "clone", "copy", "snapshot", "checkpoint", "create_new_blob")
            ):
                assert actual == wire, message.name
    assert unknown == []
    assert isinstance(target.call("VM.destroy", session, vm.value), Success)


def test_list_methods_names_every_vm_message(server: RunningServer) -> None:
    methods = xmlrpc.client.ServerProxy(server.url).system.listMethods()["Value"]
    assert {m.wire_name for m in catalogue.MESSAGES.values()} <= set(methods)
    assert "event.from" in methods


def test_sessions_are_shared_between_protocols(server: RunningServer) -> None:
    session = _login(XmlRpcTarget(server.url))
    assert isinstance(JsonRpcTarget(server.url).call("VM.get_all", session), Success)
    assert isinstance(JsonRpcTarget(server.url, version="1.0").call("VM.get_all", session), Success)


def test_wrong_password_is_authentication_failed(server: RunningServer) -> None:
    outcome = XmlRpcTarget(server.url).call("session.login_with_password", "root", "nope")
    assert outcome == Failure("SESSION_AUTHENTICATION_FAILED", ("root", "Authentication failure"))


def test_role_limited_account_is_denied(server: RunningServer) -> None:
    target = XmlRpcTarget(server.url)
    root, ro = _login(target), _login(target, "ro", "ro-pw")
    vm = target.call("VM.create", root, vm_args())
    assert isinstance(vm, Success)
    denied = target.call("VM.start", ro, vm.value, False, False)
    assert isinstance(denied, Failure) and denied.code == "RBAC_PERMISSION_DENIED"


def test_concurrent_clients_lose_no_update(server: RunningServer) -> None:
    target = XmlRpcTarget(server.url)
    session = _login(target)
    vm = target.call("VM.create", session, vm_args())
    assert isinstance(vm, Success)

    def add(worker: int) -> None:
        own = XmlRpcTarget(server.url)
        for n in range(25):
            assert isinstance(
                own.call("VM.add_to_other_config", session, vm.value, f"k{worker}-{n}", "v"),
                Success,
            )

    threads = [threading.Thread(target=add, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    config = target.call("VM.get_other_config", session, vm.value)
    assert isinstance(config, Success) and isinstance(config.value, dict)
    assert sum(1 for k in config.value if k.startswith("k")) == 8 * 25


def test_request_size_is_bounded_as_xapi_bounds_it(server: RunningServer) -> None:
    """xapi refuses a body over 300 KiB (``Http_svr.read_body ~limit``) with its HTML 500 page."""
    response = requests.post(server.url, data=b"x" * (17 * 2**20), timeout=30)
    assert response.status_code == 500
    assert "Client_requested_size_over_limit" in response.text


@pytest.mark.parametrize(
    ("path", "body"), [("/", b"<not-xml"), ("/jsonrpc", b'{"method":"x","params":[]}')]
)
def test_malformed_bodies_get_xapis_http_500_page(
    server: RunningServer, path: str, body: bytes
) -> None:
    response = requests.post(server.url.rstrip("/") + path, data=body, timeout=10)
    assert response.status_code == 500
    assert "text/html" in response.headers["Content-Type"]
    assert response.text.startswith("<html><body><h1>HTTP 500 internal server error</h1>")


def test_rpc2_path_and_other_paths(server: RunningServer) -> None:
    """Every POST path no other xapi handler claims is XML-RPC (http_svr.ml longest prefix);
    an empty body there is unreadable (500), and /cli is a handler not served here (404)."""
    for path in ("/RPC2", "/xmlrpc"):
        target = XmlRpcTarget(server.url.rstrip("/") + path)
        assert isinstance(target.call("session.login_with_password", "root", PASSWORD), Success)
    assert requests.post(server.url + "nope", data=b"", timeout=10).status_code == 500
    assert requests.post(server.url + "cli", data=b"", timeout=10).status_code == 404
    assert requests.get(server.url, timeout=10).status_code == 405


def test_dead_server_is_unreachable_not_a_hang() -> None:
    target = XmlRpcTarget("http://127.0.0.1:9/", TargetSettings(timeout=2))
    with pytest.raises(TargetUnreachable, match="cannot reach"):
        target.call("session.login_with_password", "root", "secret-password")


def test_unreachable_message_never_carries_the_password() -> None:
    target = XmlRpcTarget("http://127.0.0.1:9/", TargetSettings(timeout=2))
    with pytest.raises(TargetUnreachable) as caught:
        target.call("session.login_with_password", "root", "secret-password")
    assert "secret-password" not in str(caught.value)


def test_non_xenapi_answer_is_a_protocol_error(server: RunningServer) -> None:
    with pytest.raises(ProtocolError, match="HTTP 404"):
        XmlRpcTarget(server.url + "cli").call("session.login_with_password", "root", PASSWORD)


@pytest.mark.parametrize("url", ["ftp://host/", "not a url", "https://root:pw@host/"])
def test_bad_target_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        XmlRpcTarget(url)


def test_event_from_tokens_add_mod_del(server: RunningServer) -> None:
    """Each poll names each changed VM once: add, then mod, then del (without a snapshot)."""
    target = XmlRpcTarget(server.url)
    session = _login(target)
    first = target.call("event.from", session, ["vm"], "", 1.0)
    assert isinstance(first, Success) and isinstance(first.value, dict)
    assert len(first.value["events"]) == 4  # the two control domains, the two default templates
    token = first.value["token"]

    def poll() -> list[dict[str, Any]]:
        nonlocal token
        batch = target.call("event.from", session, ["VM"], token, 1.0)
        assert isinstance(batch, Success) and isinstance(batch.value, dict)
        assert all(e["class"] == "vm" for e in batch.value["events"])
        token = batch.value["token"]
        return [e for e in batch.value["events"] if e["ref"] == vm.value]

    vm = target.call("VM.create", session, vm_args())
    assert isinstance(vm, Success)
    assert [e["operation"] for e in poll()] == ["add"]
    target.call("VM.start", session, vm.value, False, False)
    target.call("VM.hard_shutdown", session, vm.value)
    assert [e["operation"] for e in poll()] == ["mod"]
    target.call("VM.destroy", session, vm.value)
    [gone] = poll()
    assert gone["operation"] == "del" and "snapshot" not in gone
    bad = target.call("event.from", session, ["vm"], "garbage", 1.0)
    assert bad == Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", ("garbage",))


def test_event_from_object_subscription_and_timeout(server: RunningServer) -> None:
    target = XmlRpcTarget(server.url)
    session = _login(target)
    a = target.call("VM.create", session, vm_args(name_label="a"))
    b = target.call("VM.create", session, vm_args(name_label="b"))
    assert isinstance(a, Success) and isinstance(b, Success)
    token = target.call("event.from", session, ["vm"], "", 0.1).value["token"]  # type: ignore[union-attr,index,call-overload]
    target.call("VM.set_name_label", session, b.value, "b2")
    quiet = target.call("event.from", session, [f"vm/{a.value}"], token, 0.3)
    assert isinstance(quiet, Success) and quiet.value["events"] == ()  # type: ignore[index,call-overload]
    loud = target.call("event.from", session, [f"vm/{b.value}"], token, 0.3)
    assert [e["snapshot"]["name_label"] for e in loud.value["events"]] == ["b2"]  # type: ignore[union-attr,index,call-overload]


def test_serve_prints_one_ready_line_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance.runner.cli", "serve", "--password", "pw"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:") and line.endswith("/\n")
        url = line.removeprefix("listening on ").strip()
        assert isinstance(
            XmlRpcTarget(url).call("session.login_with_password", "root", "pw"), Success
        )
        process.terminate()
        assert process.wait(timeout=EXIT_WAIT_S) == 0
        assert process.stdout.read() == ""
    finally:
        process.kill()
        process.wait()


def test_incremental_event_snapshots_equal_full_snapshots(server: RunningServer) -> None:
    from models.events import snapshot_all, snapshot_changes

    target = XmlRpcTarget(server.url)
    session = _login(target)
    before = server.state.world
    objects = snapshot_all(before)
    vm = target.call("VM.create", session, vm_args())
    assert isinstance(vm, Success)
    for method, args in [
        ("VM.snapshot", ("s",)),
        ("VM.start", (False, False)),
        ("Async.VM.clone", ("c",)),
    ]:
        target.call(method, session, vm.value, *args)
        after = server.state.world
        objects = snapshot_changes(before, after, objects)
        assert objects == snapshot_all(after), method
        before = after


def test_event_inject_makes_a_mod_event_after_its_token(server: RunningServer) -> None:
    target = XmlRpcTarget(server.url)
    session = _login(target)
    pool = target.call("pool.get_all", session)
    assert isinstance(pool, Success)
    token = target.call("event.inject", session, "pool", pool.value[0])  # type: ignore[index]
    assert isinstance(token, Success)
    batch = target.call("event.from", session, ["pool"], token.value, 1.0)
    assert isinstance(batch, Success) and isinstance(batch.value, dict)
    assert [(e["class"], e["operation"]) for e in batch.value["events"]] == [("pool", "mod")]
    assert batch.value["valid_ref_counts"]["task"] in (0, "0")
    assert target.call("event.inject", session, "pool", "OpaqueRef:NULL") == Failure(
        "HANDLE_INVALID", ("pool", "OpaqueRef:NULL")
    )


def test_no_guest_agent_and_restricted_dmc_behave_as_xapi() -> None:
    from conformance.server.config import ServerConfig
    from conformance.server.process import start_in_thread

    server = start_in_thread(
        ServerConfig(password=PASSWORD, guest_agent=False, restrict_dmc=True, hosts=3)
    )
    try:
        target = XmlRpcTarget(server.url)
        session = _login(target)
        assert len(target.call("host.get_all", session).value) == 3  # type: ignore[arg-type,union-attr]
        pool = target.call("pool.get_all", session).value[0]  # type: ignore[index,union-attr]
        assert target.call("pool.get_restrictions", session, pool).value["restrict_dmc"] == "true"  # type: ignore[index,union-attr,call-overload]
        vm = target.call("VM.create", session, vm_args())
        assert isinstance(vm, Success)
        assert target.call(
            "VM.set_memory_dynamic_range", session, vm.value, str(2**28), str(2**29)
        ) == Failure("MEMORY_CONSTRAINT_VIOLATION_MAXPIN", ("DMC disabled",))
        target.call("VM.start", session, vm.value, False, False)
        assert target.call("VM.clean_shutdown", session, vm.value) == Failure(
            "VM_LACKS_FEATURE", (vm.value,)
        )
        assert target.call("VM.suspend", session, vm.value) == Failure(
            "VM_LACKS_FEATURE", (vm.value,)
        )
        assert isinstance(target.call("VM.hard_shutdown", session, vm.value), Success)
    finally:
        server.stop()
