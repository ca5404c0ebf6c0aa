"""A divergence between the model and the target: a test failure with a bug report attached."""

from __future__ import annotations

from dataclasses import dataclass

from models.outcome import Outcome, Value

__all__ = ["Divergence", "DivergenceInfo"]


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
    calls: tuple[tuple[str, Outcome | None], ...] = ()
    """The example's calls as (display text, target's answer), the divergent one last."""


class Divergence(AssertionError):
    """The target answered differently from every outcome the model accepts."""

    def __init__(self, info: DivergenceInfo) -> None:
        text = info.message
        if info.reproducer:
            text += "\n\nReproducer (run with XAPI_PASSWORD set):\n" + info.reproducer
        super().__init__(text)
        self.info = info
