"""The embedded server under abuse: long polls, hostile bodies, idle connections, tasks, secrets."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conformance.errors import TargetUnreachable, UsageError
from conformance.runner.cli import main
from conformance.server.config import ServerConfig, read_accounts_file
from conformance.server.process import RunningServer, start_in_thread
from conformance.targets import JsonRpcTarget, XmlRpcTarget
from models.events import DEFAULT_WAIT_S, wait_seconds
from models.outcome import Failure, Outcome, Success
from models.world import Account
from tests.conformance.conftest import PASSWORD
from tests.models.helpers import vm_args

CANARY = "canary-Pa55word-never-echoed"
PAGE_500 = "<html><body><h1>HTTP 500 internal server error</h1>"
ACCOUNTS = (
    Account("ro", "ro-pw", "read-only"),
    Account("ro2", "ro2-pw", "read-only"),
    Account("op", "op-pw", "pool-operator"),
)


@pytest.fixture
def tight() -> Iterator[RunningServer]:
    """One model thread and short connection timeouts: starvation and idling show at once."""
    config = ServerConfig(
        password=PASSWORD,
        accounts=ACCOUNTS,
        threads=1,
        idle_timeout=1.0,
        read_timeout=1.0,
        request_timeout=1.5,
    )
    running = start_in_thread(config)
    try:
        yield running
    finally:
        running.stop()


def _login(target: XmlRpcTarget | JsonRpcTarget, user: str = "root", pw: str = PASSWORD) -> str:
    outcome = target.call("session.login_with_password", user, pw, "1.0", "tests")
    assert isinstance(outcome, Success), outcome
    return str(outcome.value)


WAIT_S = 60.0
"""The longest a test waits for an event that follows at once from what it did."""


def _parked(server: RunningServer, count: int) -> None:
    """Wait until ``count`` long polls wait on ``server`` (woken by the server, no polling)."""
    assert server.front.wait_parked(count, WAIT_S), f"{server.front.parked} polls wait, not {count}"


# ---- event.from timeouts and long polls ------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "waits"),
    [
        (0.0, 0.0),
        (1.5, 1.5),
        (-0.0, 0.0),
        (-1e-10, 0.0),  # rounds to -0 ns, which Mtime accepts
        (9_007_199.254_740_991, 9_007_199.254_740_991),
        (9_007_199.254_740_992, DEFAULT_WAIT_S),  # beyond Mtime's float span
        (-1.0, DEFAULT_WAIT_S),
        (math.nan, DEFAULT_WAIT_S),
        (math.inf, DEFAULT_WAIT_S),
        (-math.inf, DEFAULT_WAIT_S),
    ],
)
def test_event_from_timeouts_are_read_as_xapis_clock_reads_them(
    timeout: float, waits: float
) -> None:
    assert wait_seconds(timeout) == pytest.approx(waits)


def _poll(url: str, session: str, token: str, timeout: object, out: list[Outcome]) -> None:
    out.append(XmlRpcTarget(url).call("event.from", session, ["vm"], token, timeout))  # type: ignore[arg-type]


def _poll_until_stopped(url: str, session: str, token: str) -> None:
    with pytest.raises(TargetUnreachable):
        _poll(url, session, token, math.nan, [])


def _token(target: XmlRpcTarget, session: str) -> str:
    first = target.call("event.from", session, ["vm"], "", 0.0)
    assert isinstance(first, Success) and isinstance(first.value, dict)
    return str(first.value["token"])


def test_eight_long_polls_do_not_delay_a_login(tight: RunningServer) -> None:
    """Eight polls that would wait 24 hours (NaN, negative, huge) park without a thread."""
    target = XmlRpcTarget(tight.url)
    session = _login(target)
    token = _token(target, session)
    results: list[Outcome] = []
    timeouts = [math.nan, -1.0, 1e300, 3600.0] * 2
    polls = [
        threading.Thread(target=_poll, args=(tight.url, session, token, t, results))
        for t in timeouts
    ]
    for poll in polls:
        poll.start()
    _parked(tight, 8)
    started = time.perf_counter()
    login = requests.post(
        tight.url.rstrip("/") + "/jsonrpc",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "session.login_with_password",
            "params": ["root", PASSWORD],
        },
        timeout=WAIT_S,
    )
    latency = time.perf_counter() - started
    assert "result" in login.json()
    assert tight.front.parked == 8 and results == []  # the polls still wait
    print(f"login latency under 8 long polls: {latency * 1000:.1f} ms")
    vm = target.call("VM.create", session, vm_args())
    for poll in polls:
        poll.join(timeout=WAIT_S)
    assert len(results) == 8
    for outcome in results:
        assert isinstance(outcome, Success) and isinstance(outcome.value, dict)
        assert [e["ref"] for e in outcome.value["events"]] == [vm.value]  # type: ignore[union-attr]


def test_a_long_poll_ends_with_session_invalid_when_its_session_logs_out(
    tight: RunningServer,
) -> None:
    target = XmlRpcTarget(tight.url)
    session = _login(target)
    results: list[Outcome] = []
    poll = threading.Thread(
        target=_poll, args=(tight.url, session, _token(target, session), 60.0, results)
    )
    poll.start()
    _parked(tight, 1)
    assert isinstance(target.call("session.logout", session), Success)
    poll.join(timeout=WAIT_S)
    assert results == [Failure("SESSION_INVALID", (session,))]


def test_a_long_poll_whose_client_hangs_up_is_dropped(tight: RunningServer) -> None:
    target = XmlRpcTarget(tight.url)
    session = _login(target)
    body = (
        "<?xml version='1.0'?><methodCall><methodName>event.from</methodName><params>"
        f"<param><value>{session}</value></param><param><value><array><data><value>vm</value>"
        f"</data></array></value></param><param><value>{_token(target, session)}</value></param>"
        "<param><value><double>nan</double></value></param></params></methodCall>"
    ).encode()
    with socket.create_connection(
        ("127.0.0.1", int(tight.url.rsplit(":", 1)[1].strip("/")))
    ) as raw:
        raw.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        _parked(tight, 1)
    _parked(tight, 0)


def test_a_timeout_that_is_not_a_number_is_xapis_unmarshalling_error(
    server: RunningServer,
) -> None:
    target = XmlRpcTarget(server.url)
    session = _login(target)
    outcome = target.call("event.from", session, ["vm"], _token(target, session), "soon")
    assert outcome == Failure("INTERNAL_ERROR", ("float_of_string",))


# ---- bodies: limits, invalid text, no echo ----------------------------------------------------


def _xml_call(method: str, *values: str) -> bytes:
    params = "".join(f"<param><value>{v}</value></param>" for v in values)
    return (
        f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName>"
        f"<params>{params}</params></methodCall>"
    ).encode()


def _json_call(method: str, *values: str) -> bytes:
    return (
        f'{{"jsonrpc":"2.0","id":7,"method":"{method}","params":[{",".join(values)}]}}'
    ).encode()


def _post(server: RunningServer, path: str, body: bytes) -> requests.Response:
    response = requests.post(server.url.rstrip("/") + path, data=body, timeout=30)
    assert CANARY not in response.text
    return response


def _xml_outcome(response: requests.Response) -> Outcome:
    from conformance.wire import xmlrpc

    assert response.status_code == 200, response.text[:200]
    return xmlrpc.decode_response(response.content)


def _json_outcome(response: requests.Response) -> Outcome:
    from conformance.wire import jsonrpc

    assert response.status_code == 200, response.text[:200]
    return jsonrpc.decode_response(response.content)


DIGITS = "9" * 5000


def test_a_5000_digit_integer_string_is_xapis_int64_error(server: RunningServer) -> None:
    session = _login(XmlRpcTarget(server.url))
    xml = _post(server, "/", _xml_call("VM.set_VCPUs_max", session, "OpaqueRef:x", DIGITS))
    assert _xml_outcome(xml) == Failure("INTERNAL_ERROR", ("Int64.of_string",))
    body = _json_call("VM.set_VCPUs_max", f'"{session}"', '"OpaqueRef:x"', f'"{DIGITS}"')
    assert _json_outcome(_post(server, "/jsonrpc", body)) == Failure(
        "INTERNAL_ERROR", ("Int64.of_string",)
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/", _xml_call("VM.get_all", f"<int>{DIGITS}</int>")),  # rpclib's parser fails
        ("/jsonrpc", _json_call("VM.get_all", DIGITS)),  # Yojson's Intlit → Int64.of_string
        ("/", _xml_call("VM.get_all", "<array><data><value>" * 3000)),
        ("/jsonrpc", _json_call("VM.get_all", "[" * 100_000 + "]" * 100_000)),
        ("/", _xml_call("session.login_with_password", "root", CANARY)[:-20]),
        (
            "/jsonrpc",
            b'{"method":"session.login_with_password","params":["root","' + CANARY.encode(),
        ),
        ("/", b"\xff\xfe" + _xml_call("VM.get_all", CANARY)),
        ("/", b'<?xml version="1.0" encoding="latin-9"?>' + _xml_call("x", CANARY)[21:]),
    ],
)
def test_unreadable_bodies_get_xapis_500_page_without_the_request(
    server: RunningServer, path: str, body: bytes
) -> None:
    response = _post(server, path, body)
    assert response.status_code == 500
    assert response.text.startswith(PAGE_500) and response.text.endswith("</body></html>")


def test_a_body_over_xapis_limit_gets_its_500_page(server: RunningServer) -> None:
    body = _xml_call("session.login_with_password", "root", CANARY + "x" * 400_000)
    response = _post(server, "/", body)
    assert response.status_code == 500
    assert "Client_requested_size_over_limit" in response.text


def test_a_lone_surrogate_is_xapis_invalid_utf8_error(server: RunningServer) -> None:
    session = _login(XmlRpcTarget(server.url))
    for method, params in [
        ("VM.set_name_label", f'"{session}","OpaqueRef:x","\\ud800"'),
        ("session.login_with_password", '"root","\\ud800"'),
    ]:
        response = _post(server, "/jsonrpc", _json_call(method, params))
        outcome = _json_outcome(response)
        assert isinstance(outcome, Failure) and outcome.code == "INVALID_VALUE", outcome
        assert json.loads(response.content)["error"]["data"][1] == "\ud800"


def test_deep_but_readable_nesting_is_an_unmarshalling_error(server: RunningServer) -> None:
    session = _login(XmlRpcTarget(server.url))
    nested = "[" * 500 + "]" * 500
    body = _json_call("VM.set_tags", f'"{session}"', '"OpaqueRef:x"', nested)
    outcome = _json_outcome(_post(server, "/jsonrpc", body))
    assert isinstance(outcome, Failure) and outcome.code == "INTERNAL_ERROR"


def test_malformed_http_gets_xapis_400_page(server: RunningServer) -> None:
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"POST / HTTP/1.1\r\nContent-Length: x" + CANARY.encode() + b"\r\n\r\n")
        answer = raw.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 400") and "HTTP 400 bad request" in answer
    assert CANARY not in answer


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_parameter_count_mismatch_counts_as_xapi_counts(
    server: RunningServer, protocol: str
) -> None:
    """xapi's generated dispatcher reports ``len(params) - 1`` for a session-taking call, so a call
    with no parameters at all is ``"-1"`` (gen_server.ml; semantics §3), as the model says.
    """
    target = XmlRpcTarget(server.url) if protocol == "xmlrpc" else JsonRpcTarget(server.url)
    assert target.call("VM.get_all") == Failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", ("VM.get_all", "0", "-1")
    )
    assert target.call("session.login_with_password") == Failure(
        "MESSAGE_PARAMETER_COUNT_MISMATCH", ("session.login_with_password", "2", "0")
    )


# ---- connections ------------------------------------------------------------------------------


def _port(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1].strip("/"))


def test_a_hundred_idle_connections_neither_lock_clients_out_nor_stay_open(
    tight: RunningServer,
) -> None:
    idle = [socket.create_connection(("127.0.0.1", _port(tight))) for _ in range(100)]
    slow = [socket.create_connection(("127.0.0.1", _port(tight))) for _ in range(10)]
    try:
        for raw in slow:
            raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")  # a request begun, never finished
        _login(XmlRpcTarget(tight.url))
        for raw in idle:
            raw.settimeout(WAIT_S)
            assert raw.recv(1) == b""  # closed by the server after idle_timeout
        for raw in slow:
            raw.settimeout(WAIT_S)
            assert raw.recv(65536).startswith(b"HTTP/1.1 408")
    finally:
        for raw in idle + slow:
            raw.close()


def test_stop_is_prompt_and_idempotent_with_polls_and_connections_open() -> None:
    for _ in range(10):
        server = start_in_thread(ServerConfig(password=PASSWORD))
        target = XmlRpcTarget(server.url)
        session = _login(target)  # leaves a keep-alive connection open
        poll = threading.Thread(
            target=_poll_until_stopped,
            args=(server.url, session, _token(target, session)),
            daemon=True,
        )
        poll.start()
        _parked(server, 1)
        server.stop()
        server.stop()
        poll.join(timeout=WAIT_S)
        assert not poll.is_alive()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", _port(server)), timeout=2)


# ---- task permissions -------------------------------------------------------------------------


def test_tasks_are_cancelled_and_destroyed_as_xapi_allows(server: RunningServer) -> None:
    target = XmlRpcTarget(server.url)
    root, ro = _login(target), _login(target, "ro", "ro-pw")
    vm = target.call("VM.create", root, vm_args())
    roots_task = target.call("Async.VM.get_possible_hosts", root, vm.value)  # type: ignore[union-attr]
    ro_task = target.call("Async.VM.get_possible_hosts", ro, vm.value)  # type: ignore[union-attr]
    assert isinstance(roots_task, Success) and isinstance(ro_task, Success)
    denied = Failure(
        "RBAC_PERMISSION_DENIED",
        (
            "task.destroy/any",
            "No permission in user session. (Roles with this permission: pool-admin, "
            "pool-operator)",
        ),
    )
    assert target.call("task.cancel", ro, roots_task.value) == denied
    assert target.call("task.destroy", ro, roots_task.value) == denied
    ro_again = _login(target, "ro", "ro-pw")  # the same subject, another session
    assert isinstance(target.call("task.cancel", ro_again, ro_task.value), Success)
    assert isinstance(target.call("task.destroy", ro_again, ro_task.value), Success)
    assert isinstance(target.call("task.destroy", root, roots_task.value), Success)


def test_a_pool_operator_may_destroy_any_task(server_with_operator: RunningServer) -> None:
    target = XmlRpcTarget(server_with_operator.url)
    root, op = _login(target), _login(target, "op", "op-pw")
    vm = target.call("VM.create", root, vm_args())
    task = target.call("Async.VM.get_possible_hosts", root, vm.value)  # type: ignore[union-attr]
    assert isinstance(target.call("task.destroy", op, task.value), Success)  # type: ignore[union-attr]


@pytest.fixture
def server_with_operator() -> Iterator[RunningServer]:
    running = start_in_thread(ServerConfig(password=PASSWORD, accounts=ACCOUNTS))
    try:
        yield running
    finally:
        running.stop()


# ---- passwords from the environment or a file -------------------------------------------------


def test_accounts_file_reads_passwords_from_env_and_files(tmp_path: Path) -> None:
    (tmp_path / "bob.pw").write_text("bob-secret\n")
    accounts = tmp_path / "accounts"
    accounts.write_text(
        "# name:role:source\n\nalice:vm-operator:env:ALICE_PW\nbob:read-only:file:bob.pw\n"
    )
    assert read_accounts_file(accounts, {"ALICE_PW": "alice-secret"}) == (
        Account("alice", "alice-secret", "vm-operator"),
        Account("bob", "bob-secret", "read-only"),
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("alice:vm-operator", "expected NAME:ROLE:env:VAR"),
        ("alice:vm-operator:env:MISSING_VAR", "MISSING_VAR is not set"),
        ("alice:boss:env:ALICE_PW", "role 'boss' is not one of"),
        ("root:pool-admin:env:ALICE_PW", "cannot redefine root"),
        ("alice:vm-operator:file:nope.pw", "cannot read the password file"),
        ("alice:vm-operator:literal:pw", "env:VAR or file:PATH"),
    ],
)
def test_accounts_file_errors_name_the_line_never_a_password(
    tmp_path: Path, line: str, message: str
) -> None:
    accounts = tmp_path / "accounts"
    accounts.write_text(line + "\n")
    with pytest.raises(UsageError, match=message) as caught:
        read_accounts_file(accounts, {"ALICE_PW": "alice-secret"})
    assert f"{accounts}:1" in str(caught.value) and "alice-secret" not in str(caught.value)


def test_serve_takes_passwords_from_env_and_accounts_file(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts"
    accounts.write_text("alice:read-only:env:ALICE_PW\n")
    env = {**_env(), "ROOT_PW": "root-secret", "ALICE_PW": "alice-secret"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conformance.runner.cli",
            "serve",
            "--password-env",
            "ROOT_PW",
            "--accounts-file",
            str(accounts),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().removeprefix("listening on ").strip()
        target = XmlRpcTarget(url)
        _login(target, "root", "root-secret")
        alice = _login(target, "alice", "alice-secret")
        denied = target.call("VM.create", alice, vm_args())
        assert isinstance(denied, Failure) and denied.code == "RBAC_PERMISSION_DENIED"
        process.terminate()
        assert process.wait(timeout=WAIT_S) == 0
    finally:
        process.kill()
        process.wait()


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_serve_refuses_a_missing_password_variable_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--password-env", "NO_SUCH_VAR_X"]) == 2
    stderr = capsys.readouterr().err
    assert "NO_SUCH_VAR_X is not set" in stderr and "Traceback" not in stderr


def test_command_line_passwords_are_documented_as_unsafe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    stdout = capsys.readouterr().out
    assert stdout.count("UNSAFE") == 2
    assert "--password-env" in stdout and "--accounts-file" in stdout


# ---- memory -----------------------------------------------------------------------------------


def test_the_event_log_keeps_at_most_its_capacity() -> None:
    """The log grows with traffic only by destroyed objects (for their del events), and keeps
    the latest ones; a live object's changes are remembered once, as its last generation."""
    from dataclasses import replace
    from types import MappingProxyType

    from conformance.server.events import EventLog
    from models.events import parse_token
    from models.setup import initial_world

    world = initial_world(hosts=1, accounts=(), dmc_enabled=True)
    log = EventLog(world, capacity=50)
    pool = world.pool
    for n in range(200):
        world = replace(world, pool=replace(pool, other_config={"n": str(n)}))
        log.record(world)
    [event] = log.since(1, {"pool"}).events
    assert event.snapshot is not None and event.snapshot["other_config"] == {"n": "199"}
    srs = {f"OpaqueRef:sr-{n}": MappingProxyType({"uuid": str(n)}) for n in range(200)}
    world = replace(world, srs=MappingProxyType({**world.srs, **srs}))
    log.record(world)
    token = parse_token(log.since(0, {"sr"}).token)
    assert token is not None
    for ref in srs:
        world = replace(
            world, srs=MappingProxyType({r: v for r, v in world.srs.items() if r != ref})
        )
        log.record(world)
    gone = log.since(token, {"sr"}).events
    assert len(gone) == 50 and {e.operation for e in gone} == {"del"}


