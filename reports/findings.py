"""Findings: divergences grouped by the difference they show, and compared with a baseline.

Two divergences are one finding when they differ only in method, VM, power state or values and
show the same difference: the same error code with the same parameter differing the same way,
the same VM field going stale, the same code where xapi refuses… A finding's id is derived from
that difference alone, so the same bug found by another seed, or another run, has the same id.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from reports.records import (
    DivergenceRecord,
    FindingRecord,
    FixedFinding,
    OutcomeRecord,
    RunSummary,
    divergence_id,
)

__all__ = [
    "LINEARIZABLE",
    "REPRODUCERS_DIR",
    "TYPED_AS_XAPI",
    "Difference",
    "baseline_findings",
    "compare_with_baseline",
    "difference",
    "finding_id",
    "group_findings",
    "judged_by",
    "with_findings",
]

REPRODUCERS_DIR = "reproducers"
"""The folder of the report directory that holds one reproducer script per finding."""

_RECORD_KINDS = frozenset({"state", "allowed_operations"})
"""Divergence kinds that compare a VM field after a call (the final call is ``VM.get_<field>``)."""

_SUITE_REF = re.compile(r"\b(vm|task|session)\d+\b")


@dataclass(frozen=True)
class Difference:
    """What a divergence shows, independent of method, VM and values: ``key`` groups, ``title``
    says it in one line."""

    key: str
    title: str


def _plain_refs(text: str) -> str:
    """``text`` with the suite's ref names (vm1, task2…) made anonymous."""
    return _SUITE_REF.sub(lambda m: m.group(1).upper(), text)


def _edits(expected: str, actual: str) -> tuple[tuple[str, str], ...]:
    """The (xapi's, target's) pieces that differ between two texts, in order."""
    matcher = difflib.SequenceMatcher(a=expected, b=actual, autojunk=False)
    return tuple(
        (expected[i1:i2], actual[j1:j2])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    )


def _param_difference(code: str, expected: Sequence[str], actual: Sequence[str]) -> Difference:
    """Same code and arity: which parameter differs, and how."""
    pairs = [
        (i, _plain_refs(e), _plain_refs(a))
        for i, (e, a) in enumerate(zip(expected, actual, strict=True))
    ]
    differing = [(i, e, a) for i, e, a in pairs if e != a]
    if not differing:
        return Difference(f"params:{code}:order", f"{code}: parameters differ from xapi's")
    index, e, a = differing[0]
    edits = _edits(e, a)
    changed = sum(len(x) + len(y) for x, y in edits)
    where = f"{code}: parameter {index + 1}"
    if len(edits) == 1 or changed * 2 < len(e) + len(a):
        shown = {(x, y) for x, y in edits}
        if len(shown) == 1:
            removed, added = next(iter(shown))
            title = f"{where} has {added!r} where xapi has {removed!r}"
        else:
            title = f"{where} is spelled differently from xapi's ({e!r} vs {a!r})"
        return Difference(f"params:{code}:{index}:{sorted(shown)!r}", title)
    return Difference(f"params:{code}:{index}:value", f"{where} differs from xapi's")


def _closest(expected: Sequence[OutcomeRecord], actual: OutcomeRecord) -> OutcomeRecord | None:
    """The expected outcome most like ``actual``: same code, then same success or failure."""
    same_code = [
        e for e in expected if not e.ok and not actual.ok and e.error[0] == actual.error[0]
    ]
    same_side = [e for e in expected if e.ok == actual.ok]
    return next(iter(same_code or same_side), None)


UNKNOWN_CODES = frozenset({"MESSAGE_METHOD_UNKNOWN", "MESSAGE_NOT_IMPLEMENTED"})
"""Codes of a target that does not implement a message at all: one finding per message."""


def _failure_difference(
    expected: Sequence[OutcomeRecord], actual: OutcomeRecord, method: str = ""
) -> Difference:
    code, params = actual.error[0], actual.error[1:]
    if code in UNKNOWN_CODES and method and all(e.ok or e.error[0] != code for e in expected):
        return Difference(f"unknown:{method}", f"the target does not implement {method} ({code})")
    closest = _closest(expected, actual)
    if closest is None:
        return Difference(f"refuses:{code}", f"the target refuses with {code} calls xapi accepts")
    want_code, want = closest.error[0], closest.error[1:]
    if want_code != code:
        return Difference(
            f"code:{want_code}:{code}",
            f"the target fails with {code} where xapi fails with {want_code}",
        )
    if len(want) != len(params):
        return Difference(
            f"arity:{code}:{len(want)}:{len(params)}",
            f"{code} carries {len(params)} parameter(s) where xapi's carries {len(want)}",
        )
    return _param_difference(code, want, params)


