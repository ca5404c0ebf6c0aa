"""A survey goes on past divergences, blames each on its cause and shrinks each finding once.

In-process (the embedded server's WSGI app, no socket); each point shown both ways: the honest
server gives nothing, a server with a seeded fault gives the finding that names it.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, multiple, rule

from conformance.areas.events import EventWatch
from conformance.areas.machines import AREAS, EventsMachine
from conformance.areas.strategies import vm_record
from conformance.engine.harness import Connection, Harness
from conformance.faults.catalogue import lookup
from conformance.judge.divergence import Desynced, Divergence, DivergenceInfo
from conformance.races.concurrency import Race, RaceCall
from conformance.runner.results import divergence_record
from conformance.runner.survey import Survey, difference_key, survey_machine, surveyed
from conformance.server.state import ServerState
from models.outcome import Failure, Success
from reports import DivergenceRecord, OutcomeRecord, group_findings
from reports.findings import finding_id
from tests.conformance.gated import run_overlapping
from tests.conformance.test_concurrency import _racy
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


@pytest.mark.parametrize("fault", ["lost-async-error", None])
def test_a_copy_the_model_never_made_joins_no_bundle(fault: str | None) -> None:
    """Surveyed on past a divergence, an Async clone of a running VM that the faulty server
    answers with success (its task's result ``''``) gives the area no VM to act on later; on
    the honest server the clone fails and gives none either, and a halted VM's clone does."""
    connection = _surveying(*([fault] if fault else []))
    connection.surveyor = Survey(connection)
    machine = AREAS["async"](connection)
    vm = machine.first_vm(vm_record(connection.run_id))
    machine.async_lifecycle(vm, "start", False)
    assert machine.async_copy(vm, "clone") == multiple()
    assert len(connection.tally.divergences) == (1 if fault else 0)
    machine.async_lifecycle(vm, "hard_shutdown", False)
    made = machine.async_copy(vm, "clone")
    assert isinstance(made, str) and made in machine.harness.world.vms
    machine.teardown()


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


# ---- one fault, one finding, one id: races ---------------------------------------------------

Lanes = tuple[tuple[tuple[str, tuple[object, ...], bool], ...], ...]
TWO_STARTS: Lanes = ((("VM.start", (False, False), False),), (("VM.start", (False, False), True),))
TWO_SHUTDOWNS: Lanes = ((("VM.hard_shutdown", (), False),), (("VM.hard_shutdown", (), True),))


def _raced(
    connection: Connection, lanes: Lanes = TWO_STARTS, *, running: bool = False
) -> list[DivergenceInfo]:
    """``lanes`` on a fresh VM (started first when ``running``), surveyed: the races noted
    (on a gated server, the lanes held in flight together, whatever the machine's load)."""
    connection.survey = True
    with contextlib.suppress(Divergence), surveyed(connection):
        h = Harness(connection, "concurrency")
        vm = new_vm(h)
        if running:
            h.call("VM.start", vm, False, False)
        race = Race(tuple(tuple(RaceCall(m, (vm, *a), s) for m, a, s in lane) for lane in lanes))
        with contextlib.suppress(Desynced):
            run_overlapping(h, race, [h.session] * len(lanes))
        h.teardown()
    return [d for d in connection.tally.divergences if d.kind == "race"]


def _ids(divergences: list[DivergenceInfo]) -> set[str]:
    return {f.id for f in group_findings([divergence_record(d) for d in divergences])}


def test_a_race_on_the_honest_server_notes_nothing() -> None:
    connection = _surveying()
    assert _raced(connection) == [] and connection.tally.divergences == []


def test_a_race_showing_a_sequential_fault_has_that_faults_id_whatever_its_calls() -> None:
    """wrong-error-param: the hard_shutdown that loses the race answers VM_BAD_POWER_STATE with
    ';'. The race's finding is the sequential one's, though the sequential divergence was seen
    in another method (which methods a run sees refused depends on its seed)."""
    (race,) = _raced(_surveying("wrong-error-param"), TWO_SHUTDOWNS, running=True)
    sequential = _surveying("wrong-error-param")
    with contextlib.suppress(Divergence), surveyed(sequential):
        h = Harness(sequential, "lifecycle")
        h.call("VM.hard_reboot", new_vm(h))  # refused: the VM is Halted
        h.finish()
    (reboot,) = sequential.tally.divergences
    assert reboot.cause == "VM.hard_reboot"
    assert _ids([race]) == _ids([reboot]) == _ids([reboot, race])
    (finding,) = group_findings([divergence_record(d) for d in (reboot, race)])
    assert finding.seen_under_concurrency and finding.count == 2


def test_a_race_no_sequential_fault_explains_has_an_id_from_its_difference_alone() -> None:
    """concurrent-starts-both-succeed: a race fault; its id is the same on every run."""
    first = _raced(_racy("concurrent-starts-both-succeed"))
    again = _raced(_racy("concurrent-starts-both-succeed"))
    assert first and _ids(first) == _ids(again)
    (finding,) = group_findings([divergence_record(d) for d in first])
    assert finding.seen_under_concurrency
    assert "accepts calls xapi refuses with VM_BAD_POWER_STATE" in finding.title


def test_each_difference_is_shrunk_once_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A later test showing a difference an earlier one shrank keeps its first example: on a
    faulty server nearly every test shows the same few, and shrinking them in each test took
    most of a run."""
    shrinking: list[str] = []

    def spied(_survey: Survey, _machine: object, _base: object, key: str, *_: object) -> None:
        shrinking.append(key)

    monkeypatch.setattr(Survey, "_shrink_one", spied)
    connection = _surveying("start-fails")
    machine = AREAS["lifecycle"]
    for _test in ("first", "second"):
        survey = Survey(connection)
        connection.surveyor = survey
        h = Harness(connection, "lifecycle")
        h.call("VM.start", new_vm(h), False, False)
        h.teardown()
        survey.examples = dict.fromkeys(survey.first, b"choices")
        (kept,) = survey.shrink(machine, FAST, None)
        assert kept.info is next(iter(survey.first.values()))
    assert shrinking == [difference_key(kept.info)]


def _turning(shown: DivergenceInfo | None, later: DivergenceInfo | None) -> type:
    """A machine of one race an example whose turn is decided by how often it ran while its
    difference was being shrunk, as a real race's is by thread timing: exploration and the
    first replay show ``shown``, every later run ``later`` (None: the race is explained)."""
    replays: list[int] = []

    class Turning(RuleBasedStateMachine):
        def __init__(self, connection: Connection) -> None:
            super().__init__()
            self.connection = connection
            self.harness = Harness(connection, "concurrency")

        @rule()
        def race(self) -> None:
            survey = self.connection.surveyor
            if isinstance(survey, Survey) and survey.focus is not None:
                replays.append(1)
            info = shown if len(replays) <= 1 else later
            if info is not None:
                self.harness.diverged(info)

        def teardown(self) -> None:
            self.harness.teardown()

    return Turning


@pytest.fixture(scope="module")
def two_races() -> tuple[DivergenceInfo, DivergenceInfo]:
    """Two race divergences of different differences."""
    (both_started,) = _raced(_racy("concurrent-starts-both-succeed"))
    (wrong_param,) = _raced(_surveying("wrong-error-param"), TWO_SHUTDOWNS, running=True)
    assert difference_key(both_started) != difference_key(wrong_param)
    return both_started, wrong_param


@pytest.mark.parametrize("later", ["same", "other", "explained"])
def test_a_race_that_takes_another_turn_when_replayed_is_still_its_one_finding(
    later: str, two_races: tuple[DivergenceInfo, DivergenceInfo]
) -> None:
    """Hypothesis runs a shrunk example once more to report it; a race that then takes another
    turn (another difference, which ends the example as an unsatisfied assumption) is flaky to
    it. The finding is the difference exploration saw, once, never an error of the run."""
    shown, other = two_races
    turns = {"same": shown, "other": other, "explained": None}
    connection = _surveying()
    connection.survey = True
    machine = _turning(shown, turns[later])
    explore = settings(FAST, max_examples=2, stateful_step_count=1)
    with pytest.raises(Divergence) as raised:
        survey_machine(machine, explore, None, "test_area[concurrency-0]", connection)
    assert difference_key(raised.value.info) == difference_key(shown)
    assert _ids([*connection.tally.divergences, raised.value.info]) == _ids([shown])


def test_a_race_that_is_always_explained_gives_a_survey_nothing() -> None:
    connection = _surveying()
    connection.survey = True
    machine = _turning(None, None)
    explore = settings(FAST, max_examples=2, stateful_step_count=1)
    survey_machine(machine, explore, None, "test_area[concurrency-0]", connection)
    assert connection.tally.divergences == []


# ---- one fault, one finding, one id: the event stream -----------------------------------------


def _watched(connection: Connection, step: str) -> list[DivergenceInfo]:
    """The events area's machine, driven by hand: a VM made, then ``step`` on it (a rename, a
    start), each followed by the area's invariant (the records, then the event poll)."""
    machine = EventsMachine(connection)
    with contextlib.suppress(Divergence), surveyed(connection):
        with contextlib.suppress(Desynced):
            vm = str(machine._create(vm_record(connection.run_id)))
            machine.events_agree()
            if step == "rename":
                machine.rename(vm, "renamed")
            else:
                machine.lifecycle(vm, "start", False)
            machine.events_agree()
        machine.teardown()
    return connection.tally.divergences


