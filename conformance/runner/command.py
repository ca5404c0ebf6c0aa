"""``xapi-conformance run``: validate, check the target, run the suite through pytest, report."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from conformance.errors import ConformanceError, ExitCode, TargetError, UsageError
from conformance.judge.waivers import load_waivers
from conformance.runner import interrupts
from conformance.runner.budget import BUDGET_DIR, parse_duration
from conformance.runner.connect import RunConfig, open_connection, target_settings
from conformance.runner.options import AREA_NAMES, SUITE_TESTS, plugin_arguments
from conformance.runner.progress import PROGRESS_DIR, LiveProgress, terminal
from conformance.runner.results import (
    STOPPED_EARLY,
    Part,
    RunFacts,
    merge_parts,
    read_parts,
    tool_version,
)
from conformance.server.config import parse_release
from conformance.targets import TargetSettings
from reports import (
    ALLURE_DIR,
    JUNIT_FILE,
    REPRODUCERS_DIR,
    RunSummary,
    read_summary,
    redact_files,
    write_html,
    write_reports,
    write_summary,
)

__all__ = ["pytest_arguments", "run_command"]

SHOWN_FINDINGS = 20
_VERDICT_EXIT = {
    "conforms": ExitCode.CONFORMS,
    "diverges": ExitCode.DIVERGES,
    "error": ExitCode.TARGET,
}
_K_WORDS = re.compile(r"[A-Za-z_][\w-]*")
PYTEST_LOG = "pytest.log"
HYPOTHESIS_CACHE_VARIABLE = "HYPOTHESIS_STORAGE_DIRECTORY"
"""Hypothesis's own variable for its cache (a user's setting is kept)."""
"""pytest's own output of a run without -v (each failure with its traceback)."""
_STALE = (
    JUNIT_FILE,
    ALLURE_DIR,
    REPRODUCERS_DIR,
    PYTEST_LOG,
    ".parts",
    PROGRESS_DIR,
    BUDGET_DIR,
    interrupts.MARKER,
)
"""What an earlier run left in the report directory that this run replaces or never leaves."""


def _check_selection(expression: str | None) -> None:
    """-k names areas; a word that is no area is a typo, not an empty run."""
    if expression is None:
        return
    words = [w for w in _K_WORDS.findall(expression) if w not in ("and", "or", "not")]
    names = [n.lower() for n in (*AREA_NAMES, *SUITE_TESTS)]
    unknown = [w for w in words if not any(w.lower() in n for n in names)]
    if unknown or not words:
        raise UsageError(
            f"-k {expression!r} selects no area ({', '.join(unknown) or 'empty'}); "
            f"areas are: {', '.join(AREA_NAMES)}"
        )


def _check_baseline(path: str | None) -> None:
    if path is None:
        return
    try:
        read_summary(Path(path))
    except FileNotFoundError:
        raise UsageError(f"--baseline {path}: no such file") from None
    except (OSError, ValueError) as error:
        raise UsageError(
            f"--baseline {path}: not a summary.json this tool wrote ({error})"
        ) from None


def _workers(value: str) -> str:
    if value == "auto" or (value.isdigit() and int(value) >= 0):
        return value
    raise UsageError(f"-n takes a number of workers or 'auto', got {value!r}")


def _validate(args: argparse.Namespace) -> Path:
    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError("--max-examples must be at least 1")
    if args.max_findings is not None and args.max_findings < 1:
        raise UsageError("--max-findings must be at least 1")
    args.workers = _workers(str(args.workers))
    _check_selection(args.select)
    _check_baseline(args.baseline)
    if args.target and args.password_env not in os.environ:
        raise UsageError(
            f"set the password for {args.user!r} in ${args.password_env}; it is never read from the command line"
        )
    if args.waivers:
        load_waivers(Path(args.waivers))
    if args.fault and args.target:
        raise UsageError("--fault seeds the embedded server; it cannot apply to --target")
    _settings(args)
    if args.time_budget is not None:
        parse_duration(args.time_budget)
    if args.xapi_version:
        parse_release(args.xapi_version)
    report_dir = Path(args.report_dir).resolve()
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"cannot create the report directory {report_dir}: {error.strerror}"
        ) from None
    return report_dir


