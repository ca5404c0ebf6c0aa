"""A divergence between the model and the target: a test failure with a bug report attached."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from hypothesis.errors import UnsatisfiedAssumption

from models.outcome import Outcome, Value

__all__ = ["Desynced", "Divergence", "DivergenceInfo", "TimedCall"]


@dataclass(frozen=True)
class TimedCall:
    """One call of a race as its session made it: when it was sent and answered (milliseconds
    from the race's start) and the target's answer, in display form."""

    session: int
    """The session that made it, numbered from 1."""
    call: str
    sent_ms: float
    answered_ms: float
    answer: Outcome


@dataclass(frozen=True)
class DivergenceInfo:
    """What diverged. ``params`` and outcomes are in display form (suite refs as vm1, vm2…)."""

    method: str
    params: tuple[Value, ...]
    expected: tuple[Outcome, ...]
    actual: Outcome
    area: str
    kind: str
    message: str
    reproducer: str = ""
    waived: bool = False
    waiver_reason: str = ""
    reason: str = ""
    """Where and how the answer differs (a field, an error parameter, a wire type)."""
    waiver_expires: datetime.date | None = None

    def key(self) -> tuple[object, ...]:
        """What makes two divergences the same report (the reproducer and values aside)."""
        actual_code = getattr(self.actual, "code", "success")
        return (self.area, self.method, self.kind, actual_code)

    calls: tuple[tuple[str, Outcome | None], ...] = ()
    """The example's calls as (display text, target's answer), the divergent one last."""
    cause: str = ""
    """The message whose call made the wrong state or answer (for a stale or wrong field, the
    call that last wrote it); empty: ``method`` itself."""
    cell: tuple[str, str, str] | None = None
    """The coverage cell (message, power state, VM kind) of the cause's call, when known."""
    history: tuple[TimedCall, ...] = ()
    """A race's calls, session by session with their times (empty for a sequential one)."""


class Divergence(AssertionError):
    """The target answered differently from every outcome the model accepts."""

    def __init__(self, info: DivergenceInfo) -> None:
        text = info.message
        if info.reproducer:
            text += "\n\nReproducer (its docstring names the password variable to set):\n"
            text += info.reproducer
        super().__init__(text)
        self.info = info


class Desynced(UnsatisfiedAssumption):
    """The model can no longer follow the target in this example: a waived divergence whose
    successor state the model cannot know. The example ends, neither passed nor failed; the
    waived divergence is already recorded. (Hypothesis treats it as an unsatisfied assumption;
    the sweeps catch it.)"""