def difference(d: DivergenceRecord) -> Difference:
    """The difference ``d`` shows (see the module docstring)."""
    if d.kind == "race":  # the concurrency area: a history no order of the calls explains
        return _race_difference(d)
    if _in_event_stream(d):
        return Difference(f"events:{d.kind}", _event_title(d.kind))
    if d.kind in _RECORD_KINDS or _stale_getter(d):
        return _field_difference(d.method.removeprefix("VM.get_"))
    if not d.actual.ok and not "".join(d.actual.error[:1]):  # not read as a XenAPI answer
        return Difference(
            f"malformed:{d.method}", f"{d.method} answers with a body that is not a XenAPI answer"
        )
    if not d.actual.ok:
        return _failure_difference(d.expected, d.actual, d.method)
    codes = sorted({e.error[0] for e in d.expected if not e.ok})
    if codes and not any(e.ok for e in d.expected):
        refused = " or ".join(codes)
        return Difference(
            f"accepts:{'|'.join(codes)}", f"the target accepts calls xapi refuses with {refused}"
        )
    return Difference(f"value:{d.method}", f"{d.method} returns a different value from xapi's")


EVENT_CALLS = ("event.from", "event.next")
"""The calls of the events area's watch: its divergences are about the event stream."""


def _in_event_stream(d: DivergenceRecord) -> bool:
    """Whether ``d`` is about the event stream (the events area's other calls are judged as
    any area's)."""
    return d.area == "events" and d.method in EVENT_CALLS


def _field_difference(field: str) -> Difference:
    return Difference(
        f"field:{field}", f"the VM's {field} differs from xapi's after a call (stale or wrong)"
    )


LINEARIZABLE = "a linearizable history"
TYPED_AS_XAPI = "an answer typed as xapi types it"
"""What a race's divergence expects when no single answer of the model stands for it."""
_FINAL_FIELD = re.compile(r"the final records differ: [^:]+: field (\w+)")
_READ_FIELD = re.compile(r"VM\.get_record: field (\w+)")


def _race_difference(d: DivergenceRecord) -> Difference:
    """What a race shows, as a sequential divergence would show it: the field the final records
    differ on, or how the culprit's answer differs from the model's at the deepest order tried
    (so a race and a sequential divergence of one fault share a key). A race without either is
    keyed by its culprit's method and answer."""
    final = _FINAL_FIELD.search(d.message)
    if final:
        return _field_difference(final.group(1))
    placeholder = any(e.ok and e.value in (LINEARIZABLE, TYPED_AS_XAPI) for e in d.expected)
    if not placeholder:
        if d.actual.ok and d.method.startswith("VM.get_") and all(e.ok for e in d.expected):
            read = _READ_FIELD.search(d.message) if d.method == "VM.get_record" else None
            return _field_difference(read.group(1) if read else d.method.removeprefix("VM.get_"))
        return difference(replace(d, kind="outcome", cause=d.method))
    answer = "success" if d.actual.ok else d.actual.error[0]
    return Difference(
        f"race:{d.method}:{answer}",
        f"a race: no order of the concurrent calls explains {d.method} answering {answer}",
    )


def _stale_getter(d: DivergenceRecord) -> bool:
    """A field getter answering a well-formed value other than xapi's, blamed on the call that
    wrote the field: the same difference as the record showing the field stale."""
    return (
        d.kind == "outcome"
        and d.actual.ok
        and d.method.startswith("VM.get_")
        and d.cause not in ("", d.method)
    )


_EVENT_TITLES = {
    "missing-add": "event.from does not report a VM the suite created (add)",
    "missing-mod": "event.from does not report a change of a VM a call made (mod)",
    "missing-del": "event.from does not report a VM the suite destroyed (del)",
    "wrong-operation": "event.from reports an object with another operation than xapi's",
    "unchanged-object": "event.from reports an object that did not change since the token "
    "(events repeated)",
    "repeated-object": "event.from reports one object more than once in an answer",
    "class-filter": "event.from answers objects outside the subscription",
    "snapshot": "an event's snapshot differs from the object's record (stale or wrong)",
    "task-event": "the event of an ended task differs from the task xapi leaves",
    "task-destroy": "a destroyed task is still there",
    "logout": "a logged-out session's event.from does not fail with SESSION_INVALID",
}
"""Titles of the events area's findings, by the kind of event problem."""