def test_a_stale_setter_is_one_finding_in_the_event_stream_too() -> None:
    """stale-record: the rename writes nothing, so the target owes no event; the events area
    blames the setter for the stale name, as every other area does, and nothing else."""
    assert _watched(_surveying(), "rename") == []
    (finding,) = group_findings(
        [divergence_record(d) for d in _watched(_surveying("stale-record"), "rename")]
    )
    assert finding.cause == "VM.set_name_label"
    assert finding.id == finding_id("field:name_label")


def test_an_event_fault_on_a_server_whose_records_are_right_stands_alone() -> None:
    """event-no-mod-on-power-change: the records are xapi's, the event stream misses the mod;
    the finding is the stream's, blamed on the start, its id from the kind alone."""
    assert _watched(_surveying(), "start") == []
    noted = _watched(_surveying("event-no-mod-on-power-change"), "start")
    (finding,) = group_findings([divergence_record(d) for d in noted])
    assert finding.id == finding_id("events:missing-mod")
    assert finding.cause == "VM.start" and finding.methods == ("event.from",)


def test_an_event_divergence_a_field_finding_explains_folds_into_it() -> None:
    """A missing mod after the call a field's finding blames is that finding again ("also
    seen in the event stream"); after another call it stands alone."""
    connection = _surveying("stale-record")
    with contextlib.suppress(Divergence), surveyed(connection):
        h = Harness(connection, "events")
        vm = new_vm(h)
        watch = EventWatch(h)
        h.call("VM.set_name_label", vm, "renamed")
        with contextlib.suppress(Desynced):
            watch.poll()  # before the records are read: the mod the model expects is missing
        h.check_state()
        h.finish()
    records = [divergence_record(d) for d in connection.tally.divergences]
    assert {r.method for r in records} == {"event.from", "VM.get_name_label"}
    (finding,) = group_findings(records)
    assert finding.id == finding_id("field:name_label") and finding.seen_in_events
    elsewhere = [replace(r, cause="VM.start") if r.method == "event.from" else r for r in records]
    assert {f.id for f in group_findings(elsewhere)} == {
        finding_id("field:name_label"),
        finding_id("events:missing-mod"),
    }