def _hammer(
    url: str,
    stopping: threading.Event,
    failures: list[BaseException],
    calling: threading.Semaphore,
) -> None:
    target = XmlRpcTarget(url)
    try:
        session = _login(target)
        target.call("VM.get_all_records", session)
        calling.release()
        while not stopping.is_set():
            target.call("VM.get_all_records", session)
    except TargetUnreachable:
        pass  # the server went away under us: expected
    except BaseException as error:
        failures.append(error)


def test_stop_while_clients_call_closes_nothing_twice(capfd: pytest.CaptureFixture[str]) -> None:
    """The EBADF at stop (waitress's trigger pipe closed, then written to by a worker) is gone:
    stopping with calls in flight ends every connection on the loop that owns it.
    """
    for _ in range(5):
        server = start_in_thread(ServerConfig(password=PASSWORD))
        stopping = threading.Event()
        failures: list[BaseException] = []
        calling = threading.Semaphore(0)
        clients = [
            threading.Thread(target=_hammer, args=(server.url, stopping, failures, calling))
            for _ in range(4)
        ]
        for client in clients:
            client.start()
        for _client in clients:  # every client is calling, so calls are in flight at the stop
            assert calling.acquire(timeout=WAIT_S), failures
        server.stop()
        stopping.set()
        for client in clients:
            client.join(timeout=WAIT_S)
        assert failures == []
    assert "internal error" not in capfd.readouterr().err
