"""Every coverage cell and VM message judged: ok, diverges, unreachable or not exercised.

A cell the run never called is ``unreachable`` when a finding blocks the way the suite takes to
its power state or VM kind: the finding shows a message that leads there (VM.start for Running,
VM.snapshot for a snapshot…) refused where xapi accepts it. That holds even when an example got
there another way (a VM.pause the target accepted on a Halted VM, read back as Paused): the
last test of each process aims at every cell not yet called, along the suite's own way, and
that way is blocked. A message is ``unreachable`` when every cell it has is. Anything else the
run did not call is ``not_exercised``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from reports import CoverageCell, FindingRecord, MessageCount, RunSummary
from reports.findings import UNKNOWN_CODES

__all__ = ["LEADS_TO", "with_statuses"]

_STARTS = ("VM.start", "VM.start_on")
LEADS_TO: Mapping[str, tuple[str, ...]] = {
    "Halted": ("VM.create",),
    "Running": ("VM.create", *_STARTS, "VM.resume", "VM.resume_on", "VM.unpause"),
    "Paused": ("VM.create", *_STARTS, "VM.pause"),
    "Suspended": ("VM.create", *_STARTS, "VM.resume", "VM.suspend", "VM.checkpoint"),
    "plain": ("VM.create",),
    "snapshot": ("VM.create", "VM.snapshot", "VM.checkpoint", "VM.snapshot_with_quiesce"),
    "template": ("VM.create", "VM.set_is_a_template", "VM.clone", "VM.copy"),
    "default_template": ("VM.create", "VM.add_to_other_config", "VM.set_other_config"),
}
"""The messages whose calls lead a VM into a power state or kind (or to the first step there)."""


def _causes(s: RunSummary, finding: FindingRecord) -> set[str]:
    return {s.divergence(i).blamed for i in finding.divergences}


def _refusals(s: RunSummary, finding: FindingRecord) -> set[str]:
    """The messages the finding shows refused where xapi accepts them: what can block a path."""
    refused = set()
    for i in finding.divergences:
        d = s.divergence(i)
        unknown = not d.actual.ok and d.actual.error[0] in UNKNOWN_CODES
        if unknown or (not d.actual.ok and any(e.ok for e in d.expected)):
            refused.add(d.blamed)
    return refused


def _cells_of(s: RunSummary, finding: FindingRecord) -> set[tuple[str, ...]]:
    return {cell for i in finding.divergences if (cell := s.divergence(i).cell)}


def _blocker(
    s: RunSummary, refused: Mapping[str, set[str]], state: str, kind: str
) -> FindingRecord | None:
    """The first finding that shows a message leading to ``state`` or ``kind`` refused."""
    leads = {*LEADS_TO.get(state, ()), *LEADS_TO.get(kind, ())}
    return next((f for f in s.findings if refused[f.id] & leads), None)


def _cell_status(
    s: RunSummary, cell: CoverageCell, refused: Mapping[str, set[str]]
) -> CoverageCell:
    key = (cell.method, cell.power_state, cell.vm_kind)
    diverging = tuple(f.id for f in s.findings if key in _cells_of(s, f))
    if diverging:
        return replace(cell, status="diverges", findings=diverging)
    if cell.count > 0:
        return replace(cell, status="ok")
    blocker = _blocker(s, refused, cell.power_state, cell.vm_kind)
    if blocker is not None:
        return replace(cell, status="unreachable", blocked_by=blocker.id)
    return replace(cell, status="not_exercised")


def _message_status(
    message: MessageCount, causes: Mapping[str, set[str]], cells: Sequence[CoverageCell]
) -> MessageCount:
    diverging = tuple(f for f, blamed in causes.items() if message.method in blamed)
    if diverging:
        return replace(message, status="diverges", findings=diverging)
    if message.count > 0:
        return replace(message, status="ok")
    own = [c for c in cells if c.method == message.method]
    if own and all(c.status == "unreachable" for c in own):
        return replace(message, status="unreachable", blocked_by=own[0].blocked_by)
    return replace(message, status="not_exercised")


def with_statuses(s: RunSummary) -> RunSummary:
    """``s`` with a status on every coverage cell and message (see the module docstring)."""
    causes = {f.id: _causes(s, f) for f in s.findings}
    refused = {f.id: _refusals(s, f) for f in s.findings}
    cells = tuple(_cell_status(s, c, refused) for c in s.coverage)
    messages = tuple(_message_status(m, causes, cells) for m in s.messages)
    return replace(s, coverage=cells, messages=messages)
