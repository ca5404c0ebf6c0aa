"""The mutation benchmark's generator: every operator finds sites in the model, and each
mutant is one change that still parses (the benchmark itself is run on demand, not here)."""

from __future__ import annotations

import ast
import random
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
