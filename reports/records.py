"""The records a conformance run hands to the renderers, and their JSON form.

The JSON form is the layout of ``summary.json``, a contract other tools depend on (see
:func:`summary_to_json`). Values are expected to be JSON-native (``None``, ``bool``, ``int``,
``float``, ``str``, lists and string-keyed objects); tuples are written as lists. For such values
``summary_from_json(summary_to_json(s)) == s`` holds exactly, also through ``json.dumps`` and
``json.loads``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias, cast

__all__ = [
    "COVERAGE_STATUSES",
    "FINDING_STATUSES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "CallRecord",
    "CoverageCell",
    "DivergenceRecord",
    "FindingRecord",
    "FixedFinding",
    "MessageCount",
    "NotRun",
    "OutcomeRecord",
    "RunSummary",
    "TimeBudget",
    "Verdict",
    "divergence_from_json",
    "divergence_id",
    "divergence_to_json",
    "finding_from_json",
    "finding_to_json",
    "summary_from_json",
    "summary_to_json",
]

Verdict: TypeAlias = Literal["conforms", "diverges", "error"]
"""The overall result of a run: the target conforms, diverges, or the run itself failed."""

VERDICTS: Final[tuple[Verdict, ...]] = ("conforms", "diverges", "error")
"""Every :data:`Verdict`, in display order."""

SCHEMA_VERSION: Final = 3
"""The ``schema_version`` written to ``summary.json`` (versions 1 and 2 are still read)."""

COVERAGE_STATUSES: Final = ("ok", "diverges", "unreachable", "not_exercised", "")
"""A coverage cell's or message's status (``""``: not judged, a summary before version 3)."""

FINDING_STATUSES: Final = ("new", "known", "")
"""A finding's status against a baseline: ``new``, ``known``, or ``""`` (no baseline given)."""


def to_plain(value: object) -> object:
    """``value`` with tuples turned into lists and mappings into dicts, recursively."""
    if isinstance(value, Mapping):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    return value


def json_safe(value: object) -> object:
    """``value`` made acceptable to strict JSON: what is not JSON-native becomes its ``str``.

    Non-finite floats become ``"nan"``/``"inf"``/``"-inf"``; non-string map keys become strings.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return str(value)


@dataclass(frozen=True)
class OutcomeRecord:
    """The outcome of one call: a success value, or an ErrorDescription.

    ``error`` is the ErrorDescription list (code then params), empty exactly when ``ok``; ``value``
    is the JSON-able success value, ``None`` for a failure.
    """

    ok: bool
    value: object = None
    error: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "error", tuple(self.error))
        if self.ok and self.error:
            raise ValueError("a successful outcome has no error description")
        if not self.ok and not self.error:
            raise ValueError("a failed outcome needs at least an error code")
        if not self.ok and self.value is not None:
            raise ValueError("a failed outcome has no value")
        if not all(isinstance(part, str) for part in self.error):
            raise TypeError("an error description is a list of strings")

    @classmethod
    def success(cls, value: object) -> OutcomeRecord:
        """A successful outcome with ``value``."""
        return cls(ok=True, value=value)

    @classmethod
    def failure(cls, code: str, *params: str) -> OutcomeRecord:
        """A failed outcome whose ErrorDescription is ``[code, *params]``."""
        return cls(ok=False, error=(code, *params))

    def as_json(self) -> object:
        """The value itself when ``ok``, else the list ``[code, *params]``.

        Ambiguous on its own (a success value can be a list); :meth:`as_tagged_json` is not.
        """
        return to_plain(self.value) if self.ok else list(self.error)

    def as_tagged_json(self) -> dict[str, object]:
        """``{"status": "success", "value": …}`` or ``{"status": "failure", "error": […]}``."""
        if self.ok:
            return {"status": "success", "value": to_plain(self.value)}
        return {"status": "failure", "error": list(self.error)}

    @classmethod
    def from_tagged_json(cls, data: object, where: str = "outcome") -> OutcomeRecord:
        """Read back the form written by :meth:`as_tagged_json`; ``ValueError`` when malformed."""
        obj = _as_object(data, where)
        status = _str(obj, "status", where)
        if status == "success":
            if "value" not in obj:
                raise ValueError(f"{where}: missing key 'value'")
            return cls.success(obj["value"])
        if status == "failure":
            error = _list(obj, "error", where)
            if not error or not all(isinstance(part, str) for part in error):
                raise ValueError(f"{where}.error: expected a non-empty list of strings")
            return cls(ok=False, error=tuple(cast(list[str], error)))
        raise ValueError(f"{where}.status: expected 'success' or 'failure', got {status!r}")


@dataclass(frozen=True)
class CallRecord:
    """One call of a divergence's example: its text, and the target's answer when recorded."""

    call: str
    answer: OutcomeRecord | None = None
    session: int | None = None
    """A race's call: the session that made it (numbered from 1); None for a sequential call."""
    sent_ms: float | None = None
    """A race's call: when it was sent, in milliseconds from the race's start."""
    answered_ms: float | None = None
    """A race's call: when its answer came back, in milliseconds from the race's start."""

    @property
    def shown(self) -> str:
        """The call, with its session and times for a race's call."""
        if self.session is None:
            return self.call
        return (
            f"{self.call}: session {self.session}, sent {self.sent_ms:g} ms, "
            f"answered {self.answered_ms:g} ms"
        )