def _settings(args: argparse.Namespace, stall_after: int | None = None) -> TargetSettings:
    settings = target_settings(args.timeout, args.max_response_mb, args.ca_bundle, args.insecure)
    return replace(settings, stall_after=stall_after) if stall_after else settings


def _passwords(args: argparse.Namespace) -> list[str]:
    """The run's passwords (its session refs are masked in-process, by the plugin)."""
    names = [args.password_env, *(r.rpartition(":")[2] for r in args.role_account)]
    return [os.environ[name] for name in names if os.environ.get(name)]


def _touch_target(args: argparse.Namespace, run_id: str | None = None) -> None:
    """Log in to an external target and out again; closing sweeps VMs tagged with ``run_id``.

    Before the run this makes a dead host or a wrong password exit 3 rather than test errors;
    after it, it removes whatever an interrupted worker left behind, giving up at the first
    missed deadline (a stalled target never holds the clean-up longer than that).
    """
    if not args.target:
        return
    config = RunConfig(
        target=args.target,
        user=args.user,
        password=os.environ.get(args.password_env, ""),
        protocol=args.protocol,
        settings=_settings(args, stall_after=1 if run_id else None),
        run_id=run_id or secrets.token_hex(4),
    )
    _connection, close = open_connection(config)
    close()


def pytest_arguments(args: argparse.Namespace, report_dir: Path) -> list[str]:
    """The pytest command line ``run`` stands for (also printed with --verbose runs).

    ``--assert=plain``: pytest would otherwise rewrite the asserts of every module of this
    distribution (its plugin's) in every process, parsing and compiling each again wherever
    bytecode is not written (``PYTHONDONTWRITEBYTECODE``): a tenth of each worker's CPU in a
    run with 8 workers. The suite reports divergences in its own words, never by an assert's
    introspection.

    ``--maxschedchunk=1`` (with workers): xdist hands a worker its next piece as it starts one,
    instead of batches of several taken from the head of the list, so that the pieces,
    longest first, go to whichever worker frees up first and the workers end close together.
    """
    parallel = ["--maxschedchunk=1"] if args.workers != "0" else []
    return [
        "--pyargs",
        "conformance.suite",
        "-p",
        "no:cacheprovider",
        "--assert=plain",
        "-v" if args.verbose else "-q",
        "--tb=short",
        "--no-header",
        "-rN",
        *parallel,
        *plugin_arguments(args, {"report-dir": str(report_dir)}),
    ]


@contextlib.contextmanager
def _progress(report_dir: Path) -> Iterator[None]:
    """One line updated in place on a terminal; otherwise a plain line every 15 s, then 60 s;
    the last line shows the run's final figures (the processes' files are removed after it)."""
    out = terminal()
    live = LiveProgress(report_dir / PROGRESS_DIR, out, in_place=out.isatty())
    live.start()
    try:
        yield
    finally:
        live.stop()
        shutil.rmtree(report_dir / PROGRESS_DIR, ignore_errors=True)


def _error_summary(
    args: argparse.Namespace,
    report_dir: Path,
    reason: str,
    started: datetime.datetime,
    parts: list[Part] | None = None,
    *,
    whole: bool = True,
) -> None:
    """Reports of a run that ended in error: ``reason``, and the counts of ``parts`` if any;
    summary.json and report.html only unless ``whole``."""
    facts = RunFacts(
        args.target or "embedded",
        args.protocol,
        args.profile,
        args.seed,
        args.strictness,
        started,
        tool_version(),
    )
    summary = merge_parts(parts or [], facts, extra_error=reason, interrupted=parts is not None)
    write_summary(report_dir, summary, _passwords(args))  # first: the rest may be cut short
    write_html(report_dir, summary, _passwords(args))
    if whole:
        write_reports(report_dir, summary, _passwords(args))


INTERRUPTED_TWICE = "interrupted twice: the clean-up was skipped (suite VMs may remain)"


def _summary_so_far(args: argparse.Namespace, report_dir: Path, started: datetime.datetime) -> None:
    """On a second interrupt: unless the run's reports are already written, write its
    summary.json and report.html from the parts its processes saved (every second), with the
    verdict "error". The user will not wait: junit.xml, Allure's results and the reproducers
    are left out (for a run of many findings they took minutes, which the first interrupt's
    reports may already be spending)."""
    if not (report_dir / "summary.json").exists():
        parts = _parts_so_far(report_dir)
        _error_summary(args, report_dir, INTERRUPTED_TWICE, started, parts, whole=False)


