"""The compatibility matrix: one column per target, one row per method, across several runs."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reports.files import atomic_write_text
from reports.findings import group_findings
from reports.records import FindingRecord, MessageCount, RunSummary
from reports.redact import Scrubbed, scrub

__all__ = [
    "MATRIX_HTML_FILE",
    "MATRIX_MARKDOWN_FILE",
    "NOT_EXERCISED",
    "OK",
    "WAIVED",
    "Matrix",
    "build_matrix",
    "cell_status",
    "matrix_markdown",
    "matrix_warnings",
    "render_matrix",
    "write_matrix",
]

MATRIX_HTML_FILE = "matrix.html"
MATRIX_MARKDOWN_FILE = "matrix.md"

OK = "ok"
"""Exercised on the target, no divergence."""
WAIVED = "waived"
"""Every divergence on the target is waived."""
NOT_EXERCISED = "not exercised"
"""Never called on the target, and no divergence recorded for it."""
UNREACHABLE = "unreachable"
"""Never called because a finding kept the run from reaching it (shown with the finding's id)."""


@dataclass(frozen=True)
class Matrix:
    """The matrix as data: ``cells[row][column]`` is the status of ``methods[row]`` on a target."""

    columns: tuple[str, ...]
    """One label per run: the target's product and API version (or URL), and protocol."""
    verdicts: tuple[str, ...]
    """The verdict of each column's run."""
    methods: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = ()
    """Facts in which the runs differ (profile, seed, strictness, release)."""
    links: tuple[tuple[str, ...], ...] = ()
    """Beside ``cells``: the finding a "diverges" cell links to (its id), else ``""``."""


def _findings(s: RunSummary) -> tuple[FindingRecord, ...]:
    """The run's findings (grouped anew for a version-1 summary, which has none recorded)."""
    return s.findings or group_findings(s.divergences)


def _judged(s: RunSummary, method: str) -> MessageCount | None:
    """The message's entry in a summary that judged it (schema version 3), else None."""
    return next((m for m in s.messages if m.method == method and m.status), None)


def cell_status(s: RunSummary, method: str) -> str:
    """``method`` on the run ``s``: ``diverges (n)``, ``waived``, ``ok``, ``unreachable (F-…)``
    or ``not exercised``.

    ``n`` counts the findings caused by ``method`` (a summary before version 3: that involve
    it); waived divergences only show when every divergence of the method is waived.
    """
    judged = _judged(s, method)
    if judged is not None:
        return _judged_status(s, judged)
    found = sum(1 for f in _findings(s) if method in f.methods)
    if found:
        return f"diverges ({found})"
    if any(d.method == method for d in s.divergences):
        return WAIVED
    exercised = any(c.method == method and c.count > 0 for c in s.coverage) or any(
        m.method == method and m.count > 0 for m in s.messages
    )
    return OK if exercised else NOT_EXERCISED


def _judged_status(s: RunSummary, m: MessageCount) -> str:
    if m.status == "diverges":
        return f"diverges ({len(m.findings)})"
    if m.status == "unreachable":
        return f"{UNREACHABLE} ({m.blocked_by})"
    if m.status == "not_exercised":
        return WAIVED if any(d.method == m.method for d in s.divergences) else NOT_EXERCISED
    return OK


def _link(s: RunSummary, method: str) -> str:
    """The finding a "diverges" cell links to: the first one ``method`` caused."""
    judged = _judged(s, method)
    if judged is not None:
        return judged.findings[0] if judged.findings else ""
    return next((f.id for f in _findings(s) if method in f.methods), "")


def _label(s: RunSummary) -> str:
    """A column's name: the target's address, product, version and API version when it said
    them, and the release judged against (two runs never share a heading unless all agree)."""
    identity = s.target_identity
    product = " ".join(
        v for v in (identity.get("product_brand"), identity.get("product_version")) if v
    )
    api = f" API {identity['api_version']}" if "api_version" in identity else ""
    release = s.release.partition(" (")[0]
    parts = [s.target, f"{product}{api}".strip(), release]
    name = " · ".join(p for p in parts if p)
    return f"{name} ({s.protocol})" if s.protocol else name


def _unique_labels(runs: Sequence[RunSummary]) -> tuple[str, ...]:
    """Each run's label, numbered where two runs would share one."""
    labels = [_label(s) for s in runs]
    counts = Counter(labels)
    seen: Counter[str] = Counter()
    unique = []
    for label in labels:
        seen[label] += 1
        unique.append(f"{label} #{seen[label]}" if counts[label] > 1 else label)
    return tuple(unique)


def _methods(summaries: Sequence[RunSummary]) -> tuple[str, ...]:
    """Every method any run knows of (all catalogue messages for version-2 summaries), or
    that diverged or was exercised on any target."""
    diverged = {d.method for s in summaries for d in s.divergences}
    known = {c.method for s in summaries for c in s.coverage}
    known |= {m.method for s in summaries for m in s.messages}
    return tuple(sorted(diverged | known))


COMPARED_FACTS = ("profile", "seed", "strictness", "release")
"""Facts of a run that should match across the columns of one matrix."""


def matrix_warnings(summaries: Sequence[RunSummary]) -> tuple[str, ...]:
    """One warning per fact in which the runs compared differ."""
    warnings = []
    for fact in COMPARED_FACTS:
        values = [str(getattr(s, fact)) for s in summaries]
        if len(set(values)) > 1:
            shown = ", ".join(f"{_label(s)}: {v}" for s, v in zip(summaries, values, strict=True))
            warnings.append(
                f"the runs differ in {fact} ({shown}); their columns are not like for like"
            )
    return tuple(warnings)


def build_matrix(summaries: Sequence[RunSummary | Scrubbed], secrets: Iterable[str] = ()) -> Matrix:
    """The matrix for ``summaries``, one column each, texts scrubbed of ``secrets``."""
    secrets = tuple(secrets)
    runs = [scrub(s, secrets).summary for s in summaries]
    methods = _methods(runs)
    return Matrix(
        columns=_unique_labels(runs),
        verdicts=tuple(s.verdict for s in runs),
        methods=methods,
        cells=tuple(tuple(cell_status(s, m) for s in runs) for m in methods),
        warnings=matrix_warnings(runs),
        links=tuple(tuple(_link(s, m) for s in runs) for m in methods),
    )


# --- HTML --------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1rem 2rem;color:#1f2328}
table{border-collapse:collapse}
th,td{border:1px solid #d0d7de;padding:.2rem .6rem;text-align:left}
thead th{background:#f6f8fa}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.s-ok,.v-conforms{background:#dafbe1}.s-diverges,.v-diverges{background:#ffebe9;color:#cf222e}
.s-waived,.v-error{background:#fff8c5}.s-not-exercised{color:#8c959f}
td.s-diverges,th.v-diverges{font-weight:700}
.note{color:#57606a}
.warning{background:#fff8c5;border:1px solid #d4a72c;padding:.4rem .6rem;border-radius:4px}
"""

_LEGEND = (
    "ok: exercised, no divergence · diverges (n): the cause of n findings · "
    "waived: every divergence waived · unreachable (F-…): never reached because of that "
    "finding · not exercised: never called"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _status_class(status: str) -> str:
    return "s-" + status.partition(" (")[0].replace(" ", "-")


def _html_cell(status: str, finding: str, report: str) -> str:
    """One cell; a "diverges" cell links to its finding in the run's report."""
    text = _e(status)
    if finding and report and status.startswith("diverges"):
        text = f'<a href="{_e(report)}#{_e(finding)}">{text}</a>'
    return f'<td class="{_status_class(status)}">{text}</td>'


def _html_table(m: Matrix, reports: Sequence[str]) -> str:
    heads = "".join(f'<th scope="col">{_e(c)}</th>' for c in m.columns)
    verdicts = "".join(f'<th class="v-{_e(v)}">{_e(v)}</th>' for v in m.verdicts)
    links = m.links or tuple(("",) * len(m.columns) for _ in m.methods)
    shown = list(reports) or [""] * len(m.columns)
    rows = "\n".join(
        f'<tr><th scope="row"><code>{_e(method)}</code></th>'
        + "".join(
            _html_cell(c, link, report) for c, link, report in zip(row, found, shown, strict=True)
        )
        + "</tr>"
        for method, row, found in zip(m.methods, m.cells, links, strict=True)
    )
    return (
        f'<table>\n<thead>\n<tr><th scope="col">Method</th>{heads}</tr>\n'
        f'<tr><th scope="row">Verdict</th>{verdicts}</tr>\n</thead>\n'
        f"<tbody>\n{rows}\n</tbody>\n</table>"
    )


def render_matrix(
    summaries: Sequence[RunSummary | Scrubbed],
    secrets: Iterable[str] = (),
    reports: Sequence[str] = (),
) -> str:
    """The matrix as a self-contained HTML page (inline CSS, no script); ``reports`` (one per
    run: its report.html as the page reaches it) makes each "diverges" cell a link to the
    finding."""
    m = build_matrix(summaries, secrets)
    table = _html_table(m, reports) if m.columns else '<p class="note">No runs.</p>'
    warnings = "".join(f'<p class="warning">Warning: {_e(w)}</p>' for w in m.warnings)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>XenAPI compatibility matrix — xapi-conformance</title>
<style>{_CSS}</style>
</head>
<body>
<h1>XenAPI compatibility matrix</h1>
<p class="note">{_e(_LEGEND)}</p>
{warnings}
{table}
</body>
</html>
"""


# --- Markdown ----------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = str.maketrans(
    {c: "\\" + c for c in "\\|`*[]<>"} | {"\n": " ", "\r": " ", "&": "&amp;"}
)


def _md(value: str) -> str:
    """``value`` safe in a GitHub-flavoured Markdown table cell."""
    return value.translate(_MARKDOWN_SPECIAL)


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def matrix_markdown(summaries: Sequence[RunSummary | Scrubbed], secrets: Iterable[str] = ()) -> str:
    """The matrix as a GitHub-flavoured Markdown table, the verdicts as its first row."""
    m = build_matrix(summaries, secrets)
    lines = ["# XenAPI compatibility matrix", "", _LEGEND, ""]
    lines += [f"> **Warning:** {_md(w)}" for w in m.warnings] + ([""] if m.warnings else [])
    if not m.columns:
        return "\n".join([*lines, "No runs.", ""])
    lines += [
        _md_row(["Method", *(_md(c) for c in m.columns)]),
        _md_row(["---"] * (len(m.columns) + 1)),
        _md_row(["**verdict**", *(f"**{_md(v)}**" for v in m.verdicts)]),
    ]
    lines += [
        _md_row([_md(method), *(_md(c) for c in row)])
        for method, row in zip(m.methods, m.cells, strict=True)
    ]
    return "\n".join([*lines, ""])


def write_matrix(
    report_dir: Path,
    summaries: Sequence[RunSummary | Scrubbed],
    secrets: Iterable[str] = (),
    reports: Sequence[str] = (),
) -> Path:
    """Write ``matrix.html`` and ``matrix.md`` atomically in ``report_dir``; return the former.
    ``reports``: each run's report.html, relative to ``report_dir`` (see ``render_matrix``)."""
    clean = [scrub(s, secrets) for s in summaries]
    html_text = render_matrix(clean, reports=reports)
    markdown = matrix_markdown(clean)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(report_dir / MATRIX_MARKDOWN_FILE, markdown)
    path = report_dir / MATRIX_HTML_FILE
    atomic_write_text(path, html_text)
    return path
