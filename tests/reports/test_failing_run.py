"""A failing run against a server with two seeded faults, as a user sees it.

The terminal fits a screen; summary.json, junit.xml, Allure and the HTML page count the same
findings; each finding's reproducer exits 1 on the faulty server and 2 on a dead URL; a repeat
with the first run as its baseline exits 0. The HTML page is opened in headless Chromium and
the Allure results are rendered by Allure's own command line, where those are installed (CI
installs both and sets XAPI_REQUIRE_BROWSER=1 so they cannot be skipped there).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from conformance.faults import FAULTS as CATALOGUE
from conformance.runner.results import STOPPED
from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer, start_in_thread
from reports.records import SCHEMA_VERSION
from tests.conformance.detect import CASES, shown
from tests.conformance.test_run_command import run

pytestmark = pytest.mark.slow

PASSWORD = "faulty-pw"
PASSWORD_ENV = "FAULTY_POOL_PW"
"""Not XAPI_PASSWORD: the run's reproducers must read the variable the run was given."""
FAULTS = ("wrong-error-param", "stale-record")
RUN_ARGS = (
    "--profile",
    "dev",
    "--seed",
    "5",
    "-k",
    "lifecycle_sweep or test_area and fields",
    "-n",
    "2",
    "--password-env",
    PASSWORD_ENV,
)
"""The lifecycle sweep shows the first fault, the fields area the second."""
REPEAT_ARGS = (
    "--profile",
    "dev",
    "--seed",
    "5",
    "-k",
    "lifecycle_sweep",
    "--max-findings",
    "1",
    "--password-env",
    PASSWORD_ENV,
)
"""A repeat of the first run's sweep: it shows the first fault alone, and stops there (the
sweep's later pieces would judge cells the first run found nothing wrong in)."""
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ALLURE = Path(__file__).parent / "allure" / "node_modules" / ".bin" / "allure"
REQUIRED = os.environ.get("XAPI_REQUIRE_BROWSER") == "1"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@pytest.fixture(scope="module")
def faulty_server() -> Iterator[RunningServer]:
    server = start_in_thread(ServerConfig(password=PASSWORD, faults=FAULTS))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def failing_run(
    faulty_server: RunningServer, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The run, once for the whole test session: xdist workers that share this module's tests
    take the first one's (its reports and output), waiting for it under a file lock."""
    shared = tmp_path_factory.getbasetemp()
    shared = shared if worker_id == "master" else shared.parent
    report = shared / "failing-run" / "report"
    report.parent.mkdir(exist_ok=True)
    with (shared / "failing-run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = report.parent / "result.json"
        if not saved.exists():
            result = run(
                "run",
                "--target",
                faulty_server.url,
                *RUN_ARGS,
                "--report-dir",
                str(report),
                env={PASSWORD_ENV: PASSWORD},
            )
            saved.write_text(json.dumps([result.returncode, result.stdout, result.stderr]))
    code, stdout, stderr = json.loads(saved.read_text())
    return subprocess.CompletedProcess([], code, stdout, stderr), report


def findings(report: Path) -> list[dict[str, object]]:
    data = json.loads((report / "summary.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    return list(data["findings"])


def test_a_failing_run_fits_a_screen_and_names_each_finding(
    failing_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, report = failing_run
    assert result.returncode == 1, result.stdout + result.stderr
    printed = (result.stdout + result.stderr).splitlines()
    assert len(printed) < 80
    found = findings(report)
    assert 2 <= len(found) <= 4
    for finding in found:
        assert any(
            str(finding["id"]) in line and str(finding["reproducer"]) in line for line in printed
        )
    assert not any("def replay" in line or "FAILURES" in line for line in printed)
    replay = [line for line in printed if line.startswith("  replay one: python3 ")]
    assert len(replay) == 1 and str(report / "reproducers") in replay[0]
    assert f"read from {PASSWORD_ENV};" in replay[0]
    assert "repeat with --seed 5" in result.stdout
    assert sorted(p.name for p in report.iterdir()) == [
        "allure-results",
        "junit.xml",
        "pytest.log",
        "report.html",
        "reproducers",
        "summary.json",
    ]


def test_the_command_line_finds_each_fault_in_the_area_the_catalogue_names(
    failing_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """The lifecycle sweep's fault and the fields area machine's, each with a divergence in its
    area showing what the fault breaks (tests/conformance/test_fault_detection.py finds every
    fault in-process)."""
    _, report = failing_run
    divergences = json.loads((report / "summary.json").read_text())["divergences"]
    for fault in FAULTS:
        _selection, mark = CASES[fault]
        area = CATALOGUE[fault].area
        assert any(d["area"] == area and mark in shown(d) for d in divergences), fault


def test_the_last_progress_line_counts_what_the_verdict_counts(
    failing_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    """Examples and steps without the shrinks' replays, findings grouped as the verdict
    groups them, and the figures of the run's end (not those of the last line shown before)."""
    result, report = failing_run
    shown = [line for line in result.stderr.splitlines() if line.startswith("examples ")]
    data = json.loads((report / "summary.json").read_text())
    counted = f"examples {data['examples']:,} · steps {data['steps']:,} · "
    assert shown and shown[-1].startswith(f"{counted}findings {len(data['findings'])} · ")


def test_every_report_counts_the_same_findings(
    failing_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, report = failing_run
    count = len(findings(report))
    junit = ET.parse(report / "junit.xml").getroot()
    assert len(junit.findall(".//testcase/failure")) == count
    allure = [json.loads(p.read_text()) for p in (report / "allure-results").glob("*-result.json")]
    assert sum(1 for r in allure if r["status"] == "failed") == count
    assert (report / "report.html").read_text().count('<section class="finding"') == count


def test_each_reproducer_exits_1_on_the_faulty_server_and_2_on_a_dead_url(
    failing_run: tuple[subprocess.CompletedProcess[str], Path], faulty_server: RunningServer
) -> None:
    _, report = failing_run
    env = {**os.environ, PASSWORD_ENV: PASSWORD}
    env.pop("XAPI_PASSWORD", None)
    for finding in findings(report):
        script = report / str(finding["reproducer"])
        here = subprocess.run(
            [sys.executable, str(script), faulty_server.url],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert here.returncode == 1, here.stdout + here.stderr
        assert here.stdout.count("\n> ") >= 1 and "DIVERGES" in here.stdout
        dead = subprocess.run(
            [sys.executable, str(script), "http://127.0.0.1:9/"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert dead.returncode == 2 and "Traceback" not in dead.stderr
        assert "cannot replay" in dead.stderr


def test_a_repeat_with_the_first_run_as_baseline_exits_0(
    failing_run: tuple[subprocess.CompletedProcess[str], Path],
    faulty_server: RunningServer,
    tmp_path: Path,
) -> None:
    """The repeat runs the first run's sweep alone (a deterministic fault: its finding is the
    first run's, every time); that an area machine's finding keeps its id whatever the seed,
    and so holds against a baseline, tests/conformance/test_stable_findings.py shows."""
    _, first = failing_run
    result = run(
        "run",
        "--target",
        faulty_server.url,
        *REPEAT_ARGS,
        "--baseline",
        str(first / "summary.json"),
        "--report-dir",
        str(tmp_path),
        env={PASSWORD_ENV: PASSWORD},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert {f["status"] for f in findings(tmp_path)} == {"known"}


def _needs(tool: object, what: str) -> None:
    if not tool:
        if REQUIRED:
            pytest.fail(f"{what} is not installed, and XAPI_REQUIRE_BROWSER=1")
        pytest.skip(f"{what} is not installed (CI installs it)")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def test_the_html_report_of_a_failing_run_in_headless_chromium(
    failing_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _needs(CHROMIUM, "Debian's chromium")
    _, report = failing_run
    page = (report / "report.html").as_uri()
    dom = _chromium("--dump-dom", page).stdout
    count = len(findings(report))
    assert len(re.findall(r'<section class="finding"', dom)) == count
    assert re.search(r'<p class="identity" id="identity"><strong>\w[^<]* · API 2\.\d+', dom)
    assert "judged against xapi" in dom
    assert (
        len(re.findall(r'<a class="reproducer" href="reproducers/F-[0-9a-f]{8}\.py"', dom)) == count
    )
    assert "<mark>" in dom
    assert '<td class="miss" title="not exercised">0</td>' in dom
    assert '<details class="divergence-list">' in dom  # closed until a link points into it
    linked = str(findings(report)[0]["divergences"][-1])
    opened = _chromium("--dump-dom", f"{page}#{linked}").stdout
    assert '<details class="divergence-list" open="">' in opened
    artefacts = Path(os.environ.get("XAPI_ARTIFACTS", report.parent))
    artefacts.mkdir(parents=True, exist_ok=True)
    shot = artefacts / "report-failing-run.png"
    _chromium("--window-size=1280,2000", f"--screenshot={shot}", page)
    assert shot.stat().st_size > 10_000


def test_the_allure_results_load_in_allure(
    failing_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    _needs(ALLURE.exists(), "the npm allure package (tests/reports/allure)")
    _, report = failing_run
    out = tmp_path / "allure-report"
    rendered = subprocess.run(
        [str(ALLURE), "generate", str(report / "allure-results"), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    stats = json.loads((out / "summary.json").read_text())["stats"]
    assert stats["failed"] == len(findings(report))
    assert (out / "index.html").exists()


@pytest.mark.parametrize("stop", [["-x"], ["--max-findings", "1"]], ids=["x", "max-findings"])
def test_a_run_can_stop_at_its_first_finding(stop: list[str], tmp_path: Path) -> None:
    """A record fault shows in the first sweep piece run; the sweeps after it never run and are
    reported as stopped, not as left out by -k."""
    result = run(
        "run",
        "--profile",
        "dev",
        "--fault",
        "record-missing-field",
        "-k",
        "sweep",
        *stop,
        "--report-dir",
        str(tmp_path),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    data = json.loads((tmp_path / "summary.json").read_text())
    assert len(data["areas"]) == 1
    stopped = [n["area"] for n in data["not_run"] if n["reason"] == STOPPED]
    assert stopped and data["areas"][0] not in stopped
    assert len(data["findings"]) == 1