def _parts_so_far(report_dir: Path) -> list[Part]:
    """What the run's processes counted until now (each saves its part every second)."""
    return [part for folder in (report_dir / ".parts").glob("*") for part in read_parts(folder)]


def _remove_stale(report_dir: Path) -> None:
    """The report directory holds only the current run: earlier runs' files go first."""
    (report_dir / "summary.json").unlink(missing_ok=True)
    unfinished = report_dir.glob(f".{ALLURE_DIR}.*")  # a run that exited while writing them
    for path in [*(report_dir / name for name in _STALE), *unfinished]:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _coverage_line(s: RunSummary) -> str:
    """How much was judged (ok or diverges), and what was not: unreachable (blocked by a
    finding) or not exercised."""
    cells = _judged_counts([c.status for c in s.coverage], [c.count for c in s.coverage])
    messages = _judged_counts([m.status for m in s.messages], [m.count for m in s.messages])
    percent = 100 * cells[0] / len(s.coverage) if s.coverage else 0.0
    return (
        f"coverage: {cells[0]} of {len(s.coverage)} cells judged ({percent:.0f}%), "
        f"{messages[0]} of {len(s.messages)} messages"
        + _gaps("cells", cells)
        + _gaps("messages", messages)
    )


def _judged_counts(statuses: list[str], counts: list[int]) -> tuple[int, int, int]:
    """(judged, unreachable, not exercised) of a summary's cells or messages."""
    judged = sum(
        1
        for st, n in zip(statuses, counts, strict=True)
        if st in ("ok", "diverges") or (not st and n)
    )
    unreachable = statuses.count("unreachable")
    return judged, unreachable, len(statuses) - judged - unreachable


def _gaps(what: str, counts: tuple[int, int, int]) -> str:
    _, unreachable, missing = counts
    if not unreachable:
        return ""
    return f"; {what}: {unreachable} unreachable, {missing} not exercised"


def _finding_lines(s: RunSummary, report_dir: Path, password_env: str) -> list[str]:
    lines = []
    for f in s.findings[:SHOWN_FINDINGS]:
        mark = " (known)" if f.status == "known" else ""
        lines.append(
            f"  {f.id} [{f.area}] {f.title}{mark} — {f.count}× in {len(f.methods)} method(s); "
            f"{report_dir / f.reproducer}"
        )
    if len(s.findings) > SHOWN_FINDINGS:
        lines.append(f"  … and {len(s.findings) - SHOWN_FINDINGS} more in report.html")
    if s.findings and s.target != "embedded":  # the embedded server is gone with the run
        first = report_dir / s.findings[0].reproducer
        lines.append(
            f"  replay one: python3 {first}  (root's password read from {password_env}; exit 1 "
            "while it diverges, 0 once fixed)"
        )
    lines += [f"  fixed since the baseline: {f.id} {f.title}" for f in s.fixed]
    if s.waived_divergences:
        lines.append(f"  {len(s.waived_divergences)} divergence(s) waived")
    return lines


def _verdict_line(s: RunSummary) -> str:
    found = f"{len(s.findings)} finding(s) from {len(s.active_divergences)} divergence(s)"
    if s.baseline:
        found += f", {len(s.new_findings)} new against the baseline"
    line = (
        f"verdict: {s.verdict} — {found}; {s.examples:,} examples, {s.steps:,} steps"
        if s.verdict != "error"
        else f"verdict: error — {s.error}"
    )
    gap = s.not_run_note
    return f"{line} ({gap})" if gap else line


def _with_run_time(report_dir: Path, s: RunSummary, started: datetime.datetime) -> RunSummary:
    """A budgeted run's summary with the whole run's time (start-up and final clean-up
    included) as the budget's time used, in summary.json and report.html too."""
    if s.budget is None:
        return s
    used = round((datetime.datetime.now(datetime.UTC) - started).total_seconds(), 1)
    s = replace(s, budget=replace(s.budget, used=used))
    write_summary(report_dir, s)
    write_html(report_dir, s)
    return s


