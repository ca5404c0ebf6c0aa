"""The vocabulary of transitions: a call, its context, and the branches it may take."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from models.errors import XenAPIError, handle_invalid
from models.outcome import Failure, Outcome, Success, Value
from models.world import Record, SessionInfo, World

__all__ = [
    "Branch",
    "Call",
    "Ctx",
    "Handler",
    "Result",
    "as_map",
    "attempt",
    "done",
    "failed",
    "vm_of",
]


@dataclass(frozen=True)
class Call:
    """One XenAPI call as it arrives: wire method name and raw arguments (session first).

    ``now`` is the server's clock, an input like any other so the model stays pure.
    """

    method: str
    args: tuple[object, ...]
    now: datetime.datetime = field(
        default_factory=lambda: datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    )


@dataclass(frozen=True)
class Branch:
    """One acceptable answer and the world that follows it."""

    outcome: Outcome
    world: World


Result = tuple[Branch, ...]


@dataclass(frozen=True)
class Ctx:
    """What a handler sees: the world before the call, the caller, the clock."""

    world: World
    session_ref: str
    session: SessionInfo
    now: datetime.datetime
    wire_name: str


Handler = Callable[[Ctx, tuple[Value, ...]], Result]


def done(world: World, value: Value = "") -> Result:
    """A single successful branch."""
    return (Branch(Success(value), world),)


def failed(world: World, failure: Failure) -> Result:
    """A single failed branch; the world is unchanged by a failure."""
    return (Branch(failure, world),)


def attempt(world: World, body: Callable[[], Result]) -> Result:
    """Run ``body``; a raised XenAPIError becomes a failed branch on ``world``."""
    try:
        return body()
    except XenAPIError as error:
        return failed(world, error.failure())


def vm_of(world: World, ref: Value) -> Record:
    """The record of VM ``ref``, or HANDLE_INVALID ["VM"; ref] as xapi's DB answers a miss."""
    record = world.vms.get(str(ref))
    if record is None:
        raise handle_invalid("VM", str(ref))
    return record


def as_map(value: Value) -> Mapping[str, Value]:
    """``value`` as a map (empty if it is not one)."""
    return value if isinstance(value, Mapping) else {}
