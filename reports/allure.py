"""``allure-results/``: one Allure test result per finding, one passing result per clean area.

Each call of a finding's example is a step with its request and response attached, followed by
one step per other divergence of the finding (its calls as steps within); the area is
the epic and the methods are features; the reproducer is an attachment (never in the error
box); ``environment.properties`` names the target, and ``categories.json`` groups by error code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from reports.records import (
    CallRecord,
    DivergenceRecord,
    FindingRecord,
    OutcomeRecord,
    RunSummary,
    json_safe,
)
from reports.redact import Scrubbed, scrub

__all__ = ["ALLURE_DIR", "write_allure"]

ALLURE_DIR = "allure-results"
"""The folder :func:`write_allure` fills in the report directory (replacing what was there)."""
_FOLDER_MODE = 0o755


@dataclass
class _Results:
    """The files of one allure-results folder, by name."""

    files: dict[str, str] = field(default_factory=dict)

    def attach(self, name: str, text: str, mime: str = "text/plain") -> dict[str, str]:
        extension = "json" if mime == "application/json" else "txt"
        source = f"{uuid.uuid4()}-attachment.{extension}"
        self.files[source] = text
        return {"name": name, "source": source, "type": mime}


def _answer_text(answer: OutcomeRecord | None) -> str:
    if answer is None:
        return "(not recorded)"
    return json.dumps(json_safe(answer.as_tagged_json()), indent=2, ensure_ascii=False)


def _step(results: _Results, call: CallRecord, status: str, start: int) -> dict[str, object]:
    return {
        "name": call.shown,
        "status": status,
        "stage": "finished",
        "start": start,
        "stop": start,
        "attachments": [
            results.attach("request", call.call),
            results.attach("response", _answer_text(call.answer), "application/json"),
        ],
        "steps": [],
    }


def _steps(results: _Results, d: DivergenceRecord, start: int) -> list[dict[str, object]]:
    calls = list(d.calls) or [CallRecord(d.message.partition(": ")[0], d.actual)]
    steps = [_step(results, c, "passed", start) for c in calls[:-1]]
    last = _step(results, calls[-1], "failed", start)
    expected = [e.as_tagged_json() for e in d.expected]
    text = json.dumps(json_safe(expected), indent=2, ensure_ascii=False)
    last["attachments"].append(  # type: ignore[attr-defined]
        results.attach("expected (xapi)", text, "application/json")
    )
    return [*steps, last]


def _other_divergences(
    results: _Results, s: RunSummary, f: FindingRecord, start: int
) -> list[dict[str, object]]:
    """One step per divergence of the finding besides its example, with its calls inside."""
    steps = []
    for number in f.divergences:
        if number == f.example:
            continue
        d = s.divergence(number)
        steps.append(
            {
                "name": f"{number} (same finding): {d.message.partition(chr(10))[0]}",
                "status": "failed",
                "stage": "finished",
                "start": start,
                "stop": start,
                "attachments": [],
                "steps": _steps(results, d, start),
            }
        )
    return steps


def _labels(area: str, methods: Iterable[str], s: RunSummary) -> list[dict[str, str]]:
    labels = [
        {"name": "epic", "value": area},
        {"name": "suite", "value": area},
        {"name": "framework", "value": "xapi-conformance"},
        {"name": "host", "value": s.target},
    ]
    return labels + [{"name": "feature", "value": m} for m in methods]


def _history_id(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]


def _finding_result(
    results: _Results, s: RunSummary, f: FindingRecord, reproducers: dict[str, str], start: int
) -> dict[str, object]:
    example = s.divergence(f.example)
    attachments = [results.attach(f"reproducer {f.reproducer}", reproducers.get(f.id, ""))]
    message = f"{f.title} ({f.count} divergence(s); reproducer {f.reproducer})"
    return {
        "uuid": str(uuid.uuid4()),
        "historyId": _history_id(f.id),
        "name": f"{f.id}: {f.title}",
        "fullName": f"xapi-conformance.{f.area}.{f.id}",
        "status": "skipped" if f.status == "known" else "failed",
        "statusDetails": {"message": message, "trace": example.message},
        "stage": "finished",
        "start": start,
        "stop": start + int(s.duration_s * 1000),
        "labels": _labels(f.area, f.methods, s),
        "steps": [*_steps(results, example, start), *_other_divergences(results, s, f, start)],
        "attachments": attachments,
        "parameters": [{"name": "status", "value": f.status or "new"}],
    }


def _area_result(s: RunSummary, area: str, start: int) -> dict[str, object]:
    return {
        "uuid": str(uuid.uuid4()),
        "historyId": _history_id(area),
        "name": f"{area}: no finding",
        "fullName": f"xapi-conformance.{area}",
        "status": "passed",
        "stage": "finished",
        "start": start,
        "stop": start + int(s.duration_s * 1000),
        "labels": _labels(area, (), s),
        "steps": [],
        "attachments": [],
    }


def _not_run_result(s: RunSummary, area: str, reason: str, start: int) -> dict[str, object]:
    """An area the run did not test: skipped, with the reason."""
    return {
        **_area_result(s, area, start),
        "name": f"{area}: not run",
        "status": "skipped",
        "statusDetails": {"message": reason},
    }


def _environment(s: RunSummary) -> str:
    facts = {
        **{f"target.{k}": v for k, v in s.target_identity.items()},
        "target": s.target,
        "protocol": s.protocol,
        "profile": s.profile,
        "seed": "" if s.seed is None else str(s.seed),
        "strictness": s.strictness,
        "release": s.release,
        "tool_version": s.tool_version,
    }
    return "".join(f"{k.replace(' ', '_')}={' '.join(v.split())}\n" for k, v in facts.items())


def _categories(s: RunSummary) -> str:
    codes = sorted(
        {
            s.divergence(f.example).actual.error[0]
            for f in s.findings
            if not s.divergence(f.example).actual.ok
        }
    )
    categories = [
        {"name": f"error code {code}", "matchedStatuses": ["failed"], "traceRegex": f".*{code}.*"}
        for code in codes
    ]
    categories.append({"name": "divergences", "matchedStatuses": ["failed"]})
    return json.dumps(categories, indent=2)


def _start_ms(s: RunSummary) -> int:
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(s.started).timestamp() * 1000)
    except ValueError:
        return 0


def render_allure(s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> dict[str, str]:
    """The files of the allure-results folder for ``s``, by name (each finding's reproducer
    attached)."""
    clean = scrub(s, secrets)
    s, reproducers = clean.summary, clean.reproducers()
    results = _Results()
    start = _start_ms(s)
    tests = [_finding_result(results, s, f, reproducers, start) for f in s.findings]
    failing = {f.area for f in s.findings}
    tests += [_area_result(s, a, start) for a in s.areas if a not in failing]
    tests += [_not_run_result(s, n.area, n.reason, start) for n in s.not_run]
    for test in tests:
        results.files[f"{test['uuid']}-result.json"] = json.dumps(test, indent=1)
    results.files["environment.properties"] = _environment(s)
    results.files["categories.json"] = _categories(s)
    return results.files


def write_allure(report_dir: Path, s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> Path:
    """Replace ``report_dir/allure-results`` with the results of ``s``; return the folder.

    The results go to a new folder that then takes the old one's place, so the folder is the
    old or the complete new one; its files are written plainly: a run of many findings has
    tens of thousands (every call of every divergence attached), and syncing each to disk on
    its own took minutes.
    """
    files = render_allure(s, secrets)
    folder = Path(report_dir) / ALLURE_DIR
    folder.parent.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{ALLURE_DIR}."))
    try:
        for name, text in files.items():
            (fresh / name).write_text(text, encoding="utf-8")
        fresh.chmod(_FOLDER_MODE)
        shutil.rmtree(folder, ignore_errors=True)
        fresh.rename(folder)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    return folder
