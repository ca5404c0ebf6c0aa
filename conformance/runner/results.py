"""Turning a test session's tally and divergences into the report records, across workers."""

from __future__ import annotations

import datetime
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from conformance.areas.machines import AREAS
from conformance.judge.divergence import DivergenceInfo
from conformance.runner.statuses import with_statuses
from conformance.targets import Target
from conformance.wire.typed import datetime_text
from models.coverage import coverage_cells, judged_release, vm_messages
from models.outcome import Encoded, Failure, Outcome, Success, Value
from reports import (
    CallRecord,
    CoverageCell,
    DivergenceRecord,
    MessageCount,
    NotRun,
    OutcomeRecord,
    RunSummary,
    atomic_write_text,
    divergence_from_json,
    divergence_to_json,
    with_findings,
)

__all__ = [
    "STOPPED_EARLY",
    "Part",
    "RunFacts",
    "divergence_record",
    "merge_parts",
    "outcome_record",
    "read_parts",
    "target_identity",
    "write_part",
]


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


def _call_records(info: DivergenceInfo) -> tuple[CallRecord, ...]:
    """The example's calls; a race's with each call's session and times."""
    if info.history:
        return tuple(
            CallRecord(t.call, outcome_record(t.answer), t.session, t.sent_ms, t.answered_ms)
            for t in info.history
        )
    return tuple(
        CallRecord(text, None if answer is None else outcome_record(answer))
        for text, answer in info.calls
    )


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
        calls=_call_records(info),
        cause=info.cause or info.method,
        cell=info.cell or (),
    )


@dataclass
class Part:
    """One pytest process's results (the controller's, or one xdist worker's)."""

    examples: int = 0
    steps: int = 0
    coverage: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    divergences: list[DivergenceRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ending: list[str] = field(default_factory=list)
    """Errors that ended the run (a stalled or unreachable target): the real cause, shown first."""
    tests: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    areas: set[str] = field(default_factory=set)
    identity: dict[str, str] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)
    """Areas a test of which did not run, with why (``-k``, a spent time budget)."""
    selected: set[str] = field(default_factory=set)
    """Areas with at least one test selected to run (whether or not it ran)."""


def _part_json(part: Part) -> dict[str, object]:
    return {
        "examples": part.examples,
        "steps": part.steps,
        "tests": part.tests,
        "coverage": [[m, s, k, n] for (m, s, k), n in sorted(part.coverage.items())],
        "divergences": [divergence_to_json(d) for d in part.divergences],
        "errors": part.errors,
        "ending": part.ending,
        "messages": dict(part.messages),
        "areas": sorted(part.areas),
        "identity": part.identity,
        "not_run": part.not_run,
        "selected": sorted(part.selected),
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
            ending=data.get("ending", []),
        )
        part.coverage.update({(m, s, k): n for m, s, k, n in data["coverage"]})
        part.divergences = [divergence_from_json(d) for d in data["divergences"]]
        part.messages.update(data.get("messages", {}))
        part.areas.update(data.get("areas", []))
        part.identity.update(data.get("identity", {}))
        part.not_run.update(data.get("not_run", {}))
        part.selected.update(data.get("selected", []))
        parts.append(part)
    return parts


def _coverage(counts: Counter[tuple[str, str, str]]) -> tuple[CoverageCell, ...]:
    """Every cell the model can reach, with its count (0 when not exercised): the same list on
    every run, so that runs compare. Calls of messages the published reference hides are
    judged all the same, but are not cells of the map."""
    cells = dict.fromkeys(coverage_cells(), 0)
    for key, count in counts.items():
        if key in cells:
            cells[key] += count
    return tuple(CoverageCell(m, s, k, n) for (m, s, k), n in sorted(cells.items()))


def _messages(counts: Counter[str]) -> tuple[MessageCount, ...]:
    """Every VM message of the catalogue with its call count (calls of names the catalogue
    does not have, sent by the rpc area on purpose, are not messages)."""
    return tuple(MessageCount(name, counts.get(name, 0)) for name in vm_messages())


IDENTITY_KEYS = (
    "product_brand",
    "product_version",
    "platform_name",
    "platform_version",
    "xapi",
    "xapi_build",
)
"""Keys of the pool master's software_version copied into the target identity, when present."""


