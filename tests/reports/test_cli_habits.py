"""The command line's habits: --version, run --help, -k checked against the areas, report --out."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main
from conformance.runner.options import AREA_NAMES
from conformance.suite.machines import AREAS
from reports import RunSummary, write_summary


def test_version_prints_the_tool_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("xapi-conformance ")


def test_run_help_has_a_description_exit_codes_and_the_areas(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "Divergences are\ngrouped into findings" in text
    for line in ("0  the target conforms", "1  findings", "2  usage error", "3  the target could"):
        assert line in text
    assert "areas (-k): " + ", ".join(AREA_NAMES) in text


def test_the_areas_listed_are_the_suite_s() -> None:
    assert set(AREA_NAMES) == {*AREAS, "sweep"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-k", "memroy"], "areas are: lifecycle, memory"),
        (["-k", "lifecycle and not bogus"], "bogus"),
        (["--baseline", "/nonexistent/summary.json"], "--baseline"),
        (["-n", "many"], "-n takes"),
        (["--max-findings", "0"], "--max-findings"),
    ],
)
def test_bad_run_options_exit_2_with_a_clear_message(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--report-dir", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_report_out_is_honoured_for_one_directory(tmp_path: Path) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "elsewhere"
    write_summary(
        run_dir,
        RunSummary("conforms", "embedded", "xmlrpc", "dev", 1, 1, 1, (), (), "2026-01-01", 1.0),
    )
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert (out / "report.html").exists() and not (run_dir / "report.html").exists()
