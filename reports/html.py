"""``report.html``: one self-contained page for engineers (inline CSS, no script, no assets)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from reports.files import atomic_write_text
from reports.records import CoverageCell, DivergenceRecord, OutcomeRecord, RunSummary, json_safe
from reports.redact import redact_summary

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
.coverage colgroup.kind{border-left:3px solid #57606a}
.note{color:#57606a}
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
        detail = f"{active} divergence(s), {waived} waived"
    parts = [
        f'<div class="banner v-{_e(s.verdict)}" role="status">{_e(s.verdict.upper())}',
        f"<small>{_e(s.target)} · {_e(detail)}</small></div>",
    ]
    if s.verdict == "error":
        reason = s.error or "(no reason recorded)"
        parts.append(f'<h2 id="error">Error</h2>\n<pre class="error">{_e(reason)}</pre>')
    return "\n".join(parts)


def _facts(s: RunSummary) -> str:
    facts = [
        ("Target", s.target),
        ("Protocol", s.protocol),
        ("Profile", s.profile),
        ("Seed", "none recorded" if s.seed is None else str(s.seed)),
        ("Examples", str(s.examples)),
        ("Steps", str(s.steps)),
        ("Started", s.started),
        ("Duration", _duration(s.duration_s)),
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
<div class="sides">
<div><h4>Expected (model)</h4>{_expected(d.expected)}</div>
<div><h4>Actual (target)</h4>{_outcome(d.actual)}</div>
</div>
{_reproducer(d, anchor)}
</section>"""


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
    title: str, anchor: str, prefix: str, divergences: Sequence[DivergenceRecord]
) -> str:
    heading = f'<h2 id="{anchor}">{_e(title)} ({len(divergences)})</h2>'
    if not divergences:
        return f'{heading}\n<p class="note">None.</p>'
    numbered = [(f"{prefix}{i}", d) for i, d in enumerate(divergences, start=1)]
    bodies = "\n".join(_divergence(d, a) for a, d in numbered)
    return f"{heading}\n{_index(numbered)}\n{bodies}"


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
    heading = f'<h2 id="coverage">Coverage ({exercised} of {len(cells)} cells exercised)</h2>'
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


# --- page --------------------------------------------------------------------------------------


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
{body}
</body>
</html>
"""


def render_html(s: RunSummary, secrets: Iterable[str] = ()) -> str:
    """The report page for ``s``: verdict, run facts, divergences, waived ones, coverage.

    Every text taken from the records is scrubbed of ``secrets`` (and of URL passwords) and then
    HTML-escaped.
    """
    s = redact_summary(s, secrets)
    body = "\n".join(
        [
            f"<h1>XenAPI conformance report: <code>{_e(s.target)}</code></h1>",
            _banner(s),
            _facts(s),
            _divergence_section("Divergences", "divergences", "D", s.active_divergences),
            _divergence_section("Waived divergences", "waived", "W", s.waived_divergences),
            _coverage(s),
        ]
    )
    return _page(f"{s.verdict}: {s.target} — xapi-conformance", body)


def write_html(report_dir: Path, s: RunSummary, secrets: Iterable[str] = ()) -> Path:
    """Write ``report_dir/report.html`` atomically (creating ``report_dir``); return its path."""
    text = render_html(s, secrets)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / HTML_FILE
    atomic_write_text(path, text)
    return path
