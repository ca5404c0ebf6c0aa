"""The server's state: the model's world and its event log, behind one lock.

A world and the events that lead to it are committed together: the log records the world's
events and the world becomes current under the one lock every call and every event read takes,
so no client sees a record whose event is not there yet, nor an event of a record not yet
current (a race's event read must be explained by the same order as its record reads).
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from conformance.faults import Fault, Transition, compose, lookup, wire_quirks
from conformance.faults.events import event_fault
from conformance.server.config import ServerConfig, parse_release
from conformance.server.events import EventLog
from models.outcome import Outcome
from models.setup import initial_world
from models.transition import Branch, Call
from models.world import Facts, World

__all__ = ["Lookahead", "ServerState"]

T = TypeVar("T")


@dataclass(frozen=True)
class Lookahead:
    """A call's first branch worked out before the call is applied (a slow call's delay
    depends on whether it succeeds): the world and call it was worked out for, and the branch."""

    world: World
    call: Call
    branch: Branch


class ServerState:
    """Serialises calls into the pure model; every call sees and leaves one consistent world."""

    def __init__(self, world: World, faults: Sequence[Fault] = ()) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._world = world
        self._transition = compose(faults)
        self.quirks = wire_quirks(faults)
        """How this server types values on the wire (xapi's way unless a seeded fault says)."""
        self.faults = tuple(faults)
        self.events = EventLog(world, fault=event_fault(faults), lock=self._lock)
        """The world's events; its lock is the state's, so a commit is one step for its readers."""

    @classmethod
    def from_config(cls, config: ServerConfig) -> ServerState:
        """The starting state for ``config``: hosts, DMC, guest agent, accounts and faults."""
        facts = Facts(guest_has_pv_drivers=config.guest_agent)
        world = initial_world(
            hosts=config.hosts,
            accounts=config.all_accounts(),
            features=config.features(),
            templates=config.templates,
            facts=facts,
            salt=config.salt,
            release=parse_release(config.xapi_version),
        )
        return cls(world, lookup(config.faults))

    @property
    def world(self) -> World:
        """The current world (immutable; safe to read without the lock)."""
        return self._world

    @property
    def transition(self) -> Transition:
        """The model's transition as this server applies it (seeded faults included)."""
        return self._transition

    def update(self, change: Callable[[World], World]) -> World:
        """Replace the world by ``change(world)`` under the lock, recording its events."""
        with self._lock:
            world = change(self._world)
            self._commit(world)
            return world

    def step(self, change: Callable[[World], tuple[World, T]]) -> tuple[T, int]:
        """``change`` under the lock: its world replaces the current one (events recorded);
        returns its value and the state's version after it (for ``wait_after``)."""
        with self._lock:
            world, value = change(self._world)
            self._commit(world)
            return value, self._version

    @property
    def version(self) -> int:
        """How many times the world has changed (read before a ``wait_after``)."""
        return self._version

    def wait_after(self, version: int, timeout: float) -> None:
        """Block until the world changes after ``version`` (or ``timeout`` seconds pass)."""
        with self._changed:
            if self._version == version:
                self._changed.wait(timeout)

    def wake(self) -> None:
        """Wake whoever waits in ``wait_after`` though the world did not change (a call
        waiting out a conflict, told its task was cancelled)."""
        with self._changed:
            self._changed.notify_all()

    def _commit(self, world: World) -> None:
        """Under the lock: record ``world``'s events, then make it current, then wake whoever
        waits for a change or an event (a long poll woken before would read the world before:
        a logout's SESSION_INVALID was lost that way). Event reads take the same lock, so they see both or neither; a
        reader of ``world`` without the lock sees the new world only once its events are there."""
        if world is not self._world:
            self.events.record(world, notify=False)
            self._world = world
            self._version += 1
            self._changed.notify_all()
            self.events.notify()

    def look_ahead(self, method: str, params: tuple[object, ...]) -> Lookahead:
        """The branch ``call`` would take now, without applying it."""
        world, call = self._world, Call(method, params, _now())
        return Lookahead(world, call, self._transition(world, call)[0])

    def call(
        self, method: str, params: tuple[object, ...], ahead: Lookahead | None = None
    ) -> Outcome:
        """Apply one call; when the model offers several branches, the first one is taken.

        ``ahead``, a lookahead of this call, is taken as it is while the world and the clock's
        second are still those it was worked out for (the model is a pure function of them)."""
        call = Call(method, params, _now())
        with self._lock:
            if ahead is not None and ahead.world is self._world and ahead.call == call:
                branch = ahead.branch
            else:
                branch = self._transition(self._world, call)[0]
            self._commit(branch.world)
        return branch.outcome


def _now() -> datetime.datetime:
    """The server's clock as the model reads it: UTC, whole seconds."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)
