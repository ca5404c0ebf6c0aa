"""Every report a run writes goes through one scrub: a secret never reaches any of them.

A summary carrying a secret in every kind of text it holds (a call's parameters and answer, a
message, a reproducer, the error, the target's address, a reason an area did not run, the
target's identity) is written as a run writes it, with the matrix beside it; every file is then
searched for the secret however a format escapes it. Both sides: written without the secret, the same
files show it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from reports import (
    CallRecord,
    NotRun,
    OutcomeRecord,
    RunSummary,
    scrub,
    with_findings,
    write_matrix,
    write_reports,
)
from tests.reports.test_reports import divergence, summary

SECRET = 's3cr3t<&>"pw'
SHOWN = "s3cr3t"
"""In every spelling of the secret (HTML, XML, JSON and Markdown escape the rest)."""
URL_PASSWORD = "url-hunter2"


def _leaky() -> RunSummary:
    leak = divergence(
        params=("OpaqueRef:vm", {"password": SECRET}),
        actual=OutcomeRecord.failure("SESSION_AUTHENTICATION_FAILED", "root", SECRET),
        message=f"login with {SECRET} failed",
        reproducer=f"PASSWORD = {SECRET!r}\nURL = 'http://root:{URL_PASSWORD}@xs1'\n",
        calls=(CallRecord(f"session.login_with_password('root', {SECRET!r})"),),
    )
    return with_findings(
        summary(
            target=f"https://root:{URL_PASSWORD}@xs1.example",
            divergences=(leak,),
            error=f"the pool said {SECRET}",
            not_run=(NotRun("memory", f"interrupted while sending {SECRET}"),),
            target_identity={"product_brand": f"XCP-{SECRET}"},
        )
    )


def _written(folder: Path, secrets: tuple[str, ...]) -> dict[Path, str]:
    """Every report of the leaky summary and the matrix, written into ``folder``, by path."""
    s = _leaky()
    write_reports(folder / "run", s, secrets)
    runs = [s, replace(s, target="xs2")]
    write_matrix(folder, runs, secrets, reports=["run/report.html", "run/report.html"])
    return {p: p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_secret_never_reaches_any_report_file(tmp_path: Path) -> None:
    files = _written(tmp_path, (SECRET,))
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    assert {"run/summary.json", "run/report.html", "run/junit.xml", "matrix.md"} <= names
    assert any(n.startswith("run/reproducers/") for n in names)
    assert any(n.startswith("run/allure-results/") for n in names)
    for path, text in files.items():
        shown = {form for form in (SHOWN, URL_PASSWORD) if form in text}
        assert not shown, f"{path.relative_to(tmp_path)} shows {shown}"


def test_written_without_the_secret_the_same_files_show_it(tmp_path: Path) -> None:
    files = _written(tmp_path, ())
    leaking = {p.name for p, text in files.items() if SHOWN in text}
    assert {"summary.json", "report.html", "junit.xml", "matrix.md"} <= leaking
    assert not any(URL_PASSWORD in text for text in files.values())  # URLs: masked regardless


@pytest.mark.parametrize("more", [(), ("root",)])
def test_a_scrubbed_summary_is_scrubbed_again_only_for_more_secrets(more: tuple[str, ...]) -> None:
    clean = scrub(_leaky(), (SECRET,))
    again = scrub(clean, more)
    assert (again is clean) == (not more)
    assert ("root" in json.dumps(str(again.summary.divergences))) == (not more)
