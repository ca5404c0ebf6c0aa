"""The overhead benchmark's recording and replay: a long poll another connection's call woke is
recorded after that call, so the one-connection replay answers it at once, as it was answered
(the benchmark itself is run on demand, not here)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from conformance.server import process
from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer
from conformance.targets import XmlRpcTarget
from models.outcome import Outcome, Success
from tests.benchmarks.loading import load_benchmark
from tests.models.helpers import vm_args

PASSWORD = "overhead-test-pw"
WAIT_S = 60.0
"""The longest the test waits for what follows at once from what it did."""


overhead = load_benchmark("overhead")


@pytest.fixture
def recording_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[RunningServer, list[object], RunningServer, list[object]]]:
    """Two fresh recording servers: one for the run, one for its replay."""
    first: list[object] = []
    second: list[object] = []
    monkeypatch.setattr(process, "XenAPIApp", overhead.recording_app(first))
    run = process.start_in_thread(ServerConfig(password=PASSWORD))
    monkeypatch.setattr(process, "XenAPIApp", overhead.recording_app(second))
    again = process.start_in_thread(ServerConfig(password=PASSWORD))
    try:
        yield run, first, again, second
    finally:
        run.stop()
        again.stop()


def _method(call: object) -> str:
    from conformance.wire import xmlrpc

    return str(xmlrpc.decode_request(call.body)[0])  # type: ignore[attr-defined]


def _ok(target: XmlRpcTarget, method: str, *args: object) -> object:
    outcome = target.call(method, *args)  # type: ignore[arg-type]
    assert isinstance(outcome, Success), outcome
    return outcome.value


def _woken_poll(server: RunningServer) -> None:
    """A long poll on one connection, woken by a VM.create on another."""
    target = XmlRpcTarget(server.url)
    session = _ok(target, "session.login_with_password", "root", PASSWORD, "1.0", "tests")
    batch = _ok(target, "event.from", session, ["vm"], "", 0.0)
    token = batch["token"]  # type: ignore[index]
    answers: list[Outcome] = []

    def poll() -> None:
        answers.append(XmlRpcTarget(server.url).call("event.from", session, ["vm"], token, 60.0))

    polling = threading.Thread(target=poll)
    polling.start()
    assert server.front.wait_parked(1, WAIT_S)
    _ok(target, "VM.create", session, vm_args())
    polling.join(timeout=WAIT_S)
    assert isinstance(answers[0], Success)


def test_the_replay_answers_a_woken_long_poll_at_once_as_it_was_answered(
    recording_twice: tuple[RunningServer, list[object], RunningServer, list[object]],
) -> None:
    run, first, again, second = recording_twice
    _woken_poll(run)
    assert [_method(call) for call in first][-2:] == ["VM.create", "event.from"]
    assert first[-1].parked > 0 and first[-2].parked == 0  # type: ignore[attr-defined]
    assert all(call.ok for call in first)  # type: ignore[attr-defined]
    overhead.replay(again.url, list(first))
    assert [_method(call) for call in second] == [_method(call) for call in first]
    assert [call.ok for call in second] == [call.ok for call in first]  # type: ignore[attr-defined]
    assert all(call.parked == 0 for call in second)  # type: ignore[attr-defined]