# ---- one fault, one finding: a message refused whatever the state ----------------------------


def _refused_start() -> DivergenceRecord:
    """start-fails: VM.start of a Halted VM answered NO_HOSTS_AVAILABLE, as a report records it."""
    connection = _surveying("start-fails")
    with contextlib.suppress(Divergence), surveyed(connection):
        h = Harness(connection, "lifecycle")
        h.call("VM.start", new_vm(h), False, False)
        h.finish()
    (refused,) = connection.tally.divergences
    return divergence_record(refused)


def _refused_instead_of(record: DivergenceRecord, *error: str, method: str) -> DivergenceRecord:
    return replace(
        record, method=method, cause=method, expected=(OutcomeRecord(False, None, error),)
    )


def test_a_start_that_always_fails_is_one_finding_whatever_xapi_answers_instead() -> None:
    """start-fails also answers NO_HOSTS_AVAILABLE where xapi refuses first: an Async.VM.start
    of a snapshot (VM_IS_SNAPSHOT), a start raced with the VM's destroy (HANDLE_INVALID):
    xapi checks the handle and the operation before placement, a server that does not start
    VMs checks nothing. One fault, one finding."""
    refused = _refused_start()
    snapshot = _refused_instead_of(
        refused, "VM_IS_SNAPSHOT", "vm1", "start", method="Async.VM.start"
    )
    gone = _refused_instead_of(refused, "HANDLE_INVALID", "VM", "vm1", method="VM.start")
    (finding,) = group_findings([refused, snapshot, gone])
    assert finding.id == finding_id("refuses:NO_HOSTS_AVAILABLE") and finding.count == 3


def test_a_wrong_code_of_a_message_never_refused_where_xapi_accepts_stands_alone() -> None:
    """The same wrong code from another message (its start works): a fault of its own."""
    refused = _refused_start()
    other = _refused_instead_of(
        refused, "VM_BAD_POWER_STATE", "vm1", "halted", "running", method="VM.pause"
    )
    assert {f.id for f in group_findings([refused, other])} == {
        finding_id("refuses:NO_HOSTS_AVAILABLE"),
        finding_id("code:VM_BAD_POWER_STATE:NO_HOSTS_AVAILABLE"),
    }
