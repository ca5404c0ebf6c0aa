"""The conformance suite: one test per area machine, plus the deterministic sweeps.

Select areas with ``-k`` (``-k lifecycle``, ``-k "memory or rpc"``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import allure
import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from conformance.divergence import Divergence
from conformance.harness import Connection
from conformance.suite.machines import AREAS
from conformance.suite.sweeps import blocked_sweep, lifecycle_sweep, memory_sweep, run_all


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
def test_area(area: str, xapi_connection: Connection, xapi_settings: settings) -> None:
    """Random call sequences of one area, compared step by step, shrunk on divergence."""
    machine = AREAS[area]
    bound = type(f"{machine.__name__}Bound", (machine,), {"connection": xapi_connection})
    with reported():
        run_state_machine_as_test(bound, settings=xapi_settings)


def test_lifecycle_sweep(xapi_connection: Connection) -> None:
    """Every lifecycle message in every reachable power state and VM kind."""
    with reported():
        run_all(lifecycle_sweep(), xapi_connection, "lifecycle")


def test_operations_blocked_sweep(xapi_connection: Connection) -> None:
    """Every blockable message, blocked first, in every power state."""
    with reported():
        run_all(blocked_sweep(), xapi_connection, "operations")


def test_memory_sweep(xapi_connection: Connection) -> None:
    """Memory setters with ordered, disordered and pinned tuples, Halted and Running."""
    with reported():
        run_all(memory_sweep(), xapi_connection, "memory")
