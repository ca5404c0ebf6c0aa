"""The embedded server commits a world and its events as one: no reader sees a record whose
event is not there yet, nor an event of a world not yet current (a race's event read and its
record reads are explained by one order only if so)."""

from __future__ import annotations

import threading

from conformance.areas.strategies import vm_record
from conformance.faults.events import EventFault
from conformance.server.state import ServerState
from models.events import Batch, Change, EventHistory
from models.outcome import Success
from models.world import World
from tests.conformance.test_harness import PASSWORD, _server


def test_a_world_and_its_events_are_committed_as_one() -> None:
    """Inside the commit of a VM.create (the log recording its events), the new world is not
    yet current, and a reader of events started then sees, once it may read, the events and
    the world together."""
    during: list[World] = []
    read: list[tuple[Batch, World]] = []
    readers: list[threading.Thread] = []

    def reader() -> None:
        batch = state.events.since(0, {"vm"})  # waits for the commit's lock
        read.append((batch, state.world))

    def recorded(
        _before: EventHistory, after: EventHistory, found: tuple[Change, ...]
    ) -> EventHistory:
        if any(c.key[0] == "vm" and c.operation == "add" for c in found):
            during.append(state.world)
            readers.append(threading.Thread(target=reader))
            readers[-1].start()
        return after

    state: ServerState = _server(faults=(EventFault(recorded=recorded),))  # type: ignore[arg-type]
    login = state.call("session.login_with_password", ("root", PASSWORD))
    assert isinstance(login, Success)
    made = state.call("VM.create", (login.value, vm_record("commit")))
    assert isinstance(made, Success)
    for thread in readers:
        thread.join()
    vm = str(made.value)
    assert [vm in w.vms for w in during] == [False]  # not current before its events are there
    [(batch, world)] = read
    assert vm in world.vms
    assert ("vm", vm, "add") in {(e.cls, e.ref, e.operation) for e in batch.events}


def test_event_waiters_are_woken_once_the_world_is_current() -> None:
    """A parked long poll is woken by the log's listeners and then reads the world (is its
    session alive?): woken before the world is current, it reads the world before, sleeps
    again and misses a logout's SESSION_INVALID."""
    state = _server()
    seen: list[World] = []
    state.events.add_listener(lambda: seen.append(state.world))
    login = state.call("session.login_with_password", ("root", PASSWORD))
    assert isinstance(login, Success)
    assert seen != [] and seen[-1] is state.world
    seen.clear()
    assert isinstance(state.call("session.logout", (login.value,)), Success)
    assert seen != [] and seen[-1] is state.world
