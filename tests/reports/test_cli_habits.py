"""The command line's habits: --version, run --help, -k checked against the areas, report --out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from conformance.areas.machines import AREAS
from conformance.runner.cli import main
from conformance.runner.options import AREA_NAMES
from conformance.runner.progress import Counters, LiveProgress
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


def test_live_progress_lines_never_count_down(tmp_path: Path) -> None:
    folder = tmp_path / ".progress"
    folder.mkdir()
    out = io.StringIO()
    out.close = lambda: None  # type: ignore[method-assign]  # kept readable for the test
    live = LiveProgress(folder, out, in_place=False, prefix="p: ")
    live.stop()
    assert out.getvalue() == ""  # nothing counted yet: nothing said
    (folder / "gw0.txt").write_text("5 40 1\n")
    (folder / "gw1.txt").write_text("2 10 0\n")
    counters = Counters(folder)
    assert counters.read() == (7, 50, 1)
    (folder / "gw1.txt").write_text("garbage")  # read mid-write: last figures kept
    (folder / "gw0.txt").unlink()  # removed at the end: last figures kept
    assert counters.read() == (7, 50, 1)
    live = LiveProgress(folder, out, in_place=False, prefix="p: ")
    (folder / "gw1.txt").write_text("3 12 0\n")
    live.stop()
    assert out.getvalue().startswith("p: examples 3 · steps 12 · findings 0 · 00:0")


def test_a_finding_two_processes_saw_counts_once(tmp_path: Path) -> None:
    """Each progress file names its findings (as the verdict groups them): the line counts
    their union, as the verdict does once the parts merge."""
    folder = tmp_path / ".progress"
    folder.mkdir()
    (folder / "gw0.txt").write_text("5 40 2\nF-1 F-2\n")
    (folder / "gw1.txt").write_text("2 10 1\nF-2\n")
    assert Counters(folder).read() == (7, 50, 2)
