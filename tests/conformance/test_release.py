"""Release-aware behaviour: ``serve --xapi-version`` and the release read from a target.

One behaviour shown both ways: VM.restart_device_models on a halted VM answers
VM_BAD_POWER_STATE [vm; Running; Halted] from xapi 24.10, [vm; running; halted] before (the
local pool_migrate's check), and MESSAGE_METHOD_UNKNOWN before 23.30. The suite reads the
release from the pool master's software_version, so its model predicts each server's answer,
and a model of another release would report a divergence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conformance.areas.strategies import vm_record
from conformance.engine.harness import Connection, Harness
from conformance.engine.importer import Login, import_world
from conformance.errors import ExitCode
from conformance.judge.divergence import Divergence
from conformance.runner.cli import main
from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.process import start_in_thread
from conformance.server.state import ServerState
from conformance.targets.inprocess import InProcessTarget
from models.outcome import Failure, Success
from models.releases import DEFAULT_RELEASE, release
from models.rpc import apply
from models.transition import Call
from models.world import Account, Facts
from tests.models.helpers import vm_args

PASSWORD = "release-pw"
ROOT = Account("root", PASSWORD, "pool-admin", superuser=True)


def _server(xapi_version: str) -> InProcessTarget:
    config = ServerConfig(password=PASSWORD, xapi_version=xapi_version)
    return InProcessTarget(XenAPIApp(ServerState.from_config(config)))


def _login(target: InProcessTarget) -> str:
    outcome = target.call("session.login_with_password", "root", PASSWORD, "2.21", "test")
    assert isinstance(outcome, Success)
    return str(outcome.value)


def _halted_vm(target: InProcessTarget, session: str) -> str:
    outcome = target.call("VM.create", session, vm_args())
    assert isinstance(outcome, Success)
    return str(outcome.value)


CASES = [
    pytest.param("", Failure("VM_BAD_POWER_STATE", ("{vm}", "Running", "Halted")), id="newest"),
    pytest.param("24.19", Failure("VM_BAD_POWER_STATE", ("{vm}", "Running", "Halted")), id="24.19"),
    pytest.param("23.31", Failure("VM_BAD_POWER_STATE", ("{vm}", "running", "halted")), id="23.31"),
    pytest.param(
        "1.249",
        Failure("MESSAGE_METHOD_UNKNOWN", ("VM.restart_device_models",)),
        id="1.249",
    ),
]


@pytest.mark.parametrize(("xapi_version", "expected"), CASES)
def test_served_release_decides_the_answer_and_the_suite_reads_it(
    xapi_version: str, expected: Failure
) -> None:
    target = _server(xapi_version)
    session = _login(target)
    vm = _halted_vm(target, session)
    answer = target.call("VM.restart_device_models", session, vm)
    assert answer == Failure(expected.code, tuple(p.format(vm=vm) for p in expected.params))

    world = import_world(target, (Login(session, ROOT),), Facts(), "salt")
    assert world.release.xapi == (xapi_version or DEFAULT_RELEASE.xapi)
    call = Call("VM.restart_device_models", (session, vm))
    assert apply(world, call)[0].outcome == answer  # the suite judges by the target's release

    other = release("1.249" if xapi_version != "1.249" else DEFAULT_RELEASE.xapi)
    assert apply(replace(world, release=other), call)[0].outcome != answer  # else: divergence


def test_an_explicit_release_overrides_the_one_read() -> None:
    target = _server("1.249")
    session = _login(target)
    world = import_world(target, (Login(session, ROOT),), Facts(), "salt", release("24.19"))
    assert world.release.xapi == "24.19"


def test_served_release_shows_in_the_host_record() -> None:
    target = _server("24.19")
    session = _login(target)
    hosts = target.call("host.get_all_records", session)
    assert isinstance(hosts, Success) and isinstance(hosts.value, dict)
    for host in hosts.value.values():
        assert host["software_version"]["product_brand"] == "XCP-ng"
        assert host["software_version"]["xapi"] == "24.19"
        assert int(host["API_version_minor"]) == 21


def test_serve_refuses_a_version_that_is_not_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--xapi-version", "latest"]) == ExitCode.USAGE
    assert "--xapi-version" in capsys.readouterr().err


# ---- run --xapi-version: the release judged by, chosen instead of read ---------------------


def _harness(served: str, chosen: str) -> Harness:
    state = ServerState.from_config(
        ServerConfig(password=PASSWORD, xapi_version=served, salt="release-tests")
    )
    target = InProcessTarget(XenAPIApp(state))
    connection = Connection(
        target=target,
        root=Login(_login(target), ROOT),
        roles={},
        facts=Facts(),
        run_id="release-tests",
        release=release(chosen) if chosen else None,
    )
    return Harness(connection, "operations")


@pytest.mark.parametrize(
    ("served", "chosen", "diverges"),
    [
        pytest.param("23.31", "", False, id="23.31-read-from-the-target"),
        pytest.param("23.31", "23.31", False, id="23.31-chosen-alike"),
        pytest.param("23.31", "24.19", True, id="23.31-judged-as-24.19"),
        pytest.param("24.19", "23.31", True, id="24.19-judged-as-23.31"),
        pytest.param("24.19", "", False, id="24.19-read-from-the-target"),
    ],
)
def test_a_chosen_release_decides_the_verdict(served: str, chosen: str, diverges: bool) -> None:
    """The same answer conforms to the release the target reports and diverges from another."""
    h = _harness(served, chosen)
    try:
        vm = h.call("VM.create", vm_record("release-tests"))
        assert isinstance(vm, Success)
        assert h.world.release.xapi == (chosen or served)
        if diverges:
            with pytest.raises(Divergence, match="error parameter"):
                h.call("VM.restart_device_models", str(vm.value))
        else:
            answer = h.call("VM.restart_device_models", str(vm.value))
            assert isinstance(answer, Failure) and answer.code == "VM_BAD_POWER_STATE"
    finally:
        h.teardown()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conformance.runner.cli", "run", *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "XAPI_PASSWORD": PASSWORD},
        timeout=300,
    )


def test_run_names_the_chosen_release_and_the_reported_one(tmp_path: Path) -> None:
    server = start_in_thread(ServerConfig(password=PASSWORD, xapi_version="23.31"))
    try:
        result = _run(
            "--target", server.url, "--xapi-version", "24.19", "--profile", "dev",
            "-k", "rpc", "--max-examples", "2", "--seed", "1", "--report-dir", str(tmp_path),
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode in (0, 1), result.stdout + result.stderr
    judged = json.loads((tmp_path / "summary.json").read_text())["release"]
    assert judged.startswith("xapi 24.19 ")
    assert "chosen with --xapi-version (the target reports xapi 23.31)" in judged


def test_run_refuses_a_version_that_is_not_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["run", "--xapi-version", "newest", "--report-dir", str(tmp_path)]) == ExitCode.USAGE
    )
    stderr = capsys.readouterr().err
    assert "--xapi-version" in stderr and "Traceback" not in stderr
