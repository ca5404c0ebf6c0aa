"""The coverage space and the release named in reports come from models/ (catalogue data)."""

from __future__ import annotations

from models import catalogue
from models.coverage import (
    CLIENT_CELLS,
    EDGE_CELLS,
    EVENT_CELLS,
    REACHABLE_STATES,
    coverage_cells,
    judged_release,
    vm_messages,
)


def test_every_vm_message_is_counted_and_every_one_acting_on_a_vm_has_every_reachable_cell() -> (
    None
):
    assert len(vm_messages()) == len(catalogue.MESSAGES) == 219
    cells = [c for c in coverage_cells() if c not in (*EVENT_CELLS, *CLIENT_CELLS, *EDGE_CELLS)]
    on_a_vm = {m for m, _, _ in cells}
    assert "VM.start" in on_a_vm and "VM.create" not in on_a_vm and "VM.get_all" not in on_a_vm
    assert len(cells) == len(on_a_vm) * len(REACHABLE_STATES) == len(set(cells))


def test_the_events_of_the_suites_objects_are_cells_too() -> None:
    assert set(EVENT_CELLS) <= set(coverage_cells())
    assert {m for m, _, _ in EVENT_CELLS} == {"event.from", "event.next"}


def test_the_other_classes_messages_and_the_edge_values_are_cells_too() -> None:
    cells = set(coverage_cells())
    assert set(CLIENT_CELLS) <= cells and set(EDGE_CELLS) <= cells
    assert ("task.destroy", "task", "refused") in CLIENT_CELLS
    assert ("values at their edges", "jsonrpc", "text no UTF-8 holds") in EDGE_CELLS


def test_the_release_judged_against_follows_the_pool_master() -> None:
    assert judged_release({"xapi": "24.19", "xapi_build": "24.19.2"}).startswith(
        "xapi 24.19 (XCP-ng"
    )
    assert judged_release({}).startswith("xapi 26.17 (XenServer")
