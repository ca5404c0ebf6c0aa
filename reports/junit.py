"""``junit.xml`` for CI gates: one failing test case per finding, one passing case per clean area,
one skipped case (with the reason) per area the run did not test.

The failures are the findings, so a CI gate counts what the terminal, the HTML page and Allure
count. A finding that a baseline already knows is reported as skipped, not failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from xml.etree import ElementTree as ET

from reports.files import atomic_write_text
from reports.records import FindingRecord, RunSummary
from reports.redact import Scrubbed, scrub

__all__ = ["JUNIT_FILE", "render_junit", "write_junit"]

JUNIT_FILE = "junit.xml"
"""The file name :func:`write_junit` writes in the report directory."""

SUITE_NAME = "xapi-conformance"


def _finding_case(s: RunSummary, f: FindingRecord) -> ET.Element:
    case = ET.Element(
        "testcase", classname=f"{SUITE_NAME}.{f.area}", name=f"{f.id}: {f.title}", time="0"
    )
    properties = ET.SubElement(case, "properties")
    for name, value in (("reproducer", f.reproducer), ("methods", " ".join(f.methods))):
        ET.SubElement(properties, "property", name=name, value=value)
    example = s.divergence(f.example)
    text = (
        f"{example.message}\n\n{f.count} divergence(s) in {', '.join(f.methods)}\n"
        f"reproducer: {f.reproducer}"
    )
    if f.status == "known":
        ET.SubElement(case, "skipped", message=f"known in the baseline: {f.title}")
    else:
        ET.SubElement(case, "failure", message=f.title, type="divergence").text = text
    return case


def _area_case(area: str) -> ET.Element:
    return ET.Element(
        "testcase", classname=f"{SUITE_NAME}.{area}", name=f"{area}: no finding", time="0"
    )


def _not_run_case(area: str, reason: str) -> ET.Element:
    """An area the run did not test: skipped with the reason, never passed."""
    case = ET.Element(
        "testcase", classname=f"{SUITE_NAME}.{area}", name=f"{area}: not run", time="0"
    )
    ET.SubElement(case, "skipped", message=reason)
    return case


def _error_case(error: str) -> ET.Element:
    case = ET.Element("testcase", classname=SUITE_NAME, name="run", time="0")
    ET.SubElement(case, "error", message=error.partition("\n")[0], type="error").text = error
    return case


def _cases(s: RunSummary) -> list[ET.Element]:
    failing_areas = {f.area for f in s.findings}
    cases = [_finding_case(s, f) for f in s.findings]
    cases += [_area_case(a) for a in s.areas if a not in failing_areas]
    cases += [_not_run_case(n.area, n.reason) for n in s.not_run]
    if s.verdict == "error":
        cases.append(_error_case(s.error or "the run did not complete"))
    return cases


def render_junit(s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> str:
    """The JUnit XML text for ``s``, scrubbed of ``secrets``."""
    s = scrub(s, secrets).summary
    cases = _cases(s)
    count = {
        tag: sum(1 for c in cases if c.find(tag) is not None)
        for tag in ("failure", "error", "skipped")
    }
    suite = ET.Element(
        "testsuite",
        name=SUITE_NAME,
        tests=str(len(cases)),
        failures=str(count["failure"]),
        errors=str(count["error"]),
        skipped=str(count["skipped"]),
        time=f"{s.duration_s:.1f}",
        timestamp=s.started,
    )
    suite.extend(cases)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report_dir: Path, s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> Path:
    """Write ``report_dir/junit.xml`` atomically; return its path."""
    path = Path(report_dir) / JUNIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, render_junit(s, secrets))
    return path
