"""serve --latency: calls take a profile's time; Async tasks stay pending, then finish.

The server-side tests inject sleep, clock and scheduling, so nothing here waits for real
time except the end-to-end runs against a scaled-down server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest

from conformance.errors import ExitCode, UsageError
from conformance.runner.cli import main
from conformance.server.config import ServerConfig
from conformance.server.latency import SlowCalls
from conformance.server.process import RunningServer, start_in_thread
from conformance.server.profiles import (
    CLASSES,
    XAPI,
    XAPI_SOURCES,
    LatencyProfile,
    load_profile,
    message_class,
)
from conformance.server.state import ServerState
from models.outcome import Failure, Success, Value
from tests.models.helpers import vm_args

PASSWORD = "latency-pw"


class _Clockwork:
    """Fake time for SlowCalls: records sleeps, holds scheduled actions until ``run_due``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.scheduled: list[tuple[float, Callable[[], None]]] = []
        self.meanwhile: list[Callable[[], object]] = []
        """What other clients do during the next sleeps, one action a sleep."""

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.meanwhile:
            self.meanwhile.pop(0)()

    def clock(self) -> float:
        return self.now

    def schedule(self, seconds: float, action: Callable[[], None]) -> None:
        self.scheduled.append((self.now + seconds, action))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [(at, action) for at, action in self.scheduled if at <= self.now]
        self.scheduled = [(at, action) for at, action in self.scheduled if at > self.now]
        for _at, action in due:
            action()


class _Slow:
    """A server state behind SlowCalls with fake time, and a logged-in root session."""

    def __init__(self, profile: LatencyProfile, faults: tuple[str, ...] = ()) -> None:
        self.time = _Clockwork()
        self.state = ServerState.from_config(ServerConfig(password=PASSWORD, faults=faults))
        self.slow = SlowCalls(
            profile, sleep=self.time.sleep, clock=self.time.clock, schedule=self.time.schedule
        )
        self.session = str(self.ok("session.login_with_password", "root", PASSWORD))
        self.time.slept.clear()

    def call(self, method: str, *args: object) -> object:
        return self.slow.call(self.state, method, args)

    def ok(self, method: str, *args: object) -> Value:
        outcome = self.call(method, *args)
        assert isinstance(outcome, Success), outcome
        return outcome.value

    def vm(self) -> str:
        return str(self.ok("VM.create", self.session, cast(Value, vm_args())))


def test_every_class_has_an_xapi_figure_and_its_source() -> None:
    assert set(XAPI) == set(CLASSES) == set(XAPI_SOURCES)
    assert all(XAPI[name] > 0 and len(XAPI_SOURCES[name]) > 20 for name in CLASSES)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("VM.get_power_state", "read"),
        ("VM.get_record", "read"),
        ("task.get_status", "read"),
        ("VM.assert_operation_valid", "read"),
        ("VM.set_name_label", "write"),
        ("VM.add_to_other_config", "write"),
        ("session.login_with_password", "login"),
        ("VM.start", "start"),
        ("Async.VM.start_on", "start"),
        ("VM.shutdown", "clean_shutdown"),
        ("VM.snapshot", "clone"),
        ("VM.checkpoint", "checkpoint"),
        ("VM.unpause", "pause"),
    ],
)
def test_messages_fall_in_their_class(method: str, expected: str) -> None:
    assert message_class(method) == expected


def test_a_refused_call_costs_the_failure_figure_and_async_adds_its_overhead() -> None:
    profile = load_profile("xapi")
    assert profile.delay("VM.start", succeeded=True) == XAPI["start"]
    assert profile.delay("VM.start", succeeded=False) == XAPI["failure"]
    assert profile.delay("Async.VM.start", succeeded=True) == XAPI["start"] + XAPI["async"]
    assert profile.scaled(0.1).delay("VM.start", succeeded=True) == pytest.approx(0.8)


