"""VM.call_plugin's rate limit in the model (xapi_vm.ml record_call_plugin_latest): one call of
guest-agent-operation per VM every 10 s, the wait left named in VM_CALL_PLUGIN_RATE_LIMIT."""

from __future__ import annotations

import datetime

import pytest

from models.outcome import Failure, Outcome
from models.plugins import CLOCK_SLACK, PLUGIN_CALL_INTERVAL, RATE_LIMIT, string_of_float
from models.rpc import apply
from models.transition import Call
from tests.models.helpers import Driver, driver

PLUGIN = "guest-agent-operation"
T0 = datetime.datetime(2026, 12, 2, 6, 0, 0, tzinfo=datetime.UTC)
UNKNOWN_FN = Failure(
    "XENAPI_PLUGIN_FAILURE",
    (
        "failed to find fn",
        'The requested fn "frob" could not be found in plugin "guest-agent-operation".',
        'The requested fn "frob" could not be found in plugin "guest-agent-operation".',
    ),
)


def _at(d: Driver, seconds: float, ref: str, plugin: str = PLUGIN, fn: str = "frob") -> Outcome:
    """VM.call_plugin on ``ref`` ``seconds`` after T0; demands one branch and follows it."""
    now = T0 + datetime.timedelta(seconds=seconds)
    branches = apply(d.world, Call("VM.call_plugin", (d.session, ref, plugin, fn, {}), now))
    assert len(branches) == 1, branches
    d.world = branches[0].world
    return branches[0].outcome


def _limited(ref: str, wait: float) -> Failure:
    return Failure(RATE_LIMIT, (ref, "10.", string_of_float(wait)))


def test_a_second_call_within_the_interval_is_refused_with_the_wait_left() -> None:
    d = driver()
    vm = d.in_state("Running")
    assert _at(d, 0, vm) == UNKNOWN_FN  # let through: its function then fails
    assert _at(d, 3.5, vm) == _limited(vm, 6.5)


def test_a_call_after_the_interval_goes_through() -> None:
    d = driver()
    vm = d.in_state("Running")
    _at(d, 0, vm)
    assert _at(d, PLUGIN_CALL_INTERVAL + CLOCK_SLACK, vm) == UNKNOWN_FN


def test_a_refused_call_does_not_restart_the_interval() -> None:
    d = driver()
    vm = d.in_state("Running")
    _at(d, 0, vm)
    assert _at(d, 7, vm).code == RATE_LIMIT  # type: ignore[union-attr]
    assert _at(d, 12, vm) == UNKNOWN_FN  # 12 s after the one let through, 5 s after the refusal


def test_the_limit_is_per_vm() -> None:
    d = driver()
    first, second = d.in_state("Running"), d.in_state("Running")
    _at(d, 0, first)
    assert _at(d, 1, second) == UNKNOWN_FN


@pytest.mark.parametrize(
    ("plugin", "state", "code"),
    [("frob", "Running", "XENAPI_MISSING_PLUGIN"), (PLUGIN, "Halted", "VM_BAD_POWER_STATE")],
    ids=["another plugin", "not running"],
)
def test_a_call_stopped_before_the_limit_does_not_count(plugin: str, state: str, code: str) -> None:
    d = driver()
    vm = d.in_state(state)
    assert _at(d, 0, vm, plugin=plugin).code == code  # type: ignore[union-attr]
    if state == "Halted":
        d.ok("VM.start", vm, False, False)
    assert _at(d, 1, vm) == UNKNOWN_FN


def test_every_function_counts_once_let_through() -> None:
    d = driver()
    vm = d.in_state("Running")
    assert _at(d, 0, vm, fn="request-rdp-on").params[0] == "failed to execute fn"  # type: ignore[union-attr]
    assert _at(d, 1, vm, fn="run-script").code == RATE_LIMIT  # type: ignore[union-attr]


def test_near_the_end_of_the_interval_both_answers_are_offered_own_reading_first() -> None:
    d = driver()
    vm = d.in_state("Running")
    _at(d, 0, vm)

    def answers(seconds: float) -> list[str]:
        now = T0 + datetime.timedelta(seconds=seconds)
        branches = apply(d.world, Call("VM.call_plugin", (d.session, vm, PLUGIN, "frob", {}), now))
        return [b.outcome.code for b in branches]  # type: ignore[union-attr]

    assert answers(9) == [RATE_LIMIT, "XENAPI_PLUGIN_FAILURE"]
    assert answers(10) == ["XENAPI_PLUGIN_FAILURE", RATE_LIMIT]
    assert answers(PLUGIN_CALL_INTERVAL - CLOCK_SLACK) == [RATE_LIMIT]


def test_the_limit_is_held_by_the_host_the_vm_runs_on() -> None:
    """xapi forwards the call to the VM's host, whose own table holds the last call: after a
    move to another host the VM has no last call there."""
    d = driver()
    vm = d.in_state("Running")
    _at(d, 0, vm)
    here = d.ok("VM.get_resident_on", vm)
    other = next(h for h in d.world.hosts if h != here)
    d.ok("VM.pool_migrate", vm, other, {"live": "true"})
    assert _at(d, 1, vm) == UNKNOWN_FN


@pytest.mark.parametrize(
    ("value", "text"), [(10.0, "10."), (6.5, "6.5"), (1e-05, "1e-05"), (2 / 3, "0.666666666667")]
)
def test_string_of_float_prints_as_ocaml(value: float, text: str) -> None:
    assert string_of_float(value) == text
