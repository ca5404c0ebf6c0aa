"""The pool's default templates in the suite's template cells (conformance/areas/sweeps.py
pool_templates_sweep, machines.py TemplatesMachine.pick_template), both ways: the simulator with
its default templates conforms and its templates are never changed; a server whose copies of a
default template stay default templates (xapi_vm_clone.ml drops both flags), or which destroys a
default template (xapi_vm_helpers.ml destroy), diverges."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis.stateful import run_state_machine_as_test

from conformance.areas.machines import AREAS
from conformance.areas.sweeps import pool_templates, pool_templates_sweep, run_all
from conformance.engine.harness import Harness
from conformance.judge.divergence import Divergence
from conformance.server.config import ServerConfig
from conformance.server.state import ServerState
from conformance.targets.base import Protocol_
from conformance.targets.inprocess import InProcessTarget
from models.outcome import Outcome, Value
from tests.conformance.test_harness import (
    DETECT,
    FAST,
    PASSWORD,
    ROLE_ACCOUNTS,
    connect,
    replace_settings,
)

READS = {"VM.get_record", "VM.get_is_default_template", "VM.get_allowed_operations"}
"""What the suite may send naming one of the pool's templates, besides copying it and asking
whether an operation is allowed."""


class Recording:
    """A target that remembers every call's method and arguments."""

    def __init__(self, inner: InProcessTarget) -> None:
        self.inner = inner
        self.sent: list[tuple[str, tuple[Value, ...]]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def call(self, method: str, *params: Value) -> Outcome:
        self.sent.append((method, params))
        return self.inner.call(method, *params)


def _state(*faults: str, templates: bool = True) -> ServerState:
    config = ServerConfig(
        password=PASSWORD, accounts=ROLE_ACCOUNTS, faults=faults, templates=templates
    )
    return ServerState.from_config(config)


def _defaults(state: ServerState) -> dict[str, Mapping[str, Value]]:
    return {ref: vm for ref, vm in state.world.vms.items() if vm["is_default_template"] is True}


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_the_pools_templates_conform_and_stay_as_they_were(protocol: Protocol_) -> None:
    state = _state()
    before = _defaults(state)
    recorder: list[Recording] = []

    def wrap(inner: InProcessTarget) -> Recording:
        recorder.append(Recording(inner))
        return recorder[0]

    connection = connect(state, protocol=protocol, wrap=wrap)
    assert sorted(pool_templates(Harness(connection, "lifecycle"))) == sorted(before)
    run_all(list(pool_templates_sweep()), connection, "lifecycle")
    assert not connection.tally.divergences
    assert _defaults(state) == before and len(state.world.vms) == 4  # two dom0s, two templates
    naming = [(m, a) for m, a in recorder[0].sent if set(a) & set(before)]
    assert {m for m, _ in naming} == {
        *READS,
        "VM.assert_operation_valid",
        "VM.clone",
        "VM.copy",
    }


def test_the_template_checks_are_judged_on_a_lookalike_the_suite_made() -> None:
    recorder: list[Recording] = []

    def wrap(inner: InProcessTarget) -> Recording:
        recorder.append(Recording(inner))
        return recorder[0]

    connection = connect(_state(), wrap=wrap)
    run_all(list(pool_templates_sweep()), connection, "lifecycle")
    answers = [m for m, _ in recorder[0].sent]
    assert answers.count("VM.set_is_default_template") == 4  # on and off, on each lookalike
    assert answers.count("VM.provision") == 4  # every copy: no SR named in any template


def test_a_pool_without_templates_gives_the_cells_nothing_to_do() -> None:
    connection = connect(_state(templates=False))
    run_all(list(pool_templates_sweep()), connection, "lifecycle")
    assert not connection.tally.divergences


def test_a_copy_that_stays_a_default_template_diverges_and_is_still_cleaned_up() -> None:
    state = _state("default-template-clone-kept")
    before = _defaults(state)
    connection = connect(state)
    with pytest.raises(Divergence, match="default_template"):
        run_all(list(pool_templates_sweep()), connection, "lifecycle")
    assert _defaults(state) == before and len(state.world.vms) == 4


def test_the_templates_machine_picks_the_pools_templates() -> None:
    state = _state()
    before = _defaults(state)
    machine = AREAS["templates"]
    bound = type("Bound", (machine,), {"connection": connect(state)})
    run_state_machine_as_test(bound, settings=FAST)
    assert _defaults(state) == before


def test_the_templates_machine_finds_a_copy_that_stays_a_default_template() -> None:
    machine = AREAS["templates"]
    bound = type(
        "Bound", (machine,), {"connection": connect(_state("default-template-clone-kept"))}
    )
    with pytest.raises(Divergence, match="default_template"):
        run_state_machine_as_test(bound, settings=replace_settings(max_examples=300, phases=DETECT))