def target_identity(target: Target, session: str) -> dict[str, str]:
    """What the pool master says it is: product, versions, API version, hostname.

    Read with ``pool.get_all_records`` and ``host.get_record``; what cannot be read is left out.
    """
    pools = target.call("pool.get_all_records", session)
    if not isinstance(pools, Success) or not isinstance(pools.value, Mapping) or not pools.value:
        return {}
    pool = next(iter(pools.value.values()))
    master = pool.get("master") if isinstance(pool, Mapping) else None
    host = target.call("host.get_record", session, str(master))
    if not isinstance(host, Success) or not isinstance(host.value, Mapping):
        return {}
    record = host.value
    software = record.get("software_version", {})
    identity = {
        k: str(software[k])
        for k in IDENTITY_KEYS
        if isinstance(software, Mapping) and k in software
    }
    major, minor = record.get("API_version_major"), record.get("API_version_minor")
    if major is not None and minor is not None:
        identity["api_version"] = f"{major}.{minor}"
    if record.get("hostname"):
        identity["hostname"] = str(record["hostname"])
    return identity


def tool_version() -> str:
    """The installed version of xapi-conformance ("unknown" when run from a bare checkout)."""
    try:
        return version("xapi-conformance")
    except PackageNotFoundError:
        return "unknown"


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
    baseline: RunSummary | None = None
    baseline_path: str = ""
    xapi_version: str = ""
    """The release chosen with ``--xapi-version`` (empty: the one the target reports)."""


def _judged(identity: dict[str, str], chosen: str) -> str:
    """The release judged against, and when it was chosen, what the target says it runs."""
    text = judged_release(identity, chosen)
    if not chosen:
        return text
    reported = identity.get("xapi_build") or identity.get("xapi")
    return f"{text}, chosen with --xapi-version" + (
        f" (the target reports xapi {reported})" if reported else ""
    )


STOPPED_EARLY = "the run was interrupted before its end; the counts are those reached so far"


def merge_parts(
    parts: Iterable[Part], facts: RunFacts, extra_error: str = "", interrupted: bool = False
) -> RunSummary:
    """One summary from every process's part; the verdict from divergences and errors.

    An interrupted run conforms to nothing: its verdict is "diverges" when a divergence was
    already found, else "error".
    """
    total = Part()
    for part in parts:
        total.examples += part.examples
        total.steps += part.steps
        total.coverage.update(part.coverage)
        total.divergences.extend(part.divergences)
        total.errors.extend(part.errors)
        total.ending.extend(part.ending)
        total.messages.update(part.messages)
        total.areas.update(part.areas)
        total.identity.update(part.identity)
        total.not_run.update(part.not_run)
        total.selected.update(part.selected)
    errors = list(dict.fromkeys(e for e in [extra_error, *total.ending, *total.errors] if e))
    diverges = any(not d.waived for d in total.divergences)
    verdict = (
        "error"
        if errors or (interrupted and not diverges)
        else "diverges"
        if diverges
        else "conforms"
    )
    errors += [STOPPED_EARLY] if interrupted else []
    summary = RunSummary(
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
        messages=_messages(total.messages),
        target_identity=total.identity,
        release=_judged(total.identity, facts.xapi_version),
        areas=tuple(sorted(total.areas)),
        not_run=_not_run(total, interrupted),
    )
    return with_statuses(with_findings(summary, facts.baseline, facts.baseline_path))


INTERRUPTED = "the run was interrupted before it ran"
STOPPED = "the run stopped before it ran (-x or --max-findings)"
NOT_SELECTED = "not selected (-k)"


def _not_run(total: Part, interrupted: bool) -> tuple[NotRun, ...]:
    """The areas none of whose tests ran, each with why; an interrupted run's unreached areas
    too. An area selected to run that did not is never called "not selected"."""
    reasons = dict(total.not_run)
    unreached = INTERRUPTED if interrupted else STOPPED
    for area in total.selected - total.areas:
        if reasons.get(area, NOT_SELECTED) == NOT_SELECTED:
            reasons[area] = unreached
    if interrupted:
        reasons.update({area: INTERRUPTED for area in AREAS if area not in reasons})
    return tuple(NotRun(a, r) for a, r in sorted(reasons.items()) if a not in total.areas)


def _unique(divergences: Iterable[DivergenceRecord]) -> list[DivergenceRecord]:
    seen: set[tuple[str, str]] = set()
    result = []
    for d in divergences:
        key = (d.message, d.reproducer)
        if key not in seen:
            seen.add(key)
            result.append(d)
    return result
