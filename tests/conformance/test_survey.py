"""A survey goes on past divergences, blames each on its cause and shrinks each finding once.

In-process (the embedded server's WSGI app, no socket); each point shown both ways: the honest
server gives nothing, a server with a seeded fault gives the finding that names it.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from conformance.areas.machines import AREAS
from conformance.engine.harness import Connection, Harness
from conformance.faults.catalogue import lookup
from conformance.judge.divergence import Divergence
from conformance.runner.results import divergence_record
from conformance.runner.survey import Survey, difference_key, survey_machine, surveyed
from conformance.server.state import ServerState
from models.outcome import Failure, Success
from reports import group_findings
from tests.conformance.test_harness import FAST, _server, connect, new_vm


def _surveying(*faults: str) -> Connection:
    honest = _server()
    connection = connect(ServerState(honest.world, lookup(faults)))
    connection.survey = True
    return connection


def _findings(connection: Connection) -> tuple[object, ...]:
    return group_findings([divergence_record(d) for d in connection.tally.divergences])


def test_a_stale_setter_is_noted_blamed_on_the_setter_and_the_example_goes_on() -> None:
    """xapi's VM.set_name_label writes the field (xapi_vm.ml's setters go to the database)."""
    connection = _surveying("stale-record")
    with pytest.raises(Divergence) as raised, surveyed(connection):
        h = Harness(connection, "fields")
        vm = new_vm(h)
        h.call("VM.set_name_label", vm, "renamed")
        h.check_state()
        assert h.call("VM.get_name_label", vm) == Success(h.world.vms[vm]["name_label"])
        assert isinstance(h.call("VM.start", vm, False, False), Success)
        h.finish()
    assert raised.value.info.cause == "VM.set_name_label"
    (finding,) = _findings(connection)
    assert finding.cause == "VM.set_name_label"  # type: ignore[attr-defined]
    assert connection.tally.messages["VM.start"] == 1


def test_the_honest_server_gives_a_survey_nothing() -> None:
    connection = _surveying()
    with surveyed(connection):
        h = Harness(connection, "fields")
        vm = new_vm(h)
        h.call("VM.set_name_label", vm, "renamed")
        h.check_state()
        h.finish()
    assert connection.tally.divergences == []


def test_a_refused_start_leaves_the_state_and_the_example_goes_on() -> None:
    connection = _surveying("start-fails")
    with pytest.raises(Divergence), surveyed(connection):
        h = Harness(connection, "lifecycle")
        vm = new_vm(h)
        assert isinstance(h.call("VM.start", vm, False, False), Failure)
        assert h.world.vms[vm]["power_state"] == "Halted"
        h.call("VM.set_name_label", vm, "still judged")
        h.finish()
    (finding,) = _findings(connection)
    assert finding.cause == "VM.start"  # type: ignore[attr-defined]
    assert not any(d.method == "VM.set_name_label" for d in connection.tally.divergences)


def test_an_accepted_call_the_model_cannot_follow_is_read_back_from_the_target() -> None:
    """unpause-running-accepted: the model refuses, the target answers success; the VM is read
    back from the target (as the importer reads it) and the example continues in step."""
    connection = _surveying("unpause-running-accepted")
    with pytest.raises(Divergence), surveyed(connection):
        h = Harness(connection, "lifecycle")
        vm = new_vm(h)
        h.call("VM.start", vm, False, False)
        assert isinstance(h.call("VM.unpause", vm), Success)
        h.call("VM.hard_shutdown", vm)
        h.finish()
    assert [d.method for d in connection.tally.divergences] == ["VM.unpause"]


def test_without_a_survey_the_first_divergence_ends_the_example() -> None:
    connection = _surveying("stale-record")
    connection.survey = False
    h = Harness(connection, "fields")
    vm = new_vm(h)
    h.call("VM.set_name_label", vm, "renamed")
    with pytest.raises(Divergence):
        h.check_state()
    h.teardown()


def test_a_machine_survey_notes_every_finding_and_shrinks_each_once() -> None:
    connection = _surveying("stale-record", "start-fails")
    machine = AREAS["lifecycle"]
    bound = type("Bound", (machine,), {"connection": connection})
    explore = settings(FAST, max_examples=30, stateful_step_count=12)
    with pytest.raises(Divergence) as raised:
        survey_machine(bound, explore, None, "test_area[lifecycle]", connection)
    found = {f.cause for f in _findings(connection)}  # type: ignore[attr-defined]
    assert found & {"VM.start", "VM.start_on"}
    shrunk = raised.value.info
    assert len(shrunk.calls) <= 3  # create, start (and the record read)


def test_a_survey_keeps_one_divergence_per_difference_method_and_cell() -> None:
    connection = _surveying("start-fails")
    survey = Survey(connection)
    connection.surveyor = survey
    h = Harness(connection, "lifecycle")
    vm = new_vm(h)
    for _ in range(3):
        h.call("VM.start", vm, False, False)
    h.teardown()
    assert len(connection.tally.divergences) == 1
    (key,) = survey.first
    assert key == difference_key(connection.tally.divergences[0])


def test_every_read_showing_a_stale_field_is_the_one_finding_of_its_setter() -> None:
    """A record read, a query returning records, a lookup by the field: one fault, one finding."""
    connection = _surveying("stale-record")
    with pytest.raises(Divergence), surveyed(connection):
        h = Harness(connection, "fields")
        vm = new_vm(h)
        old = str(h.world.vms[vm]["name_label"])
        h.call("VM.set_name_label", vm, "renamed")
        h.call("VM.get_by_name_label", "renamed")
        h.call("VM.get_by_name_label", old)
        h.call("VM.get_all_records")
        h.call("VM.get_record", vm)
        h.call("VM.get_name_label", vm)
        h.finish()
    assert all(d.cause == "VM.set_name_label" for d in connection.tally.divergences)
    (finding,) = _findings(connection)
    assert finding.cause == "VM.set_name_label"  # type: ignore[attr-defined]
