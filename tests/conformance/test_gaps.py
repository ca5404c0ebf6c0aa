"""The gap cases aim at what the run left: every non-lifecycle message in every reachable
(power state, VM kind), both ways (the honest server judges them all, a faulty one is found)."""

from __future__ import annotations

import pytest

from conformance.areas.gaps import GAP_MESSAGES, IMPORTS, POOL_QUERIES, gap_cases, unjudged
from conformance.areas.sweeps import run_all
from conformance.judge.divergence import Divergence
from conformance.runner.survey import surveyed
from tests.conformance.test_harness import connect
from tests.conformance.test_survey import _surveying


def test_the_honest_server_is_judged_on_every_cell_the_gaps_aim_at() -> None:
    connection = connect()
    assert unjudged(connection.tally.coverage)
    run_all(gap_cases(connection), connection, "fields")
    assert unjudged(connection.tally.coverage) == {}
    sent = {*POOL_QUERIES, *(method for method, _ in IMPORTS)}
    assert all(connection.tally.messages[m] for m in sent)
    assert connection.tally.divergences == []


def test_nothing_is_aimed_at_once_every_cell_is_judged() -> None:
    connection = connect()
    run_all(gap_cases(connection), connection, "fields")
    assert list(gap_cases(connection)) == []


def test_a_faulty_setter_is_found_by_the_gap_cases() -> None:
    connection = _surveying("stale-record")
    with pytest.raises(Divergence) as raised, surveyed(connection):
        run_all(gap_cases(connection), connection, "fields")
    assert raised.value.info.cause == "VM.set_name_label"
    assert "VM.set_name_label" in GAP_MESSAGES
