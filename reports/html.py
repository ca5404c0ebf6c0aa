"""``report.html``: one self-contained page for engineers (inline CSS, no script, no assets)."""

from __future__ import annotations

import difflib
import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from reports.files import atomic_write_text
from reports.records import (
    CoverageCell,
    DivergenceRecord,
    FindingRecord,
    OutcomeRecord,
    RunSummary,
    divergence_id,
    json_safe,
)
from reports.redact import Scrubbed, scrub

__all__ = ["HTML_FILE", "render_html", "write_html"]

HTML_FILE = "report.html"
"""The file name :func:`write_html` writes in the report directory."""

POWER_STATES = ("Halted", "Paused", "Running", "Suspended")
"""XenAPI power states in display order; any other state follows, alphabetically."""

VM_KINDS = ("plain", "template", "default_template", "snapshot")
"""VM kinds in display order; any other kind follows, alphabetically."""

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:80rem;
padding:1rem 2rem;color:#1f2328;background:#fff}
h1{font-size:1.5rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de}h3{font-size:1.05rem}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:.5rem;margin:.25rem 0;
overflow:auto;white-space:pre-wrap;word-break:break-word}
pre.script{max-height:30rem;white-space:pre;word-break:normal}
table{border-collapse:collapse;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.2rem .5rem;text-align:left;vertical-align:top}
thead th{background:#f6f8fa}
.banner{padding:.75rem 1rem;border-radius:6px;font-size:1.4rem;font-weight:700;color:#fff}
.banner small{display:block;font-size:.9rem;font-weight:400}
.v-conforms{background:#1a7f37}.v-diverges{background:#cf222e}.v-error{background:#9a6700}
.facts th{background:#f6f8fa;width:10rem}
.divergence{border:1px solid #d0d7de;border-left:6px solid #cf222e;border-radius:4px;
padding:.25rem 1rem .75rem;margin:1rem 0}
.divergence.waived{border-left-color:#9a6700;background:#fffbeb}
.badge{display:inline-block;border-radius:3px;padding:0 .4rem;font-size:.8rem;font-weight:700;
color:#fff;background:#9a6700;vertical-align:middle}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
.sides h4{margin:.5rem 0 .25rem}
ol.outcomes{margin:0;padding-left:1.5rem}
.ok{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.coverage td{text-align:right;min-width:2.5rem}
.coverage td.hit{background:#dafbe1}
.coverage td.miss{background:#ffebe9;color:#cf222e;font-weight:700}
.coverage td.absent{color:#8c959f;text-align:center}
.history td.num{text-align:right;white-space:nowrap}
.coverage colgroup.kind{border-left:3px solid #57606a}
.note{color:#57606a}
.identity{font-size:1.05rem;margin:.25rem 0 1rem}
.finding{border:1px solid #d0d7de;border-left:6px solid #cf222e;border-radius:4px;
padding:.25rem 1rem .75rem;margin:1rem 0}
.finding.known{border-left-color:#9a6700}
.finding h3 .fid{font:600 .9rem ui-monospace,monospace;color:#57606a}
mark{background:#ffd8b5;border-radius:2px;padding:0 1px}
.status-new{background:#cf222e}.status-known{background:#9a6700}
details.divergence-list>summary{cursor:pointer;font-weight:600}
"""


def _e(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes included)."""
    return html.escape(str(value), quote=True)


def _json(value: object) -> str:
    """``value`` as JSON text: one line when short, indented otherwise."""
    text = json.dumps(json_safe(value), ensure_ascii=False)
    return text if len(text) <= 80 else json.dumps(json_safe(value), ensure_ascii=False, indent=2)


def _ordered(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    """The distinct ``values``: those in ``preferred`` first in its order, then the rest sorted."""
    present = set(values)
    return [v for v in preferred if v in present] + sorted(present.difference(preferred))


def _duration(seconds: float) -> str:
    """A human duration: ``12.3 s``, ``4 min 05 s`` or ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# --- header ------------------------------------------------------------------------------------


def _banner(s: RunSummary) -> str:
    active, waived = len(s.active_divergences), len(s.waived_divergences)
    if s.verdict == "error":
        detail = "The run did not complete; the results below are partial."
    else:
        detail = f"{len(s.findings)} finding(s) from {active} divergence(s), {waived} waived"
        if s.baseline:
            detail += f"; {len(s.new_findings)} new against the baseline"
        if any(c.status for c in s.coverage):
            detail += f"; {s.judged_note}"
    if s.not_run_note:
        detail += f" ({s.not_run_note})"
    parts = [
        f'<div class="banner v-{_e(s.verdict)}" role="status">{_e(s.verdict.upper())}',
        f"<small>{_e(s.target)} · {_e(detail)}</small></div>",
    ]
    if s.verdict == "error":
        reason = s.error or "(no reason recorded)"
        parts.append(f'<h2 id="error">Error</h2>\n<pre class="error">{_e(reason)}</pre>')
    return "\n".join(parts)


def identity_text(s: RunSummary) -> str:
    """One line naming the target: product and version, API version, xapi version, hostname."""
    identity = s.target_identity
    product = " ".join(
        v for v in (identity.get("product_brand"), identity.get("product_version")) if v
    )
    parts = [
        product,
        f"API {identity['api_version']}" if "api_version" in identity else "",
        f"xapi {identity['xapi']}" if "xapi" in identity else "",
        identity.get("hostname", ""),
    ]
    return " · ".join(p for p in parts if p) or "identity not read"


def _identity(s: RunSummary) -> str:
    judged = f" — judged against {s.release}" if s.release else ""
    return (
        f'<p class="identity" id="identity"><strong>{_e(identity_text(s))}</strong>{_e(judged)}</p>'
    )


def _budget(s: RunSummary) -> str:
    """The time budget, the time used and what was left out to keep to it."""
    b = s.budget
    if b is None:
        return ""
    over = b.used > b.seconds
    used = f"{_duration(b.used)}{' — over the budget' if over else ''}"
    left = (
        "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in b.left_out) + "</ul>"
        if b.left_out
        else '<p class="note">Nothing: every selected cell and example ran.</p>'
    )
    return (
        f'<h2 id="budget">Time budget</h2>\n<table class="facts">\n'
        f'<tr><th scope="row">Budget</th><td>{_e(_duration(b.seconds))}</td></tr>\n'
        f'<tr><th scope="row">Used</th><td class="{"fail" if over else "ok"}">{_e(used)}</td></tr>\n'
        f"</table>\n<h3>Left out</h3>\n{left}"
    )


def _facts(s: RunSummary) -> str:
    facts = [
        ("Target", s.target),
        *((f"Target {k}", v) for k, v in s.target_identity.items()),
        ("Judged against", s.release or "unknown"),
        ("Protocol", s.protocol),
        ("Profile", s.profile),
        ("Seed", "none recorded" if s.seed is None else str(s.seed)),
        ("Examples", str(s.examples)),
        ("Steps", str(s.steps)),
        ("Started", s.started),
        ("Duration", _duration(s.duration_s)),
        *((("Time budget", _duration(s.budget.seconds)),) if s.budget else ()),
        ("Strictness", s.strictness),
        ("Tool version", s.tool_version or "unknown"),
    ]
    rows = "\n".join(f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in facts)
    return f'<h2 id="run">Run</h2>\n<table class="facts">\n{rows}\n</table>'


# --- divergences -------------------------------------------------------------------------------


def _outcome(outcome: OutcomeRecord) -> str:
    if outcome.ok:
        return f'<span class="ok">success</span><pre>{_e(_json(outcome.value))}</pre>'
    code, *params = outcome.error
    shown = f"<pre>{_e(_json(params))}</pre>" if params else ""
    return f'<span class="fail">failure</span> <code>{_e(code)}</code>{shown}'


def _expected(outcomes: Sequence[OutcomeRecord]) -> str:
    if not outcomes:
        return '<p class="note">The model allowed no outcome.</p>'
    if len(outcomes) == 1:
        return _outcome(outcomes[0])
    items = "".join(f"<li>{_outcome(o)}</li>" for o in outcomes)
    return f'<p class="note">Any one of:</p><ol class="outcomes">{items}</ol>'


def _reproducer(d: DivergenceRecord, anchor: str) -> str:
    script = f"repro_{anchor}.py"
    note = (
        f'<p class="note">Standalone script: save it as <code>{_e(script)}</code> and run '
        f"<code>python3 {_e(script)}</code>.</p>"
    )
    return f'<h4>Reproducer</h4>\n{note}\n<pre class="script"><code>{_e(d.reproducer)}</code></pre>'


def _divergence(d: DivergenceRecord, anchor: str) -> str:
    css, badge, reason = "divergence", "", ""
    if d.waived:
        css, badge = "divergence waived", ' <span class="badge">WAIVED</span>'
        reason = f"<p><strong>Waived:</strong> {_e(d.waiver_reason or '(no reason given)')}</p>\n"
    return f"""<section class="{css}" id="{_e(anchor)}">
<h3>{_e(anchor)}. <code>{_e(d.method)}</code>{badge}</h3>
{reason}<table class="facts">
<tr><th scope="row">Area</th><td>{_e(d.area)}</td></tr>
<tr><th scope="row">Kind</th><td>{_e(d.kind)}</td></tr>
<tr><th scope="row">Message</th><td>{_e(d.message)}</td></tr>
<tr><th scope="row">Params</th><td><pre>{_e(_json(d.params))}</pre></td></tr>
</table>
{_race_history(d)}<div class="sides">
<div><h4>Expected (model)</h4>{_expected(d.expected)}</div>
<div><h4>Actual (target)</h4>{_outcome(d.actual)}</div>
</div>
{_reproducer(d, anchor)}
</section>"""


CHARACTER_DIFF_LIMIT = 4000
"""Answers longer than this together are compared line by line: a character diff of two long
answers (a pool's records) takes time quadratic in their length."""


def _marked(text: str, other: str) -> str:
    """``text`` escaped, with the pieces that differ from ``other`` in ``<mark>``: characters
    for short answers, whole lines of long ones."""
    if len(text) + len(other) <= CHARACTER_DIFF_LIMIT:
        return _marked_pieces(list(text), list(other))
    return _marked_pieces(text.splitlines(keepends=True), other.splitlines(keepends=True))


def _marked_pieces(pieces: list[str], others: list[str]) -> str:
    matcher = difflib.SequenceMatcher(a=pieces, b=others, autojunk=False)
    marked = []
    for tag, i1, i2, _j1, _j2 in matcher.get_opcodes():
        piece = _e("".join(pieces[i1:i2]))
        marked.append(piece if tag == "equal" or not piece else f"<mark>{piece}</mark>")
    return "".join(marked)


def _closest(expected: Sequence[OutcomeRecord], actual: OutcomeRecord) -> OutcomeRecord | None:
    same = [e for e in expected if e.ok == actual.ok]
    return same[0] if same else (expected[0] if expected else None)


def _diff_sides(d: DivergenceRecord) -> str:
    """Expected and actual side by side, with what differs highlighted."""
    want = _closest(d.expected, d.actual)
    got_text = _json(d.actual.as_tagged_json())
    want_text = _json(want.as_tagged_json()) if want else ""
    others = [e for e in d.expected if e is not want]
    more = (
        f'<p class="note">xapi may also answer: {_e("; ".join(_json(o.as_tagged_json()) for o in others))}</p>'
        if others
        else ""
    )
    return (
        '<div class="sides">'
        f'<div><h4>Expected (xapi)</h4><pre class="expected">{_marked(want_text, got_text)}</pre>{more}</div>'
        f'<div><h4>Actual (target)</h4><pre class="actual">{_marked(got_text, want_text)}</pre></div>'
        "</div>"
    )


def _race_history(d: DivergenceRecord) -> str:
    """A race's calls as a table, one row per call: its session, the call, when it was sent
    and answered, and the answer; empty for a sequential divergence."""
    timed = [c for c in d.calls if c.session is not None]
    if not timed:
        return ""
    rows = "\n".join(
        f"<tr><td>{c.session}</td><td><code>{_e(c.call)}</code></td>"
        f'<td class="num">{c.sent_ms:g}</td><td class="num">{c.answered_ms:g}</td>'
        f"<td>{_outcome(c.answer) if c.answer else ''}</td></tr>"
        for c in timed
    )
    head = (
        "<tr><th>Session</th><th>Call</th><th>Sent (ms)</th><th>Answered (ms)</th>"
        "<th>Answer</th></tr>"
    )
    return (
        "<h4>The race's calls, session by session</h4>\n"
        f'<table class="history">\n<thead>{head}</thead>\n<tbody>\n{rows}\n</tbody>\n</table>\n'
    )


def _finding(s: RunSummary, f: FindingRecord) -> str:
    example = s.divergence(f.example)
    status = (
        f' <span class="badge status-{_e(f.status)}">{_e(f.status.upper())}</span>'
        if f.status
        else ""
    )
    links = ", ".join(f'<a href="#{_e(i)}">{_e(i)}</a>' for i in f.divergences)
    css = "finding known" if f.status == "known" else "finding"
    return f"""<section class="{css}" id="{_e(f.id)}">
<h3><span class="fid">{_e(f.id)}</span> {_e(f.title)}{status}</h3>
<table class="facts">
<tr><th scope="row">Area</th><td>{_e(f.area)}</td></tr>
<tr><th scope="row">Divergences</th><td>{f.count}: {links}</td></tr>
<tr><th scope="row">Methods</th><td>{", ".join(f"<code>{_e(m)}</code>" for m in f.methods)}</td></tr>
<tr><th scope="row">Example</th><td>{_e(example.message)}</td></tr>
<tr><th scope="row">Reproducer</th><td><a class="reproducer" href="{_e(f.reproducer)}">{_e(f.reproducer)}</a>
<span class="note">run <code>python3 {_e(f.reproducer)} [URL]</code> with root's password in the variable its docstring names: exit 1 while it diverges, 0 once fixed, 2 when the target cannot be reached</span></td></tr>
</table>
{_race_history(example)}{_diff_sides(example)}
</section>"""


def _findings(s: RunSummary) -> str:
    heading = f'<h2 id="findings">Findings ({len(s.findings)})</h2>'
    fixed = "".join(f"<li><code>{_e(f.id)}</code> {_e(f.title)}</li>" for f in s.fixed)
    fixed_html = f'<h3 id="fixed">Fixed since the baseline</h3><ul>{fixed}</ul>' if fixed else ""
    if not s.findings:
        return f'{heading}\n<p class="note">None.</p>{fixed_html}'
    return "\n".join([heading, *(_finding(s, f) for f in s.findings), fixed_html])


def _index(divergences: Sequence[tuple[str, DivergenceRecord]]) -> str:
    rows = "\n".join(
        f'<tr><td><a href="#{_e(a)}">{_e(a)}</a></td><td><code>{_e(d.method)}</code></td>'
        f"<td>{_e(d.area)}</td><td>{_e(d.kind)}</td><td>{_e(d.message.partition(chr(10))[0])}</td>"
        "</tr>"
        for a, d in divergences
    )
    head = "<tr><th>#</th><th>Method</th><th>Area</th><th>Kind</th><th>Message</th></tr>"
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def _divergence_section(
    title: str, anchor: str, numbered: Sequence[tuple[str, DivergenceRecord]]
) -> str:
    heading = f'<h2 id="{anchor}">{_e(title)} ({len(numbered)})</h2>'
    if not numbered:
        return f'{heading}\n<p class="note">None.</p>'
    bodies = "\n".join(_divergence(d, a) for a, d in numbered)
    return (
        f'{heading}\n{_index(numbered)}\n<details class="divergence-list">'
        f"<summary>Each divergence, with its own reproducer</summary>\n{bodies}\n</details>"
    )


# --- coverage ----------------------------------------------------------------------------------


def _coverage_counts(cells: Iterable[CoverageCell]) -> dict[tuple[str, str, str], int]:
    counts: dict[tuple[str, str, str], int] = {}
    for c in cells:
        key = (c.method, c.vm_kind, c.power_state)
        counts[key] = counts.get(key, 0) + c.count
    return counts


def _coverage_columns(cells: Sequence[CoverageCell]) -> list[tuple[str, list[str]]]:
    """Per VM kind, the power states that kind has cells for."""
    kinds = _ordered((c.vm_kind for c in cells), VM_KINDS)
    return [
        (k, _ordered((c.power_state for c in cells if c.vm_kind == k), POWER_STATES)) for k in kinds
    ]


def _coverage_cell(count: int | None) -> str:
    if count is None:
        return '<td class="absent" title="not in the coverage space">·</td>'
    if count == 0:
        return '<td class="miss" title="not exercised">0</td>'
    return f'<td class="hit">{count}</td>'


def _coverage_head(columns: Sequence[tuple[str, list[str]]]) -> str:
    groups = "".join(f'<colgroup class="kind" span="{len(s)}"></colgroup>' for _, s in columns)
    kinds = "".join(f'<th colspan="{len(s)}" scope="colgroup">{_e(k)}</th>' for k, s in columns)
    states = "".join(f'<th scope="col">{_e(p)}</th>' for _, s in columns for p in s)
    return (
        f"<colgroup></colgroup>{groups}\n<thead>\n"
        f'<tr><th rowspan="2" scope="col">Method</th>{kinds}</tr>\n<tr>{states}</tr>\n</thead>'
    )


def _coverage(s: RunSummary) -> str:
    cells = s.coverage
    exercised = sum(1 for c in cells if c.count > 0)
    percent = 100 * exercised / len(cells) if cells else 0.0
    heading = (
        f'<h2 id="coverage">Coverage ({exercised} of {len(cells)} cells exercised, '
        f"{percent:.0f}%)</h2>"
    )
    if not cells:
        return f'{heading}\n<p class="note">No coverage recorded.</p>'
    counts = _coverage_counts(cells)
    columns = _coverage_columns(cells)
    rows = "\n".join(
        f'<tr><th scope="row"><code>{_e(method)}</code></th>'
        + "".join(_coverage_cell(counts.get((method, k, p))) for k, ps in columns for p in ps)
        + "</tr>"
        for method in sorted({c.method for c in cells})
    )
    legend = (
        '<p class="note">Calls per method, VM kind and power state. '
        "<strong>0</strong>: in the coverage space but not exercised; ·: not in the space.</p>"
    )
    table = f"{_coverage_head(columns)}\n<tbody>\n{rows}\n</tbody>"
    return f'{heading}\n{legend}\n<table class="coverage">\n{table}\n</table>'


def _messages(s: RunSummary) -> str:
    exercised = sum(1 for m in s.messages if m.count)
    heading = f'<h2 id="messages">Messages ({exercised} of {len(s.messages)} called)</h2>'
    if not s.messages:
        return f'{heading}\n<p class="note">No message counts recorded.</p>'
    missing = [m.method for m in s.messages if not m.count]
    rows = "\n".join(
        f'<tr><th scope="row"><code>{_e(m.method)}</code></th>{_coverage_cell(m.count)}</tr>'
        for m in s.messages
    )
    gap = (
        f'<p class="note">Never called ({len(missing)}): {_e(", ".join(missing))}</p>'
        if missing
        else ""
    )
    return (
        f'{heading}\n{gap}\n<table class="coverage messages">\n<tbody>\n{rows}\n</tbody>\n</table>'
    )


# --- page --------------------------------------------------------------------------------------


_REVEAL = """
function revealTarget() {
  var target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (!target) return;
  for (var e = target.parentElement; e; e = e.parentElement) {
    if (e.tagName === "DETAILS" && !e.open) e.open = true;
  }
  target.scrollIntoView();
}
addEventListener("hashchange", revealTarget);
addEventListener("DOMContentLoaded", revealTarget);
document.addEventListener("click", function (event) {
  if (event.target.closest && event.target.closest('a[href^="#"]')) setTimeout(revealTarget, 0);
});
"""
"""A link into a closed ``<details>`` (a finding's divergences) opens it, in browsers that do
not reveal a fragment's target themselves."""


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
<script>{_REVEAL}</script>
</head>
<body>
{body}
</body>
</html>
"""


def render_html(s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> str:
    """The report page for ``s``: verdict, run facts, divergences, waived ones, coverage.

    Every text taken from the records is scrubbed of ``secrets`` (and of URL passwords) and then
    HTML-escaped.
    """
    s = scrub(s, secrets).summary
    numbered = [(divergence_id(i), d) for i, d in enumerate(s.divergences)]
    body = "\n".join(
        [
            f"<h1>XenAPI conformance report: <code>{_e(s.target)}</code></h1>",
            _identity(s),
            _banner(s),
            _findings(s),
            _budget(s),
            _divergence_section(
                "Divergences", "divergences", [(a, d) for a, d in numbered if not d.waived]
            ),
            _divergence_section(
                "Waived divergences", "waived", [(a, d) for a, d in numbered if d.waived]
            ),
            _coverage(s),
            _messages(s),
            _facts(s),
        ]
    )
    return _page(f"{s.verdict}: {s.target} — xapi-conformance", body)


def write_html(report_dir: Path, s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> Path:
    """Write ``report_dir/report.html`` atomically (creating ``report_dir``); return its path."""
    text = render_html(s, secrets)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / HTML_FILE
    atomic_write_text(path, text)
    return path
