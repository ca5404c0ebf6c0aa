"""Turning a test session's tally and divergences into the report records, across workers."""

from __future__ import annotations

import datetime
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conformance.divergence import DivergenceInfo
from conformance.suite.sweeps import CELLS, LIFECYCLE_MESSAGES
from conformance.wire.typed import datetime_text
from models.outcome import Encoded, Failure, Outcome, Value
from reports import (
    CoverageCell,
    DivergenceRecord,
    OutcomeRecord,
    RunSummary,
    atomic_write_text,
    divergence_from_json,
    divergence_to_json,
)

__all__ = ["Part", "divergence_record", "merge_parts", "outcome_record", "read_parts", "write_part"]


def _plain(value: Value) -> object:
    if isinstance(value, datetime.datetime):
        return datetime_text(value)
    if isinstance(value, Encoded):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


def outcome_record(outcome: Outcome) -> OutcomeRecord:
    """The report form of an outcome."""
    if isinstance(outcome, Failure):
        return OutcomeRecord.failure(outcome.code, *outcome.params)
    return OutcomeRecord.success(_plain(outcome.value))


def divergence_record(info: DivergenceInfo) -> DivergenceRecord:
    """The report form of a divergence."""
    return DivergenceRecord(
        method=info.method,
        params=tuple(_plain(p) for p in info.params),
        expected=tuple(outcome_record(e) for e in info.expected),
        actual=outcome_record(info.actual),
        area=info.area,
        kind=info.kind,
        message=info.message,
        reproducer=info.reproducer,
        waived=info.waived,
        waiver_reason=info.waiver_reason,
    )


@dataclass
class Part:
    """One pytest process's results (the controller's, or one xdist worker's)."""

    examples: int = 0
    steps: int = 0
    coverage: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    divergences: list[DivergenceRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    tests: int = 0


def _part_json(part: Part) -> dict[str, object]:
    return {
        "examples": part.examples,
        "steps": part.steps,
        "tests": part.tests,
        "coverage": [[m, s, k, n] for (m, s, k), n in sorted(part.coverage.items())],
        "divergences": [divergence_to_json(d) for d in part.divergences],
        "errors": part.errors,
    }


def write_part(folder: Path, name: str, part: Part) -> None:
    """Save one process's results in ``folder`` for the controller to merge."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{name}.json", json.dumps(_part_json(part)))


def read_parts(folder: Path) -> list[Part]:
    """Every part saved in ``folder``, oldest first."""
    parts = []
    for path in sorted(folder.glob("*.json"), key=os.path.getmtime) if folder.exists() else []:
        data = json.loads(path.read_text(encoding="utf-8"))
        part = Part(
            examples=data["examples"],
            steps=data["steps"],
            tests=data.get("tests", 0),
            errors=data["errors"],
        )
        part.coverage.update({(m, s, k): n for m, s, k, n in data["coverage"]})
        part.divergences = [divergence_from_json(d) for d in data["divergences"]]
        parts.append(part)
    return parts


def _coverage(counts: Counter[tuple[str, str, str]]) -> tuple[CoverageCell, ...]:
    cells = {(f"VM.{m}", s, k): 0 for m in LIFECYCLE_MESSAGES for s, k in CELLS}
    for key, count in counts.items():
        cells[key] = cells.get(key, 0) + count
    return tuple(CoverageCell(m, s, k, n) for (m, s, k), n in sorted(cells.items()))


@dataclass(frozen=True)
class RunFacts:
    """What the summary says about the run itself."""

    target: str
    protocol: str
    profile: str
    seed: int | None
    strictness: str
    started: datetime.datetime
    tool_version: str


def merge_parts(parts: Iterable[Part], facts: RunFacts, extra_error: str = "") -> RunSummary:
    """One summary from every process's part; the verdict from divergences and errors."""
    total = Part()
    for part in parts:
        total.examples += part.examples
        total.steps += part.steps
        total.coverage.update(part.coverage)
        total.divergences.extend(part.divergences)
        total.errors.extend(part.errors)
    errors = [e for e in [extra_error, *total.errors] if e]
    verdict = (
        "error"
        if errors
        else "diverges"
        if any(not d.waived for d in total.divergences)
        else "conforms"
    )
    return RunSummary(
        verdict=verdict,  # type: ignore[arg-type]
        target=facts.target,
        protocol=facts.protocol,
        profile=facts.profile,
        seed=facts.seed,
        examples=total.examples,
        steps=total.steps,
        coverage=_coverage(total.coverage),
        divergences=tuple(_unique(total.divergences)),
        started=facts.started.isoformat(timespec="seconds"),
        duration_s=round((datetime.datetime.now(datetime.UTC) - facts.started).total_seconds(), 1),
        error="; ".join(errors),
        tool_version=facts.tool_version,
        strictness=facts.strictness,
    )


def _unique(divergences: Iterable[DivergenceRecord]) -> list[DivergenceRecord]:
    seen: set[tuple[str, str]] = set()
    result = []
    for d in divergences:
        key = (d.message, d.reproducer)
        if key not in seen:
            seen.add(key)
            result.append(d)
    return result