def _budget_lines(s: RunSummary) -> list[str]:
    """The time budget, the time used and what was left out, when the run had a budget."""
    if s.budget is None:
        return []
    left = "; ".join(s.budget.left_out) or "nothing"
    return [f"time budget: {s.budget.seconds:g} s, used {s.budget.used:g} s; left out: {left}"]


def _print_result(report_dir: Path, started: datetime.datetime, password_env: str) -> int:
    """The verdict, one line per finding, the seed and where the reports are; the exit status."""
    try:
        summary = read_summary(report_dir / "summary.json")
    except (OSError, ValueError) as error:
        raise ConformanceError(
            f"the run ended but its summary.json cannot be read ({error}); "
            f"junit.xml and {PYTEST_LOG} in {report_dir} may still tell what happened"
        ) from None
    summary = _with_run_time(report_dir, summary, started)
    lines = [
        _verdict_line(summary),
        *_finding_lines(summary, report_dir, password_env),
        _coverage_line(summary),
    ]
    lines += _budget_lines(summary)
    if summary.seed is not None:
        lines.append(f"seed: {summary.seed} (repeat with --seed {summary.seed})")
    lines.append(
        f"reports: {report_dir / 'report.html'} (and summary.json, junit.xml, allure-results/, "
        f"{PYTEST_LOG})"
    )
    print("\n".join(lines))
    if summary.verdict == "diverges" and summary.baseline and not summary.new_findings:
        return ExitCode.CONFORMS
    return _VERDICT_EXIT[summary.verdict]


@contextlib.contextmanager
def _pytest_output(report_dir: Path, verbose: bool) -> Iterator[None]:
    """pytest's own output goes to the terminal with -v, else to ``pytest.log`` in the reports."""
    if verbose:
        yield
        return
    with (
        (report_dir / PYTEST_LOG).open("w", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
    ):
        yield


def run_command(args: argparse.Namespace) -> int:
    """Run the suite; exit 0 conforms, 1 diverges, 2 usage error, 3 target could not be tested.

    Interrupted (Ctrl-C, SIGTERM), the run still ends with reports: the counts so far and the
    verdict "error", or "diverges" if a divergence was already found.
    """
    started = datetime.datetime.now(datetime.UTC)
    report_dir = _validate(args)
    _remove_stale(report_dir)
    interrupts.install(marker=report_dir / interrupts.MARKER)
    interrupts.on_second(lambda: _summary_so_far(args, report_dir, started))
    try:
        _run(args, report_dir, started)
    except TargetError as error:
        _error_summary(args, report_dir, str(error), started)
        raise
    except KeyboardInterrupt:
        if not (report_dir / "summary.json").exists():
            _error_summary(args, report_dir, "", started, _parts_so_far(report_dir))
    return _print_result(report_dir, started, args.password_env)


def hypothesis_cache() -> Path:
    """Where Hypothesis keeps its cache during a run: the user's cache directory, not a
    ``.hypothesis/`` in whatever directory the run starts from."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xapi-conformance" / "hypothesis"


def _run(args: argparse.Namespace, report_dir: Path, started: datetime.datetime) -> None:
    """Check the target, run the suite through pytest, sweep what the run left behind."""
    _touch_target(args)
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    print(f"seed: {args.seed} (repeat with --seed {args.seed})", file=sys.stderr, flush=True)
    run_id = secrets.token_hex(4)
    os.environ.setdefault(HYPOTHESIS_CACHE_VARIABLE, str(hypothesis_cache()))
    try:
        with _progress(report_dir), _pytest_output(report_dir, args.verbose):
            status = pytest.main([*pytest_arguments(args, report_dir), f"--xapi-run-id={run_id}"])
        redact_files([report_dir / PYTEST_LOG], _passwords(args))
    finally:
        with contextlib.suppress(TargetError):
            _touch_target(args, run_id)
    if status in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise UsageError(
            f"pytest could not run the suite (exit {int(status)}); check -k and the options"
        )
    if not (report_dir / "summary.json").exists():
        reason = (
            STOPPED_EARLY
            if status == pytest.ExitCode.INTERRUPTED
            else f"the suite ended without results (pytest exit {int(status)})"
        )
        _error_summary(args, report_dir, reason, started)
