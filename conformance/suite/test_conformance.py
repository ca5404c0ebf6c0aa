"""The conformance suite: the area machines' examples in chunks, the deterministic sweeps'
cells in slices, one test each (``test_area[lifecycle-0]``, ``test_lifecycle_sweep[3]``).

Select areas with ``-k`` (``-k lifecycle``, ``-k "memory or rpc"``).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Iterator

import allure
import pytest
from hypothesis import settings

from conformance.areas.gaps import gap_cases
from conformance.areas.machines import AREAS
from conformance.areas.sweeps import run_all
from conformance.engine.harness import Connection
from conformance.judge.divergence import Divergence
from conformance.runner.budget import Budget, run_cells
from conformance.runner.split import Piece, area_pieces, piece_seed, sweep_cells, sweep_pieces
from conformance.runner.survey import survey_machine, surveyed

SUITE_PACKAGES = ("models", "reports", "conformance")


def load_suite_modules() -> None:
    """Import every module of the suite's packages, in every process, before any example.

    Hypothesis mixes constants from the source of the local modules loaded so far into the
    values it generates: a worker that had loaded fewer of them than a lone process would
    generate other examples from the same seed.
    """
    for name in SUITE_PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)


load_suite_modules()


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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each area's examples in chunks, each sweep's cells in slices (``conformance.runner.split``):
    pieces that any worker may take, the same whatever the number of workers."""
    if "piece" not in metafunc.fixturenames:
        return
    name = metafunc.function.__name__
    if name == "test_area":
        option = metafunc.config.getoption
        pieces = area_pieces(AREAS, option("xapi_profile"), option("xapi_max_examples"))
    else:
        pieces = sweep_pieces(name)
    metafunc.parametrize("piece", pieces, ids=[piece.id for piece in pieces])


def test_area(
    piece: Piece,
    xapi_connection: Connection,
    xapi_settings: settings,
    xapi_budget: Budget | None,
    request: pytest.FixtureRequest,
) -> None:
    """Random call sequences of one area (a chunk of its examples, with its own seed),
    compared step by step, shrunk on divergence."""
    machine = AREAS[piece.family]
    steps = min(xapi_settings.stateful_step_count, machine.max_steps)
    with reported():
        survey_machine(
            machine,
            settings(xapi_settings, stateful_step_count=steps, max_examples=piece.size),
            xapi_budget,
            request.node.name,
            xapi_connection,
            seed=piece_seed(request.config.getoption("xapi_seed"), piece),
        )


def _sweep(
    piece: Piece, connection: Connection, budget: Budget | None, name: str, area: str
) -> None:
    cells = run_cells(sweep_cells(piece), budget, name)
    with reported(), surveyed(connection):
        run_all(cells, connection, area)


def test_lifecycle_sweep(
    piece: Piece,
    xapi_connection: Connection,
    xapi_budget: Budget | None,
    request: pytest.FixtureRequest,
) -> None:
    """Every lifecycle message in every reachable power state and VM kind."""
    _sweep(piece, xapi_connection, xapi_budget, request.node.name, "lifecycle")


def test_operations_blocked_sweep(
    piece: Piece,
    xapi_connection: Connection,
    xapi_budget: Budget | None,
    request: pytest.FixtureRequest,
) -> None:
    """Every blockable message, blocked first, in every power state."""
    _sweep(piece, xapi_connection, xapi_budget, request.node.name, "operations")


def test_memory_sweep(
    piece: Piece,
    xapi_connection: Connection,
    xapi_budget: Budget | None,
    request: pytest.FixtureRequest,
) -> None:
    """Memory setters with ordered, disordered and pinned tuples, Halted and Running."""
    _sweep(piece, xapi_connection, xapi_budget, request.node.name, "memory")


def test_fields_sweep(
    piece: Piece,
    xapi_connection: Connection,
    xapi_budget: Budget | None,
    request: pytest.FixtureRequest,
) -> None:
    """Every field getter in every reachable power state and VM kind."""
    _sweep(piece, xapi_connection, xapi_budget, request.node.name, "fields")


def test_roles_sweep(
    piece: Piece,
    xapi_connection: Connection,
    xapi_budget: Budget | None,
    request: pytest.FixtureRequest,
) -> None:
    """Every role's map-key edits, and its writes to the pool and to tasks it does and does
    not own."""
    _sweep(piece, xapi_connection, xapi_budget, request.node.name, "roles")


def test_fields_unjudged_cells(
    xapi_connection: Connection, xapi_budget: Budget | None, request: pytest.FixtureRequest
) -> None:
    """Every message not yet called in a (power state, VM kind) of this process's run, once
    (the last test of its process: it aims at what the others left)."""
    cells = run_cells(gap_cases(xapi_connection), xapi_budget, request.node.name)
    with reported(), surveyed(xapi_connection):
        run_all(cells, xapi_connection, "fields")
