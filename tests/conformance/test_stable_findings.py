"""One fault, one finding, one id whatever the seed: a handful of seeded faults, in-process.

Each fault's area machine surveys the faulty embedded server under two seeds (different
examples, so different methods, VMs and states show the fault); both runs give the same finding
ids, and the second, with the first as its baseline, has nothing new: ``--baseline`` exits 0.
The honest server gives both seeds nothing. The full table, every fault through the command
line, is ``benchmarks/stable_findings.py`` (docs/survey.md).
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import HealthCheck, Phase, settings

from conformance.areas.machines import AREAS
from conformance.engine.harness import Connection
from conformance.faults.catalogue import lookup
from conformance.runner.budget import run_machine
from conformance.runner.results import Part, RunFacts, divergence_record, merge_parts
from conformance.runner.survey import Survey
from conformance.server.state import ServerState
from reports import RunSummary, with_findings
from tests.conformance.test_harness import _server, connect

pytestmark = pytest.mark.slow

SEEDS = (12, 13)
FAULTS = {
    ("start-fails",): "lifecycle",
    ("wrong-error-param",): "lifecycle",
    ("stale-record",): "fields",
    ("start-fails", "wrong-error-param"): "lifecycle",
}
"""Faults seeded together, and the area whose machine shows them: one finding each."""


def _explore(area: str) -> settings:
    """A small survey's sizes: enough examples that each seed shows the fault its own way."""
    return settings(
        max_examples=12,
        stateful_step_count=min(10, AREAS[area].max_steps),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )


def _surveyed(faults: tuple[str, ...], area: str, seed: int) -> RunSummary:
    """``area``'s machine surveying a server with ``faults`` under ``seed``, as a run's summary
    (its findings grouped as the run groups them; the shrinking that follows leaves ids be)."""
    connection: Connection = connect(ServerState(_server().world, lookup(faults)))
    connection.survey = True
    survey = Survey(connection)
    connection.surveyor = survey
    name = f"test_area[{area}]"
    run_machine(survey.machine(AREAS[area]), connection, _explore(area), None, name, seed)
    part = Part(examples=connection.tally.examples, steps=connection.tally.steps)
    part.divergences = [divergence_record(d) for d in connection.tally.divergences]
    facts = RunFacts(
        "embedded", "xmlrpc", "ci", seed, "exact", datetime.datetime.now(datetime.UTC), "test"
    )
    return merge_parts([part], facts)


def _ids(s: RunSummary) -> set[str]:
    return {f.id for f in s.findings}


@pytest.mark.parametrize("faults", sorted(FAULTS), ids="+".join)
def test_a_fault_has_the_same_finding_ids_under_two_seeds_and_its_baseline_holds(
    faults: tuple[str, ...],
) -> None:
    first, second = (_surveyed(faults, FAULTS[faults], seed) for seed in SEEDS)
    assert len(_ids(first)) == len(faults) and _ids(first) == _ids(second)
    assert {d.params for d in first.divergences} != {d.params for d in second.divergences}
    against = with_findings(second, first, "first/summary.json")
    assert against.new_findings == () and against.fixed == ()


@pytest.mark.parametrize("area", sorted(set(FAULTS.values())))
def test_the_honest_server_gives_each_seed_nothing(area: str) -> None:
    assert all(_surveyed((), area, seed).findings == () for seed in SEEDS)
