"""``summary.json``: the machine-readable result of a run (layout in :func:`summary_to_json`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from reports.files import atomic_write_text
from reports.records import RunSummary, json_safe, summary_from_json, summary_to_json
from reports.redact import Scrubbed, scrub

__all__ = ["SUMMARY_FILE", "read_summary", "render_summary_json", "write_summary"]

SUMMARY_FILE = "summary.json"
"""The file name :func:`write_summary` writes in the report directory."""


def render_summary_json(s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> str:
    """The text of ``summary.json`` for ``s``: documented key order, indent 2, UTF-8 as is.

    Every text is scrubbed of ``secrets`` (and of URL passwords) first. The output is strict JSON:
    a non-finite float or a value JSON cannot hold is written as a string.
    """
    data = json_safe(summary_to_json(scrub(s, secrets).summary))
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_summary(report_dir: Path, s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> Path:
    """Write ``report_dir/summary.json`` atomically (creating ``report_dir``); return its path."""
    text = render_summary_json(s, secrets)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / SUMMARY_FILE
    atomic_write_text(path, text)
    return path


def read_summary(path: Path) -> RunSummary:
    """Read a ``summary.json`` (or the one in the report directory ``path``).

    Raises ``ValueError`` when the file is not valid JSON or not a version-1 summary.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return summary_from_json(data)
