"""The run's work in pieces finer than an area, so that parallel workers share it evenly.

Every area machine's examples are cut into chunks of a few examples, each chunk a Hypothesis
run of its own with a seed drawn from the run's seed and the chunk's name; every sweep's cells
are cut into slices. The pieces depend on the profile and the seed only, never on the number
of workers: one worker and eight run the very same examples and cells, and so find the same
divergences with the same reproducers. A piece runs whole in one worker, on that worker's
sessions and VMs (the concurrency area's races stay inside it).

Each piece carries an estimate of what it costs on a pool (``COST``), used to hand the
longest pieces out first (so that no worker is left with a long one at the end) and, under a
time budget, to share the time out.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from types import MappingProxyType
from typing import Any

from conformance.areas.machines import AREAS
from conformance.areas.roles_sweep import roles_sweep
from conformance.areas.sweeps import blocked_sweep, fields_sweep, lifecycle_sweep, memory_sweep
from conformance.runner.profiles import area_examples, profile_named

__all__ = [
    "COST",
    "ONE_PIECE",
    "SWEEPS",
    "Piece",
    "area_pieces",
    "budget_order",
    "longest_first",
    "piece_seed",
    "sweep_cells",
    "sweep_pieces",
]

SWEEPS: Mapping[str, Callable[[], Iterator[Any]]] = MappingProxyType(
    {
        "test_lifecycle_sweep": lifecycle_sweep,
        "test_operations_blocked_sweep": blocked_sweep,
        "test_memory_sweep": memory_sweep,
        "test_fields_sweep": fields_sweep,
        "test_roles_sweep": roles_sweep,
    }
)
"""Each sweep test and the cells it runs, in order."""

SWEEP_SLICE: Mapping[str, int] = MappingProxyType(
    {
        "test_lifecycle_sweep": 11,
        "test_operations_blocked_sweep": 17,
        "test_memory_sweep": 10,
        "test_fields_sweep": 2,
        "test_roles_sweep": 8,
    }
)
"""Cells per slice of each sweep: a slice costs about what a chunk of area examples does."""

COST: Mapping[str, float] = MappingProxyType(
    {
        "lifecycle": 130.0,
        "memory": 85.0,
        "operations": 70.0,
        "templates": 80.0,
        "fields": 70.0,
        "rpc": 75.0,
        "roles": 105.0,
        "async": 105.0,
        "concurrency": 125.0,
        "events": 90.0,
        "test_lifecycle_sweep": 26.0,
        "test_operations_blocked_sweep": 27.0,
        "test_memory_sweep": 16.0,
        "test_fields_sweep": 20.0,
        "test_roles_sweep": 10.0,
    }
)
"""Estimated seconds of one example of an area at 25 steps, or of one cell of a sweep, in a
``ci`` run with 8 workers against ``serve --latency xapi --latency-scale 0.05`` on a loaded
2-core machine (each test's time over its examples or cells, divided by 0.05): the calls'
latency and the suite's own time together, as they share out a run's time. ``events``, from
8-worker runs at × 0.1: its chunks took about as long as the operations area's (an idle step
polls with event.from's timeout); estimated at the 10 of an unknown area, they went last and
held the run's end for a minute and a half."""


@dataclass(frozen=True)
class Piece:
    """One test of the run: a chunk of an area's examples or a slice of a sweep's cells."""

    family: str
    """The area (``lifecycle``) or the sweep test (``test_lifecycle_sweep``)."""
    index: int
    start: int
    size: int
    """Examples of the chunk (for an area), or cells ``start`` to ``start + size``."""
    cost: float

    @property
    def id(self) -> str:
        """The test id's parameter: ``lifecycle-0``, or ``0`` for a sweep slice."""
        return f"{self.family}-{self.index}" if self.is_area else str(self.index)

    @property
    def is_area(self) -> bool:
        """A chunk of an area machine's examples (not a slice of a sweep)."""
        return self.family in AREAS


def piece_seed(run_seed: int, piece: Piece) -> int:
    """The Hypothesis seed of an area chunk: the run's seed and the chunk's name, hashed."""
    digest = hashlib.sha256(f"{run_seed}/{piece.family}/{piece.index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _sizes(total: int, per_piece: int) -> list[int]:
    """``total`` cut into near-equal parts of about ``per_piece`` (the larger ones first)."""
    parts = max(1, math.ceil(total / max(1, per_piece)))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _pieces(family: str, total: int, per_piece: int, unit_cost: float) -> list[Piece]:
    pieces, start = [], 0
    for index, size in enumerate(_sizes(total, per_piece)):
        pieces.append(Piece(family, index, start, size, size * unit_cost))
        start += size
    return pieces


ONE_PIECE = frozenset({"templates"})
"""Areas whose examples act on objects every worker shares: the pool's default templates,
which the templates area clones and copies. One worker's clone in flight is an operation
another worker's model cannot see (its ``assert_operation_valid`` on the template then meets
``OTHER_OPERATION_IN_PROGRESS``, or not, as the workers' timing goes), so the area's examples
run as one piece, in one worker."""


def area_pieces(areas: Iterable[str], profile: str, max_examples: int | None) -> list[Piece]:
    """Every area's chunks of examples: the profile's chunk size (``Profile.chunk``), one
    chunk for the areas of ``ONE_PIECE``."""
    chosen = profile_named(profile)
    steps = chosen.steps
    pieces = []
    for area in areas:
        examples = area_examples(profile, area, max_examples)
        chunk = examples if area in ONE_PIECE else chosen.chunk
        pieces += _pieces(area, examples, chunk, COST.get(area, 10.0) * steps / 25)
    return pieces


def sweep_pieces(name: str) -> list[Piece]:
    """The slices of sweep test ``name``."""
    cells = sum(1 for _ in SWEEPS[name]())
    return _pieces(name, cells, SWEEP_SLICE[name], COST[name])


def sweep_cells(piece: Piece) -> Iterator[Any]:
    """The cells of a sweep slice, in the sweep's order."""
    return islice(SWEEPS[piece.family](), piece.start, piece.start + piece.size)


def longest_first(costs: Mapping[str, float]) -> list[str]:
    """Test names by estimated cost, the longest first (ties in the given order): the order
    in which workers taking the next test as they free up end closest together."""
    given = {name: position for position, name in enumerate(costs)}
    return sorted(costs, key=lambda name: (-costs[name], given[name]))


def budget_order(pieces: Mapping[str, Piece]) -> list[str]:
    """Test names in the order that spends a short budget well: the first piece of every
    sweep (cells not yet judged), then of every area, then every second piece, and so on, so
    that every area starts however short the budget."""
    given = {name: position for position, name in enumerate(pieces)}

    def rank(name: str) -> tuple[int, bool, int]:
        return (pieces[name].index, pieces[name].is_area, given[name])

    return sorted(pieces, key=rank)