_NEXT_TITLES = {
    "next-repeated-event": "event.next answers again an event it answered before",
    "next-event-order": "event.next answers an object's add after its other events, or its "
    "del before them",
    "next-event-id": "event.next's event ids are not positions in its queue",
}
"""Titles of the legacy event.next's own findings; its others are event.from's, renamed."""


def _event_title(kind: str) -> str:
    if kind.startswith("next-"):
        shared = _event_title(kind.removeprefix("next-")).replace("event.from", "event.next")
        return _NEXT_TITLES.get(kind, shared)
    return _EVENT_TITLES.get(kind, f"event.from differs from xapi's ({kind})")


def finding_id(key: str) -> str:
    """A short id derived from a difference's key alone (stable across runs and seeds)."""
    return "F-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def _example_size(d: DivergenceRecord) -> tuple[int, int]:
    """How long a divergence's reproducer is: shorter is the better example."""
    return (d.reproducer.count("\n"), len(d.reproducer))


def _finding(diff: Difference, members: Sequence[tuple[str, DivergenceRecord]]) -> FindingRecord:
    sequential = [m for m in members if not _folded(m[1])] or list(members)
    example_id, _ = min(sequential, key=lambda m: _example_size(m[1]))
    identifier = finding_id(diff.key)
    areas = Counter(d.area for _, d in sequential)
    causes = Counter(d.blamed for _, d in sequential)
    return FindingRecord(
        id=identifier,
        title=diff.title,
        area=areas.most_common(1)[0][0],
        count=len(members),
        methods=tuple(sorted({d.method for _, d in members})),
        divergences=tuple(i for i, _ in members),
        example=example_id,
        reproducer=f"{REPRODUCERS_DIR}/{identifier}.py",
        cause=causes.most_common(1)[0][0],
        seen_under_concurrency=any(d.kind == "race" for _, d in members),
        seen_in_events=any(_in_event_stream(d) for _, d in members) and sequential != members,
    )


def _folded(d: DivergenceRecord) -> bool:
    """Whether ``d`` shows a finding another way (a race, the event stream)."""
    return d.kind == "race" or _in_event_stream(d)


_CALLED = re.compile(r"\b(?:Async\.)?(VM\.\w+)\(")


def _explains(members: Sequence[tuple[str, DivergenceRecord]], race: DivergenceRecord) -> bool:
    """Whether a sequential finding explains a race: the race's calls include the finding's
    cause, sent sequentially the call is already known to go wrong."""
    raced = {race.method} | {m for c in race.calls for m in _CALLED.findall(c.call)}
    return any(d.blamed in raced for _, d in members)


def _fold_races(
    groups: dict[str, tuple[Difference, list[tuple[str, DivergenceRecord]]]],
    races: Sequence[tuple[str, DivergenceRecord]],
) -> None:
    """Each race that shows no difference a sequential divergence could show goes into the
    first sequential finding that explains it, else into a race finding of its own."""
    sequential = [
        members
        for members in (g[1] for g in groups.values())
        if any(d.kind != "race" for _, d in members)
    ]
    for member in races:
        home = next((m for m in sequential if _explains(m, member[1])), None)
        if home is None:
            diff = difference(member[1])
            home = groups.setdefault(diff.key, (diff, []))[1]
        home.append(member)


_SNAPSHOT_FIELD = re.compile(r"(?:field |result\.)(\w+) in the snapshot of ")


def _explains_event(
    key: str, members: Sequence[tuple[str, DivergenceRecord]], event: DivergenceRecord
) -> bool:
    """Whether a finding of a VM field (key ``field:<name>``) explains an event divergence:
    the event's change was made by the call the finding blames (the setter that wrote
    nothing owes no event, its stale value is in the snapshot); a snapshot's must differ on
    the finding's field."""
    if not key.startswith("field:") or not event.cause:
        return False
    if event.kind.removeprefix("next-") == "snapshot":
        shown = _SNAPSHOT_FIELD.search(event.message)
        if shown is None or key != f"field:{shown.group(1)}":
            return False
    return any(d.blamed == event.cause for _, d in members if not _folded(d))


def _fold_events(
    groups: dict[str, tuple[Difference, list[tuple[str, DivergenceRecord]]]],
    events: Sequence[tuple[str, DivergenceRecord]],
) -> None:
    """Each event divergence a field's finding explains goes into it, else into the event
    stream's finding of its kind."""
    for member in events:
        home = next(
            (m for key, (_, m) in groups.items() if _explains_event(key, m, member[1])), None
        )
        if home is None:
            diff = difference(member[1])
            home = groups.setdefault(diff.key, (diff, []))[1]
        home.append(member)