@dataclass(frozen=True)
class DivergenceRecord:
    """One call on which the target did something the model did not allow."""

    method: str
    params: tuple[object, ...]
    expected: tuple[OutcomeRecord, ...]
    """The acceptable outcomes the model predicted."""
    actual: OutcomeRecord
    area: str
    """lifecycle, memory, operations, templates, fields, rpc, roles or async."""
    kind: str
    """What diverged, e.g. ``outcome``, ``state`` or ``allowed_operations``."""
    message: str
    reproducer: str
    """A standalone Python script that replays the divergence against the target."""
    waived: bool = False
    waiver_reason: str = ""
    calls: tuple[CallRecord, ...] = ()
    """The example's calls in order, the divergent one last (empty when not recorded)."""
    cause: str = ""
    """The message whose call made the wrong state or answer (empty: ``method``)."""
    cell: tuple[str, ...] = ()
    """The coverage cell (message, power state, VM kind) of the cause's call, when known."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "expected", tuple(self.expected))
        object.__setattr__(self, "calls", tuple(self.calls))
        object.__setattr__(self, "cell", tuple(self.cell))

    @property
    def blamed(self) -> str:
        """The message blamed for the divergence: its cause, else the method it was seen on."""
        return self.cause or self.method


@dataclass(frozen=True)
class CoverageCell:
    """How many times ``method`` was called on a VM of ``vm_kind`` in ``power_state``.

    ``vm_kind`` is plain, template, default_template or snapshot.
    """

    method: str
    power_state: str
    vm_kind: str
    count: int
    status: str = ""
    """ok, diverges, unreachable or not_exercised (see ``COVERAGE_STATUSES``)."""
    findings: tuple[str, ...] = ()
    """The ids of the findings whose cause diverged here (status ``diverges``)."""
    blocked_by: str = ""
    """The id of the finding that kept the run from reaching it (status ``unreachable``)."""

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"coverage count must not be negative: {self.count}")
        object.__setattr__(self, "findings", tuple(self.findings))


@dataclass(frozen=True)
class MessageCount:
    """How many times one VM message was called in the run (0 when never), and its status."""

    method: str
    count: int
    status: str = ""
    """ok, diverges, unreachable or not_exercised (see ``COVERAGE_STATUSES``)."""
    findings: tuple[str, ...] = ()
    """The ids of the findings whose cause is this message (status ``diverges``)."""
    blocked_by: str = ""
    """The id of the finding that kept the run from reaching it (status ``unreachable``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", tuple(self.findings))


@dataclass(frozen=True)
class FindingRecord:
    """Divergences showing one difference, whatever the method, VM, state or values.

    ``divergences`` are the ids (``D1``, ``D2``…) of the divergences grouped here; ``example``
    is the id of the shortest one, whose reproducer is written to ``reproducer`` (a path
    relative to the report directory).
    """

    id: str
    title: str
    area: str
    count: int
    methods: tuple[str, ...]
    divergences: tuple[str, ...]
    example: str
    reproducer: str
    status: str = ""
    cause: str = ""
    """The message whose call made the wrong state or answer (``methods``: where it was seen)."""
    seen_under_concurrency: bool = False
    """A race of the concurrency area showed this finding too (and was folded into it)."""
    seen_in_events: bool = False
    """The events area's watch showed this finding too, in the event stream (folded into it)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "divergences", tuple(self.divergences))
        if self.status not in FINDING_STATUSES:
            raise ValueError(f"finding status must be one of {FINDING_STATUSES}")


@dataclass(frozen=True)
class FixedFinding:
    """A finding of the baseline run that this run no longer shows."""

    id: str
    title: str


@dataclass(frozen=True)
class NotRun:
    """An area the run did not test, and why (a time budget, an interrupt, ``-k``)."""

    area: str
    reason: str


@dataclass(frozen=True)
class TimeBudget:
    """A run's time budget (``--time-budget``): its seconds, the seconds the run used, and what
    it left out to keep to it (cells not run, examples not started)."""

    seconds: float
    used: float
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSummary:
    """Everything the renderers need to know about one conformance run against one target."""

    verdict: Verdict
    target: str
    protocol: str
    profile: str
    seed: int | None
    examples: int
    steps: int
    coverage: tuple[CoverageCell, ...]
    divergences: tuple[DivergenceRecord, ...]
    started: str
    """When the run started, ISO 8601."""
    duration_s: float
    error: str = ""
    """Why the run failed, when ``verdict`` is ``"error"``."""
    tool_version: str = ""
    strictness: str = "exact"
    findings: tuple[FindingRecord, ...] = ()
    """The active divergences grouped by the difference they show (see reports.findings)."""
    messages: tuple[MessageCount, ...] = ()
    """Every VM message of the catalogue with its call count."""
    target_identity: Mapping[str, str] = field(default_factory=dict)
    """What the pool master says it is: product_brand, product_version, api_version…"""
    release: str = ""
    """The xapi release the model judges against."""
    areas: tuple[str, ...] = ()
    """The areas the run tested."""
    baseline: str = ""
    """The baseline summary the findings were compared with, if any."""
    fixed: tuple[FixedFinding, ...] = ()
    """Findings of the baseline this run no longer shows."""
    budget: TimeBudget | None = None
    """The run's time budget, when it had one."""
    not_run: tuple[NotRun, ...] = ()
    """Areas the run did not test, each with the reason (never counted as passed)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "coverage", tuple(self.coverage))
        object.__setattr__(self, "divergences", tuple(self.divergences))
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "target_identity", dict(self.target_identity))
        object.__setattr__(self, "areas", tuple(self.areas))
        object.__setattr__(self, "fixed", tuple(self.fixed))
        object.__setattr__(self, "not_run", tuple(self.not_run))
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    @property
    def active_divergences(self) -> tuple[DivergenceRecord, ...]:
        """The divergences that are not waived."""
        return tuple(d for d in self.divergences if not d.waived)

    @property
    def waived_divergences(self) -> tuple[DivergenceRecord, ...]:
        """The divergences that are waived."""
        return tuple(d for d in self.divergences if d.waived)

    @property
    def new_findings(self) -> tuple[FindingRecord, ...]:
        """Findings not in the baseline (every finding when no baseline was given)."""
        return tuple(f for f in self.findings if f.status != "known")

    @property
    def not_run_note(self) -> str:
        """What the run did not test, in a few words: "interrupted" or "time budget: N
        area(s) not run"; "" otherwise (areas left out with ``-k`` were not asked for)."""
        reasons = [n.reason for n in self.not_run]
        if any(r.startswith("the run was interrupted") for r in reasons):
            return "interrupted"
        budget = sum(1 for r in reasons if r.startswith("time budget"))
        return f"time budget: {budget} area(s) not run" if budget else ""

    @property
    def judged_note(self) -> str:
        """How much was judged: "N of M cells, K of L messages judged" (ok or diverges)."""
        cells = sum(1 for c in self.coverage if c.status in ("ok", "diverges"))
        messages = sum(1 for m in self.messages if m.status in ("ok", "diverges"))
        return (
            f"{cells} of {len(self.coverage)} cells, "
            f"{messages} of {len(self.messages)} messages judged"
        )

    def divergence(self, divergence_id: str) -> DivergenceRecord:
        """The divergence with id ``D<n>`` (see :func:`divergence_id`)."""
        return self.divergences[int(divergence_id.removeprefix("D")) - 1]


def divergence_id(index: int) -> str:
    """The id of the divergence at ``index`` (0-based) in ``RunSummary.divergences``."""
    return f"D{index + 1}"


# --- writing -----------------------------------------------------------------------------------


def _status_json(status: str, findings: Sequence[str], blocked_by: str) -> dict[str, object]:
    """A cell's or message's status keys: ``findings`` beside diverges, ``blocked_by`` beside
    unreachable."""
    data: dict[str, object] = {"status": status}
    if status == "diverges":
        data["findings"] = list(findings)
    if status == "unreachable":
        data["blocked_by"] = blocked_by
    return data


def _cell_to_json(cell: CoverageCell) -> dict[str, object]:
    return {
        "method": cell.method,
        "power_state": cell.power_state,
        "vm_kind": cell.vm_kind,
        "count": cell.count,
        **_status_json(cell.status, cell.findings, cell.blocked_by),
    }


def _message_to_json(m: MessageCount) -> dict[str, object]:
    return {
        "method": m.method,
        "count": m.count,
        **_status_json(m.status, m.findings, m.blocked_by),
    }


def divergence_to_json(d: DivergenceRecord, divergence_id: str = "") -> dict[str, object]:
    """One divergence as it appears in ``summary.json`` (with its ``id`` when given)."""
    return {
        **({"id": divergence_id} if divergence_id else {}),
        "method": d.method,
        "params": to_plain(d.params),
        "expected": [outcome.as_json() for outcome in d.expected],
        "actual": d.actual.as_json(),
        "area": d.area,
        "kind": d.kind,
        "message": d.message,
        "reproducer": d.reproducer,
        "waived": d.waived,
        "waiver_reason": d.waiver_reason,
        "expected_outcomes": [outcome.as_tagged_json() for outcome in d.expected],
        "actual_outcome": d.actual.as_tagged_json(),
        "calls": [_call_to_json(c) for c in d.calls],
        "cause": d.cause,
        "cell": list(d.cell),
    }


def _call_to_json(c: CallRecord) -> dict[str, object]:
    data: dict[str, object] = {
        "call": c.call,
        "answer": c.answer.as_tagged_json() if c.answer else None,
    }
    if c.session is not None:
        data |= {"session": c.session, "sent_ms": c.sent_ms, "answered_ms": c.answered_ms}
    return data


def finding_to_json(f: FindingRecord) -> dict[str, object]:
    """One finding as it appears in ``summary.json``."""
    return {
        "id": f.id,
        "title": f.title,
        "area": f.area,
        "count": f.count,
        "methods": list(f.methods),
        "divergences": list(f.divergences),
        "example": f.example,
        "reproducer": f.reproducer,
        "status": f.status,
        "cause": f.cause,
        "seen_under_concurrency": f.seen_under_concurrency,
        "seen_in_events": f.seen_in_events,
    }


def _coverage_json(s: RunSummary) -> dict[str, object]:
    return {
        "cells": [_cell_to_json(cell) for cell in s.coverage],
        "messages": [_message_to_json(m) for m in s.messages],
        "exercised": sum(1 for cell in s.coverage if cell.count > 0),
        "messages_exercised": sum(1 for m in s.messages if m.count > 0),
    }


def summary_to_json(s: RunSummary) -> dict[str, object]:
    """The ``summary.json`` object for ``s``, keys in the documented order.

    ``expected``/``actual`` hold outcomes as :meth:`OutcomeRecord.as_json` (a value or an
    ErrorDescription list); ``expected_outcomes``/``actual_outcome`` hold the same outcomes in the
    unambiguous tagged form, which :func:`summary_from_json` reads.
    """
    data: dict[str, object] = {
        "verdict": s.verdict,
        "target": s.target,
        "protocol": s.protocol,
        "profile": s.profile,
        "seed": s.seed,
        "examples": s.examples,
        "steps": s.steps,
        "target_identity": dict(s.target_identity),
        "release": s.release,
        "areas": list(s.areas),
        "coverage": _coverage_json(s),
        "findings": [finding_to_json(f) for f in s.findings],
        "baseline": s.baseline,
        "fixed": [{"id": f.id, "title": f.title} for f in s.fixed],
        "not_run": [{"area": n.area, "reason": n.reason} for n in s.not_run],
        "divergences": [
            divergence_to_json(d, divergence_id(i)) for i, d in enumerate(s.divergences)
        ],
        "started": s.started,
        "duration_s": s.duration_s,
        "error": s.error,
        "tool_version": s.tool_version,
        "strictness": s.strictness,
        "schema_version": SCHEMA_VERSION,
    }
    if s.budget is not None:  # only a run with --time-budget has the key
        data["budget"] = {
            "seconds": s.budget.seconds,
            "used": s.budget.used,
            "left_out": list(s.budget.left_out),
        }
    return data


# --- reading -----------------------------------------------------------------------------------


def _as_object(data: object, where: str) -> Mapping[str, object]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    return cast(Mapping[str, object], data)


def _get(obj: Mapping[str, object], key: str, where: str) -> object:
    if key not in obj:
        raise ValueError(f"{where}: missing key {key!r}")
    return obj[key]


def _wrong(where: str, key: str, wanted: str, value: object) -> ValueError:
    return ValueError(f"{where}.{key}: expected {wanted}, got {type(value).__name__}")


def _str(obj: Mapping[str, object], key: str, where: str) -> str:
    value = _get(obj, key, where)
    if not isinstance(value, str):
        raise _wrong(where, key, "a string", value)
    return value


def _bool(obj: Mapping[str, object], key: str, where: str) -> bool:
    value = _get(obj, key, where)
    if not isinstance(value, bool):
        raise _wrong(where, key, "a boolean", value)
    return value


def _int(obj: Mapping[str, object], key: str, where: str) -> int:
    value = _get(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(where, key, "an integer", value)
    return value


def _optional_int(obj: Mapping[str, object], key: str, where: str) -> int | None:
    return None if _get(obj, key, where) is None else _int(obj, key, where)


def _float(obj: Mapping[str, object], key: str, where: str) -> float:
    value = _get(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(where, key, "a number", value)
    return float(value)


def _list(obj: Mapping[str, object], key: str, where: str) -> list[object]:
    value = _get(obj, key, where)
    if not isinstance(value, list | tuple):
        raise _wrong(where, key, "a list", value)
    return list(value)


def _status_from_json(obj: Mapping[str, object], where: str) -> dict[str, object]:
    """The status keys of a cell or message (absent before schema version 3)."""
    status = str(obj.get("status", ""))
    if status not in COVERAGE_STATUSES:
        raise ValueError(f"{where}.status: expected one of {COVERAGE_STATUSES}, got {status!r}")
    return {
        "status": status,
        "findings": _str_list(obj, "findings", where) if "findings" in obj else (),
        "blocked_by": str(obj.get("blocked_by", "")),
    }


def _cell_from_json(data: object, where: str) -> CoverageCell:
    obj = _as_object(data, where)
    return CoverageCell(
        method=_str(obj, "method", where),
        power_state=_str(obj, "power_state", where),
        vm_kind=_str(obj, "vm_kind", where),
        count=_int(obj, "count", where),
        **_status_from_json(obj, where),  # type: ignore[arg-type]
    )


def divergence_from_json(data: object, where: str = "divergence") -> DivergenceRecord:
    """The inverse of :func:`divergence_to_json`; ValueError naming ``where`` on bad input."""
    obj = _as_object(data, where)
    expected = _list(obj, "expected_outcomes", where)
    return DivergenceRecord(
        method=_str(obj, "method", where),
        params=tuple(_list(obj, "params", where)),
        expected=tuple(
            OutcomeRecord.from_tagged_json(item, f"{where}.expected_outcomes[{i}]")
            for i, item in enumerate(expected)
        ),
        actual=OutcomeRecord.from_tagged_json(
            _get(obj, "actual_outcome", where), f"{where}.actual_outcome"
        ),
        area=_str(obj, "area", where),
        kind=_str(obj, "kind", where),
        message=_str(obj, "message", where),
        reproducer=_str(obj, "reproducer", where),
        waived=_bool(obj, "waived", where),
        waiver_reason=_str(obj, "waiver_reason", where),
        calls=_calls(obj.get("calls", []), f"{where}.calls"),
        cause=str(obj.get("cause", "")),
        cell=tuple(str(x) for x in _optional_list(obj, "cell", where)),
    )


def _optional_list(obj: Mapping[str, object], key: str, where: str) -> list[object]:
    """``obj[key]`` as a list, empty when absent (a key an earlier schema version lacks)."""
    return _list(obj, key, where) if key in obj else []


def _calls(data: object, where: str) -> tuple[CallRecord, ...]:
    if not isinstance(data, list):
        raise ValueError(f"{where}: expected a list")
    calls = []
    for item, at in _items(data, where):
        obj = _as_object(item, at)
        answer = _get(obj, "answer", at)
        calls.append(
            CallRecord(
                _str(obj, "call", at),
                None if answer is None else OutcomeRecord.from_tagged_json(answer, f"{at}.answer"),
                *_timing(obj, at),
            )
        )
    return tuple(calls)


def _timing(obj: Mapping[str, object], where: str) -> tuple[int | None, float | None, float | None]:
    """A race call's session and times; all None for a sequential call."""
    if "session" not in obj:
        return None, None, None
    session, sent, answered = (obj.get(k) for k in ("session", "sent_ms", "answered_ms"))
    if not isinstance(session, int) or isinstance(session, bool):
        raise ValueError(f"{where}.session: expected an integer")
    for key, value in (("sent_ms", sent), ("answered_ms", answered)):
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{where}.{key}: expected a number")
    return session, float(sent), float(answered)  # type: ignore[arg-type]


def _verdict(obj: Mapping[str, object], where: str) -> Verdict:
    verdict = _str(obj, "verdict", where)
    if verdict not in VERDICTS:
        raise ValueError(f"{where}.verdict: expected one of {VERDICTS}, got {verdict!r}")
    return verdict


def _items(values: Sequence[object], where: str) -> list[tuple[object, str]]:
    return [(value, f"{where}[{i}]") for i, value in enumerate(values)]


def _str_list(obj: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    values = _list(obj, key, where)
    if not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}.{key}: expected a list of strings")
    return tuple(cast(list[str], values))


def finding_from_json(data: object, where: str = "finding") -> FindingRecord:
    """The inverse of :func:`finding_to_json`; ValueError naming ``where`` on bad input."""
    obj = _as_object(data, where)
    status = _str(obj, "status", where)
    if status not in FINDING_STATUSES:
        raise ValueError(f"{where}.status: expected one of {FINDING_STATUSES}, got {status!r}")
    return FindingRecord(
        id=_str(obj, "id", where),
        title=_str(obj, "title", where),
        area=_str(obj, "area", where),
        count=_int(obj, "count", where),
        methods=_str_list(obj, "methods", where),
        divergences=_str_list(obj, "divergences", where),
        example=_str(obj, "example", where),
        reproducer=_str(obj, "reproducer", where),
        status=status,
        cause=str(obj.get("cause", "")),
        seen_under_concurrency=obj.get("seen_under_concurrency") is True,
        seen_in_events=obj.get("seen_in_events") is True,
    )


def _message_from_json(data: object, where: str) -> MessageCount:
    obj = _as_object(data, where)
    return MessageCount(
        _str(obj, "method", where),
        _int(obj, "count", where),
        **_status_from_json(obj, where),  # type: ignore[arg-type]
    )


def _fixed_from_json(data: object, where: str) -> FixedFinding:
    obj = _as_object(data, where)
    return FixedFinding(_str(obj, "id", where), _str(obj, "title", where))


def _identity(d: Mapping[str, object], where: str) -> dict[str, str]:
    identity = _as_object(_get(d, "target_identity", where), f"{where}.target_identity")
    if not all(isinstance(v, str) for v in identity.values()):
        raise ValueError(f"{where}.target_identity: expected string values")
    return {k: cast(str, v) for k, v in identity.items()}


def _budget(d: Mapping[str, object], where: str) -> TimeBudget | None:
    if "budget" not in d:
        return None
    budget = _as_object(d["budget"], f"{where}.budget")
    at = f"{where}.budget"
    return TimeBudget(
        _float(budget, "seconds", at), _float(budget, "used", at), _str_list(budget, "left_out", at)
    )


def _version_2_fields(d: Mapping[str, object], where: str) -> dict[str, object]:
    """The keys schema version 2 added, read from ``d``."""
    coverage = _as_object(_get(d, "coverage", where), f"{where}.coverage")
    at = f"{where}.coverage.messages"
    findings = _items(_list(d, "findings", where), f"{where}.findings")
    return {
        "findings": tuple(finding_from_json(f, w) for f, w in findings),
        "messages": tuple(
            _message_from_json(m, w) for m, w in _items(_list(coverage, "messages", at), at)
        ),
        "target_identity": _identity(d, where),
        "release": _str(d, "release", where),
        "areas": _str_list(d, "areas", where),
        "baseline": _str(d, "baseline", where),
        "fixed": tuple(
            _fixed_from_json(f, w) for f, w in _items(_list(d, "fixed", where), f"{where}.fixed")
        ),
        "budget": _budget(d, where),
        "not_run": tuple(
            NotRun(_str(obj, "area", w), _str(obj, "reason", w))
            for item, w in _items(_optional_list(d, "not_run", where), f"{where}.not_run")
            for obj in (_as_object(item, w),)
        ),
    }


def summary_from_json(d: Mapping[str, object]) -> RunSummary:
    """The :class:`RunSummary` that :func:`summary_to_json` turned into ``d``.

    Reads schema versions 1 to 3 (a version-1 summary has no findings, identity or message
    counts). Raises ``ValueError`` naming the offending key when ``d`` is neither.
    """
    where = "summary"
    version = _get(d, "schema_version", where)
    if version not in (1, 2, SCHEMA_VERSION):
        raise ValueError(f"{where}.schema_version: expected 1 to {SCHEMA_VERSION}, got {version!r}")
    coverage = _as_object(_get(d, "coverage", where), f"{where}.coverage")
    cells = _items(_list(coverage, "cells", f"{where}.coverage"), f"{where}.coverage.cells")
    divergences = _items(_list(d, "divergences", where), f"{where}.divergences")
    extra = _version_2_fields(d, where) if version != 1 else {}
    return RunSummary(
        verdict=_verdict(d, where),
        target=_str(d, "target", where),
        protocol=_str(d, "protocol", where),
        profile=_str(d, "profile", where),
        seed=_optional_int(d, "seed", where),
        examples=_int(d, "examples", where),
        steps=_int(d, "steps", where),
        coverage=tuple(_cell_from_json(cell, at) for cell, at in cells),
        divergences=tuple(divergence_from_json(div, at) for div, at in divergences),
        started=_str(d, "started", where),
        duration_s=_float(d, "duration_s", where),
        error=_str(d, "error", where),
        tool_version=_str(d, "tool_version", where),
        strictness=_str(d, "strictness", where),
        **extra,  # type: ignore[arg-type]
    )