def test_a_toml_profile_amends_the_xapi_figures(tmp_path: Path) -> None:
    path = tmp_path / "pool.toml"
    path.write_text('[classes]\nstart = 30\n\n[methods]\n"VM.clean_shutdown" = 45.5\n')
    profile = load_profile(str(path))
    assert profile.delay("VM.start", succeeded=True) == 30.0
    assert profile.delay("VM.clean_shutdown", succeeded=True) == 45.5
    assert profile.delay("VM.shutdown", succeeded=True) == XAPI["clean_shutdown"]
    assert profile.delay("VM.get_name_label", succeeded=True) == XAPI["read"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("speed = 1\n", "unknown key 'speed'"),
        ("base = 'lan'\n", "base must be one of xapi"),
        ("[classes]\nboot = 3\n", "[classes] has no 'boot'"),
        ("[classes]\nstart = -1\n", "start must be seconds"),
        ("[classes]\nstart = 'slow'\n", "start must be seconds"),
        ("[methods]\n'VM.frobnicate' = 1\n", "[methods] has no 'VM.frobnicate'"),
        ("[classes\n", "cannot read the latency profile"),
    ],
)
def test_a_bad_toml_profile_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        load_profile(str(path))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--latency", "nope"], "neither a built-in profile (xapi) nor a TOML file"),
        (["--latency-scale", "0.1"], "--latency-scale needs --latency"),
        (["--latency", "xapi", "--latency-scale", "-1"], "must be a number of 0 or more"),
        (["--latency", "xapi", "--latency-scale", "nan"], "must be a number of 0 or more"),
    ],
)
def test_serve_refuses_bad_latency_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *argv]) == ExitCode.USAGE
    assert message in capsys.readouterr().err


def test_a_sync_call_waits_its_class_figure_and_a_refused_one_the_failure_figure() -> None:
    slow = _Slow(load_profile("xapi"))
    vm = slow.vm()
    slow.ok("VM.start", slow.session, vm, False, False)
    refused = slow.call("VM.start", slow.session, vm, False, False)
    assert isinstance(refused, Failure) and refused.code == "VM_BAD_POWER_STATE"
    assert slow.time.slept == [XAPI["create"], XAPI["start"], XAPI["failure"]]


def test_a_call_meets_the_world_as_its_delay_leaves_it_not_as_it_was_looked_ahead() -> None:
    """A slow call's delay depends on whether it succeeds, so the call is worked out before
    it; another client's call during the delay makes it be worked out again on the world it
    then meets: a VM destroyed meanwhile is a handle no longer valid."""
    slow = _Slow(load_profile("xapi"))
    vm, other = slow.vm(), slow.vm()
    slow.time.meanwhile.append(lambda: slow.state.call("VM.destroy", (slow.session, vm)))
    late = slow.call("VM.set_name_label", slow.session, vm, "late")
    assert isinstance(late, Failure) and late.code == "HANDLE_INVALID"
    assert slow.time.slept[-1] == XAPI["write"]  # the delay of the success looked ahead
    slow.ok("VM.set_name_label", slow.session, other, "on time")
    assert slow.ok("VM.get_name_label", slow.session, other) == "on time"


def test_an_async_call_stays_pending_with_progress_then_finishes_with_its_effect() -> None:
    slow = _Slow(load_profile("xapi"))
    vm = slow.vm()
    task = slow.ok("Async.VM.start", slow.session, vm, False, False)
    duration = XAPI["start"] + XAPI["async"]
    assert slow.ok("task.get_status", slow.session, task) == "pending"
    assert slow.ok("VM.get_power_state", slow.session, vm) == "Halted"
    slow.time.advance(duration / 2)
    assert slow.ok("task.get_progress", slow.session, task) == pytest.approx(0.5, abs=0.01)
    slow.time.advance(duration / 2)
    record = slow.ok("task.get_record", slow.session, task)
    assert isinstance(record, dict)
    assert (record["status"], record["progress"]) == ("success", 1.0)
    assert slow.ok("VM.get_power_state", slow.session, vm) == "Running"