def _called(method: str) -> str:
    return method.removeprefix("Async.")


def _fold_refusals(
    groups: dict[str, tuple[Difference, list[tuple[str, DivergenceRecord]]]],
) -> None:
    """A message the target refuses with one code where xapi accepts it is refused with that
    code whatever the state: where xapi refuses it with another code, the target's refusal is
    that finding again. A VM.start that always fails with NO_HOSTS_AVAILABLE answers so for a
    snapshot and for a destroyed VM too, where xapi answers VM_IS_SNAPSHOT and HANDLE_INVALID:
    xapi checks the handle and the operation before placement, a server that does not start
    VMs checks nothing. A refusal with the wrong code of a message never refused where xapi
    accepts it stays a finding of its own."""
    for key, (diff, members) in list(groups.items()):
        refused = (
            groups.get(f"refuses:{key.rsplit(':', 1)[1]}") if key.startswith("code:") else None
        )
        if refused is None:
            continue
        refusing = {_called(d.blamed) for _, d in refused[1]}
        moved = [m for m in members if _called(m[1].blamed) in refusing]
        refused[1].extend(moved)
        kept = [m for m in members if m not in moved]
        if kept:
            groups[key] = (diff, kept)
        else:
            del groups[key]


def group_findings(divergences: Sequence[DivergenceRecord]) -> tuple[FindingRecord, ...]:
    """The findings of the active (not waived) ``divergences``, most frequent first.

    Divergence ids are positions in ``divergences`` (``D1`` is the first), as in summary.json.
    """
    groups: dict[str, tuple[Difference, list[tuple[str, DivergenceRecord]]]] = {}
    races, events = [], []
    for index, d in enumerate(divergences):
        if d.waived:
            continue
        diff = difference(d)
        if diff.key.startswith("race:"):
            races.append((divergence_id(index), d))
            continue
        if _in_event_stream(d):
            events.append((divergence_id(index), d))
            continue
        groups.setdefault(diff.key, (diff, []))[1].append((divergence_id(index), d))
    _fold_refusals(groups)
    _fold_races(groups, races)
    _fold_events(groups, events)
    findings = [_finding(diff, members) for diff, members in groups.values()]
    return tuple(sorted(findings, key=lambda f: (-f.count, f.id)))


def compare_with_baseline(
    findings: Sequence[FindingRecord],
    baseline: Sequence[FindingRecord],
    judged: Callable[[FindingRecord], bool] = lambda _f: True,
) -> tuple[tuple[FindingRecord, ...], tuple[FixedFinding, ...]]:
    """``findings`` marked ``known`` (in ``baseline``) or ``new``, and the baseline's findings
    this run no longer shows where it ``judged`` them (fixed): one this run did not judge (its
    area or its messages left out by ``-k`` or a time budget) is not fixed."""
    known = {f.id for f in baseline}
    seen = {f.id for f in findings}
    marked = tuple(replace(f, status="known" if f.id in known else "new") for f in findings)
    fixed = tuple(FixedFinding(f.id, f.title) for f in baseline if f.id not in seen and judged(f))
    return marked, fixed


def judged_by(s: RunSummary) -> Callable[[FindingRecord], bool]:
    """Whether run ``s`` judged where a finding showed: its area ran, and one of its VM
    messages (its cause, or where it was seen) was called, if it names any."""
    called = {m.method for m in s.messages if m.count}
    listed = {m.method for m in s.messages}

    def judged(f: FindingRecord) -> bool:
        if s.areas and f.area not in s.areas:
            return False
        messages = {f.cause, *f.methods} & listed
        return not messages or bool(messages & called)

    return judged


def baseline_findings(baseline: RunSummary) -> tuple[FindingRecord, ...]:
    """The findings of a baseline run (grouped anew when it is a version-1 summary)."""
    return baseline.findings or group_findings(baseline.divergences)


def with_findings(
    s: RunSummary, baseline: RunSummary | None = None, baseline_path: str = ""
) -> RunSummary:
    """``s`` with its findings grouped and, when a baseline is given, marked new or known."""
    findings = group_findings(s.divergences)
    if baseline is None:
        return replace(s, findings=findings)
    marked, fixed = compare_with_baseline(findings, baseline_findings(baseline), judged_by(s))
    return replace(s, findings=marked, baseline=baseline_path, fixed=fixed)
