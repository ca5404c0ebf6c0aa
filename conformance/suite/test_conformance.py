"""The conformance suite: one test per area machine, plus the deterministic sweeps.

Select areas with ``-k`` (``-k lifecycle``, ``-k "memory or rpc"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import allure
import pytest
from hypothesis import settings

from conformance.areas.machines import AREAS
from conformance.areas.sweeps import (
    blocked_sweep,
    fields_sweep,
    lifecycle_sweep,
    memory_sweep,
    run_all,
)
from conformance.engine.harness import Connection
from conformance.judge.divergence import Divergence
from conformance.runner.budget import Budget, run_cells, run_machine
from conformance.runner.profiles import area_examples


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Attach a divergence's reproducer and its expected/actual answers to the Allure result."""
    try:
        yield
    except Divergence as divergence:
        allure.attach(
            divergence.info.reproducer,
            name="reproducer.py",
            attachment_type=allure.attachment_type.TEXT,
        )
        raise


@pytest.mark.parametrize("area", list(AREAS))
def test_area(
    area: str,
    xapi_connection: Connection,
    xapi_settings: settings,
    xapi_budget: Budget | None,
    request: pytest.FixtureRequest,
) -> None:
    """Random call sequences of one area, compared step by step, shrunk on divergence."""
    machine = AREAS[area]
    bound = type(f"{machine.__name__}Bound", (machine,), {"connection": xapi_connection})
    steps = min(xapi_settings.stateful_step_count, machine.max_steps)
    option = request.config.getoption
    examples = area_examples(option("xapi_profile"), area, option("xapi_max_examples"))
    with reported():
        run_machine(
            bound,
            settings(xapi_settings, stateful_step_count=steps, max_examples=examples),
            xapi_budget,
            request.node.name,
        )


def test_lifecycle_sweep(
    xapi_connection: Connection, xapi_budget: Budget | None, request: pytest.FixtureRequest
) -> None:
    """Every lifecycle message in every reachable power state and VM kind."""
    cells = run_cells(lifecycle_sweep(), xapi_budget, request.node.name)
    with reported():
        run_all(cells, xapi_connection, "lifecycle")


def test_operations_blocked_sweep(
    xapi_connection: Connection, xapi_budget: Budget | None, request: pytest.FixtureRequest
) -> None:
    """Every blockable message, blocked first, in every power state."""
    cells = run_cells(blocked_sweep(), xapi_budget, request.node.name)
    with reported():
        run_all(cells, xapi_connection, "operations")


def test_memory_sweep(
    xapi_connection: Connection, xapi_budget: Budget | None, request: pytest.FixtureRequest
) -> None:
    """Memory setters with ordered, disordered and pinned tuples, Halted and Running."""
    cells = run_cells(memory_sweep(), xapi_budget, request.node.name)
    with reported():
        run_all(cells, xapi_connection, "memory")


def test_fields_sweep(
    xapi_connection: Connection, xapi_budget: Budget | None, request: pytest.FixtureRequest
) -> None:
    """Every field getter in every reachable power state and VM kind."""
    cells = run_cells(fields_sweep(), xapi_budget, request.node.name)
    with reported():
        run_all(cells, xapi_connection, "fields")
