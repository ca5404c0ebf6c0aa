"""The run's work in pieces: chunks of examples and slices of cells, the same for any number of
workers, so that one worker and several run the very same examples."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conformance.areas.machines import AREAS
from conformance.errors import UsageError
from conformance.runner.profiles import PROFILES, area_examples
from conformance.runner.split import (
    COST,
    ONE_PIECE,
    SWEEPS,
    Piece,
    area_pieces,
    budget_order,
    longest_first,
    piece_seed,
    sweep_cells,
    sweep_pieces,
)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_an_areas_chunks_run_exactly_its_examples(profile: str) -> None:
    pieces = area_pieces(AREAS, profile, None)
    examples = Counter[str]()
    for piece in pieces:
        examples[piece.family] += piece.size
        assert 1 <= piece.size <= PROFILES[profile].chunk or piece.family in ONE_PIECE
    assert examples == {area: area_examples(profile, area, None) for area in AREAS}
    assert len({piece.id for piece in pieces}) == len(pieces)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_the_areas_that_act_on_shared_templates_run_in_one_piece(profile: str) -> None:
    """Two workers cloning the same template would each meet the other's operation, which
    neither model sees: the templates area is one piece, whatever the profile."""
    pieces = [p for p in area_pieces(AREAS, profile, None) if p.family in ONE_PIECE]
    assert {"templates"} == ONE_PIECE and len(pieces) == 1
    assert pieces[0].size == area_examples(profile, "templates", None)


def test_every_area_and_sweep_has_its_own_cost_estimate() -> None:
    """An area left out of ``COST`` would be taken for a short one and handed out last, where
    its chunks hold the run's end (as the events area's did)."""
    assert set(COST) == set(AREAS) | set(SWEEPS)


def test_max_examples_chunks_every_area_alike() -> None:
    pieces = area_pieces(["rpc"], "ci", 25)
    assert [p.size for p in pieces] == [9, 8, 8]
    assert [p.id for p in pieces] == ["rpc-0", "rpc-1", "rpc-2"]


def test_an_unknown_profile_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown profile 'fast'"):
        area_pieces(AREAS, "fast", None)


@pytest.mark.parametrize("name", list(SWEEPS))
def test_a_sweeps_slices_run_every_cell_once_in_order(name: str) -> None:
    cells = [cell for piece in sweep_pieces(name) for cell in sweep_cells(piece)]
    expected = list(SWEEPS[name]())
    assert len(cells) == len(expected)
    assert [_same(a, b) for a, b in zip(cells, expected, strict=True)] == [True] * len(cells)


def _same(cell: Any, other: Any) -> bool:
    """Sweep cells are dataclasses or closures: equal, or made by the same code from the same
    values (a ``functools.partial`` compared by its function and arguments)."""
    if cell == other:
        return True
    if isinstance(cell, functools.partial) and isinstance(other, functools.partial):
        return (cell.func, cell.args, cell.keywords) == (other.func, other.args, other.keywords)
    if not hasattr(cell, "__code__") or cell.__code__ != getattr(other, "__code__", None):
        return False
    values = [c.cell_contents for c in cell.__closure__ or ()]
    others = [c.cell_contents for c in other.__closure__ or ()]
    return len(values) == len(others) and all(map(_same, values, others))


def test_each_chunk_has_its_own_seed_drawn_from_the_runs() -> None:
    pieces = area_pieces(AREAS, "ci", None)
    seeds = {piece_seed(1, piece) for piece in pieces}
    assert len(seeds) == len(pieces)
    assert [piece_seed(1, p) for p in pieces] == [piece_seed(1, p) for p in pieces]
    assert seeds.isdisjoint(piece_seed(2, p) for p in pieces)


def _named(pieces: list[Piece]) -> dict[str, Piece]:
    return {f"{piece.family}[{piece.id}]": piece for piece in pieces}


def test_a_budget_starts_every_sweep_and_area_before_any_second_piece() -> None:
    pieces = _named(
        area_pieces(AREAS, "ci", None) + [p for name in SWEEPS for p in sweep_pieces(name)]
    )
    order = [pieces[name] for name in budget_order(pieces)]
    families = {piece.family for piece in pieces.values()}
    first_round = order[: len(families)]
    assert {piece.family for piece in first_round} == families
    assert [piece.is_area for piece in first_round] == sorted(p.is_area for p in first_round)
    assert [piece.index for piece in order] == sorted(piece.index for piece in order)


def test_without_a_budget_the_longest_pieces_go_first() -> None:
    assert longest_first({"a": 1.0, "b": 5.0, "c": 1.0, "d": 3.0}) == ["b", "d", "a", "c"]


# ---- end to end: one process and two workers run the same examples ----------------------------

END_TO_END = ("--xapi-profile", "dev", "--xapi-seed", "11", "--xapi-max-examples", "2")
"""Every area but concurrency (which overlapping call goes first is up to the threads, and
what its example does next follows what the race did), two examples each: the seed fixes an
area's examples however many it runs. Each area is one chunk under ``dev`` (ten examples a
chunk) with two examples as with more: the same pieces and seeds are split between the
workers."""


def _suite(
    report_dir: Path, workers: str
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    """The suite through its pytest plugin, as a user runs it without the command line (from
    another directory): its summary.json and the process's output."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "conformance.suite", "-q", "-n", workers,
         "-p", "no:cacheprovider", "-k", "test_area and not concurrency", *END_TO_END,
         "--xapi-report-dir", str(report_dir)],
        cwd=report_dir.parent, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary: dict[str, Any] = json.loads((report_dir / "summary.json").read_text())
    return summary, result


def _progress_counts(result: subprocess.CompletedProcess[str]) -> list[int]:
    """The examples of each progress line the plugin wrote to the terminal."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("xapi-conformance: ")]
    return [int(line.split()[2].replace(",", "")) for line in lines]


@pytest.mark.slow
def test_one_process_and_two_workers_run_the_same_examples_and_show_progress(
    tmp_path: Path,
) -> None:
    """The same seed repeats a run exactly, whatever the number of workers; pytest captures the
    suite's output, the progress lines still reach the terminal, counting up to the end."""
    runs = {workers: _suite(tmp_path / f"n{workers}", workers) for workers in ("0", "2")}
    alone, shared = (summary for summary, _result in runs.values())
    assert (alone["examples"], alone["steps"]) == (shared["examples"], shared["steps"])
    assert alone["coverage"] == shared["coverage"]
    for workers, (_summary, result) in runs.items():
        examples = _progress_counts(result)
        assert examples and examples == sorted(examples) and examples[-1] > 0, result.stderr
        report_dir = tmp_path / f"n{workers}"
        assert f"xapi-conformance: reports in {report_dir}" in result.stdout
        assert not (report_dir / ".progress").exists()
