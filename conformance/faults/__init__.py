"""Seeded faults: deliberately wrong variants of the embedded server, for the suite's own tests.

- ``kinds``: how a fault wraps the model's transition (``Fault``, ``BranchFault``, ``Raced``...),
  and ``compose``, which stacks faults around the honest transition.
- ``changes``: the one alteration each catalogued fault makes to an honest answer.
- ``catalogue``: every fault by name (``FAULTS``), with its topic, the area that finds it, a
  summary (``serve --list-faults``) and the divergence a run must report.
- ``races``: the faults that show only while calls overlap.
"""

from __future__ import annotations

from conformance.faults.catalogue import FAULTS, known, lookup, summary
from conformance.faults.kinds import (
    RACE_WINDOW,
    TOPICS,
    BranchFault,
    CallAltered,
    CheckLifted,
    Fault,
    MemoryOrderUnchecked,
    Raced,
    RaceQuirk,
    RbacIgnored,
    Seeded,
    Transition,
    Unvalidated,
    WronglyTyped,
    compose,
    races,
    wire_quirks,
)

__all__ = [
    "FAULTS",
    "RACE_WINDOW",
    "TOPICS",
    "BranchFault",
    "CallAltered",
    "CheckLifted",
    "Fault",
    "MemoryOrderUnchecked",
    "RaceQuirk",
    "Raced",
    "RbacIgnored",
    "Seeded",
    "Transition",
    "Unvalidated",
    "WronglyTyped",
    "compose",
    "known",
    "lookup",
    "races",
    "summary",
    "wire_quirks",
]
