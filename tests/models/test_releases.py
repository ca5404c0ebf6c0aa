"""Behaviours keyed by xapi release: the model follows ``World.release`` (newest by default)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.outcome import Failure
from models.releases import DEFAULT_RELEASE, release, released
from tests.models.helpers import driver


def test_restart_device_models_is_unknown_before_xapi_23_30() -> None:
    d = driver()
    d.world = replace(d.world, release=release("1.249"))
    vm = d.new_vm()
    assert d.fails("VM.restart_device_models", vm) == Failure(
        "MESSAGE_METHOD_UNKNOWN", ("VM.restart_device_models",)
    )
    assert not released(release("23.29"), "VM.restart_device_models")
    assert released(DEFAULT_RELEASE, "VM.restart_device_models")


@pytest.mark.parametrize(
    ("xapi", "expected"), [("23.31", ("running", "halted")), ("24.10", ("Running", "Halted"))]
)
def test_restart_device_models_error_spelling_by_release(
    xapi: str, expected: tuple[str, str]
) -> None:
    """Before 24.10 the check was the local pool_migrate's (lowercase states, from
    check_operation_error); CA-388107 added restart_device_models' own, capitalised."""
    d = driver()
    d.world = replace(d.world, release=release(xapi))
    halted = d.in_state("Halted")
    assert d.fails("VM.restart_device_models", halted) == Failure(
        "VM_BAD_POWER_STATE", (halted, *expected)
    )


@pytest.mark.parametrize("xapi", ["24.10", "24.19", DEFAULT_RELEASE.xapi])
def test_restart_device_models_from_24_10_needs_running(xapi: str) -> None:
    d = driver()
    d.world = replace(d.world, release=release(xapi))
    suspended = d.in_state("Suspended")
    assert d.fails("VM.restart_device_models", suspended) == Failure(
        "VM_BAD_POWER_STATE", (suspended, "Running", "Suspended")
    )


def test_hosts_report_the_release_followed() -> None:
    d = driver()
    d.world = replace(d.world, release=release("1.249"))
    host = d.ok("host.get_all")[0]
    versions = d.ok("host.get_software_version", host)
    assert (versions["product_brand"], versions["xapi"]) == ("Citrix Hypervisor", "1.249")
    assert d.ok("host.get_API_version_minor", host) == 15
