"""The mutation benchmark's generator: every operator finds sites in the model, and each
mutant is one change that still parses (the benchmark itself is run on demand, not here)."""

from __future__ import annotations

import ast
import random
import subprocess
from collections import Counter

import pytest

from tests.benchmarks.loading import load_benchmark

mutation = load_benchmark("mutation")
MUTANTS = mutation.mutants()


def test_every_operator_finds_sites_in_the_model() -> None:
    kinds = Counter(m.kind for m in MUTANTS)
    assert set(kinds) == set(mutation.OPERATORS)
    assert all(count > 0 for count in kinds.values())


@pytest.mark.parametrize("seed", range(5))
def test_a_mutant_is_one_change_that_still_parses(seed: int) -> None:
    mutant = random.Random(seed).choice(MUTANTS)
    original = ast.unparse(ast.parse((mutation.MODELS / mutant.file).read_text()))
    mutated = mutation.mutated_source(mutant)
    ast.parse(mutated)
    assert mutated != original


class _Served:
    """A stand-in for the served mutant's process."""

    def terminate(self) -> None:
        pass

    def wait(self, timeout: float) -> int:
        return 0


def test_a_run_past_its_limit_is_an_error_and_the_sample_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that does not end in ``RUN_LIMIT`` (a loaded machine) is the mutant's verdict,
    not the end of a two-hour sample."""

    def too_long(*_args: object) -> object:
        raise subprocess.TimeoutExpired(["run"], mutation.RUN_LIMIT)

    monkeypatch.setattr(mutation, "_serve", lambda *_args: _Served())
    monkeypatch.setattr(mutation, "_wait_listening", lambda *_args: True)
    monkeypatch.setattr(mutation, "_run", too_long)
    verdict = mutation.run_mutant(MUTANTS[0], seed=1, budget="none")
    assert verdict.outcome == "error"
    assert f"did not end within {mutation.RUN_LIMIT} s" in verdict.finding
