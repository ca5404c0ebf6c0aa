"""The official XenAPI Python SDK (PyPI ``XenAPI``, unchanged) against the embedded server."""

from __future__ import annotations

import pytest

from conformance.server.process import RunningServer
from tests.conformance.conftest import PASSWORD
from tests.conformance.test_sdk_event_client import _await_task
from tests.models.helpers import vm_args

XenAPI = pytest.importorskip(
    "XenAPI", reason="the XenAPI SDK is a dev dependency: pip install -e '.[dev]'"
)


def _session(server: RunningServer) -> object:
    session = XenAPI.Session(server.url)
    session.xenapi.login_with_password("root", PASSWORD, "2.21", "xapi-conformance tests")
    return session


def test_sdk_lifecycle_round_trip(server: RunningServer) -> None:
    session = _session(server)
    api = session.xenapi  # type: ignore[attr-defined]
    vm = api.VM.create(vm_args(name_label="sdk"))
    steps = [
        ("start", (False, False), "Running"),
        ("pause", (), "Paused"),
        ("unpause", (), "Running"),
        ("suspend", (), "Suspended"),
        ("resume", (False, False), "Running"),
        ("clean_shutdown", (), "Halted"),
    ]
    for name, args, state in steps:
        getattr(api.VM, name)(vm, *args)
        assert api.VM.get_power_state(vm) == state, name
    snapshot = api.VM.snapshot(vm, "sdk-snap")
    assert api.VM.get_is_a_snapshot(snapshot) is True
    assert api.VM.get_snapshot_of(snapshot) == vm
    clone = api.VM.clone(vm, "sdk-clone")
    assert api.VM.get_record(clone)["name_label"] == "sdk-clone"
    assert api.VM.get_record(clone)["memory_static_max"] == str(2**30)  # int64 arrives as a string
    for ref in (clone, snapshot, vm):
        api.VM.destroy(ref)
    assert vm not in api.VM.get_all()
    api.session.logout()


def test_sdk_failure_details_are_xapis_error_description(server: RunningServer) -> None:
    api = _session(server).xenapi  # type: ignore[attr-defined]
    vm = api.VM.create(vm_args())
    with pytest.raises(XenAPI.Failure) as caught:
        api.VM.clean_shutdown(vm)
    assert caught.value.details == ["VM_BAD_POWER_STATE", vm, "running", "halted"]


def test_sdk_async_call_polled_to_completion(server: RunningServer) -> None:
    api = _session(server).xenapi  # type: ignore[attr-defined]
    vm = api.VM.create(vm_args())
    task = api.Async.VM.clone(vm, "async-clone")
    assert _await_task(api, task)["status"] == "success"  # woken by the task's events
    record = api.task.get_record(task)
    assert record["status"] == "success"
    clone = record["result"].removeprefix("<value>").removesuffix("</value>")
    assert api.VM.get_name_label(clone) == "async-clone"
    failing = api.Async.VM.unpause(vm)
    assert api.task.get_status(failing) == "failure"
    assert api.task.get_error_info(failing) == ["VM_BAD_POWER_STATE", vm, "paused", "halted"]
    api.task.destroy(task)


def test_sdk_login_with_wrong_password(server: RunningServer) -> None:
    session = XenAPI.Session(server.url)
    with pytest.raises(XenAPI.Failure) as caught:
        session.xenapi.login_with_password("root", "wrong")
    assert caught.value.details == [
        "SESSION_AUTHENTICATION_FAILED",
        "root",
        "Authentication failure",
    ]
