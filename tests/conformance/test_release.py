"""Release-aware behaviour: ``serve --xapi-version`` and the release read from a target.

One behaviour shown both ways: VM.restart_device_models on a halted VM answers
VM_BAD_POWER_STATE [vm; Running; Halted] from xapi 24.10, [vm; running; halted] before (the
local pool_migrate's check), and MESSAGE_METHOD_UNKNOWN before 23.30. The suite reads the
release from the pool master's software_version, so its model predicts each server's answer,
and a model of another release would report a divergence.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from conformance.cli import main
from conformance.errors import ExitCode
from conformance.importer import Login, import_world
from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
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
