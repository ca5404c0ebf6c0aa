"""Every report of a run at once: summary.json, report.html, junit.xml, allure-results/ and one
reproducer script per finding under reproducers/."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from reports.allure import write_allure
from reports.files import atomic_write_text
from reports.findings import REPRODUCERS_DIR
from reports.html import write_html
from reports.junit import write_junit
from reports.records import RunSummary
from reports.redact import Scrubbed, scrub
from reports.summary import write_summary

__all__ = ["write_reports", "write_reproducers"]


def write_reproducers(
    report_dir: Path, s: RunSummary | Scrubbed, secrets: Iterable[str] = ()
) -> dict[str, str]:
    """Replace ``report_dir/reproducers/`` with one script per finding (its shortest example);
    return each finding's script by id."""
    clean = scrub(s, secrets)
    folder = Path(report_dir) / REPRODUCERS_DIR
    shutil.rmtree(folder, ignore_errors=True)
    scripts = clean.reproducers()
    if scripts:
        folder.mkdir(parents=True)
    for finding in clean.summary.findings:
        path = Path(report_dir) / finding.reproducer
        atomic_write_text(path, scripts[finding.id])
        path.chmod(0o755)
    return scripts


def write_reports(report_dir: Path, s: RunSummary, secrets: Iterable[str] = ()) -> Path:
    """Write every report of ``s`` in ``report_dir``; return the path of report.html. The summary
    is scrubbed once, and every writer renders that."""
    clean = scrub(s, secrets)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    write_reproducers(report_dir, clean)
    write_junit(report_dir, clean)
    write_allure(report_dir, clean)
    write_summary(report_dir, clean)
    return write_html(report_dir, clean)