def test_a_refused_async_call_finishes_after_the_failure_figure_with_its_error() -> None:
    slow = _Slow(load_profile("xapi"))
    vm = slow.vm()
    task = slow.ok("Async.VM.hard_shutdown", slow.session, vm)
    assert slow.ok("task.get_status", slow.session, task) == "pending"
    slow.time.advance(XAPI["failure"] + XAPI["async"])
    assert slow.ok("task.get_status", slow.session, task) == "failure"
    error = slow.ok("task.get_error_info", slow.session, task)
    assert error == ("VM_BAD_POWER_STATE", vm, "paused, suspended, running", "halted")


def test_a_task_destroyed_while_pending_still_has_its_effect() -> None:
    slow = _Slow(load_profile("xapi"))
    vm = slow.vm()
    task = slow.ok("Async.VM.start", slow.session, vm, False, False)
    slow.ok("task.destroy", slow.session, task)
    slow.time.advance(XAPI["start"] + XAPI["async"])
    assert slow.ok("VM.get_power_state", slow.session, vm) == "Running"
    assert task not in cast(tuple[str, ...], slow.ok("task.get_all", slow.session))


def test_seeded_faults_apply_to_the_finished_task() -> None:
    slow = _Slow(load_profile("xapi"), faults=("lost-async-error",))
    vm = slow.vm()
    task = slow.ok("Async.VM.hard_shutdown", slow.session, vm)
    slow.time.advance(60.0)
    assert slow.ok("task.get_status", slow.session, task) == "success"
    assert slow.ok("task.get_error_info", slow.session, task)[0] == "VM_BAD_POWER_STATE"  # type: ignore[index]


# ---- end to end: the suite against a slow server ----------------------------------------------


@pytest.fixture
def slow_server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    """An embedded server at 1/50 of the xapi profile, or 1/200 with the faults the test names
    (shrinking replays many calls: the time budget's bound on shrinking is not used here)."""
    faults = cast(tuple[str, ...], getattr(request, "param", ()))
    profile = load_profile("xapi").scaled(0.005 if faults else 0.02)
    running = start_in_thread(ServerConfig(password=PASSWORD, faults=faults, latency=profile))
    try:
        yield running
    finally:
        running.stop()


def _run(url: str, report: Path, examples: int = 4) -> tuple[int, dict[str, object]]:
    command = [sys.executable, "-m", "conformance.runner.cli", "run", "--target", url]
    options = ["--profile", "dev", "--max-examples", str(examples), "--seed", "2"]
    result = subprocess.run(
        [*command, *options, "-k", "test_area and async", "--report-dir", str(report)],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "XAPI_PASSWORD": PASSWORD},
        timeout=600,
    )
    summary = json.loads((report / "summary.json").read_text())
    return result.returncode, summary


@pytest.mark.slow
def test_the_async_area_conforms_against_a_slow_server(
    slow_server: RunningServer, tmp_path: Path
) -> None:
    status, summary = _run(slow_server.url, tmp_path)
    assert (status, summary["verdict"]) == (0, "conforms"), summary


@pytest.mark.slow
@pytest.mark.parametrize("slow_server", [("lost-async-error",)], indirect=True)
def test_the_async_area_finds_a_lost_error_on_a_slow_server(
    slow_server: RunningServer, tmp_path: Path
) -> None:
    """Eight examples: four of the dev profile's async area may hold no Async call that fails
    (it draws copies and queries too), and which they hold moves with the suite's code."""
    status, summary = _run(slow_server.url, tmp_path, examples=8)
    assert (status, summary["verdict"]) == (1, "diverges"), summary
    divergences = cast(list[dict[str, str]], summary["divergences"])
    assert divergences[0]["area"] == "async"
