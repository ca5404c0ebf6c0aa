"""``xapi-conformance run``: validate, check the target, run the suite through pytest, report."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.connect import RunConfig, open_connection
from conformance.errors import TargetError, UsageError
from conformance.results import RunFacts, merge_parts
from conformance.targets import TargetSettings
from conformance.waivers import load_waivers
from reports import read_summary, write_html, write_summary

__all__ = ["pytest_arguments", "run_command"]

EXIT_OK, EXIT_DIVERGES, EXIT_USAGE, EXIT_TARGET = 0, 1, 2, 3
SHOWN_DIVERGENCES = 20
_VERDICT_EXIT = {"conforms": EXIT_OK, "diverges": EXIT_DIVERGES, "error": EXIT_TARGET}


def _validate(args: argparse.Namespace) -> Path:
    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError("--max-examples must be at least 1")
    if args.workers < 0:
        raise UsageError("-n must be 0 (no workers) or more")
    if args.target and args.password_env not in os.environ:
        raise UsageError(
            f"set the password for {args.user!r} in ${args.password_env}; it is never read from the command line"
        )
    if args.waivers:
        load_waivers(Path(args.waivers))
    if args.fault and args.target:
        raise UsageError("--fault seeds the embedded server; it cannot apply to --target")
    if args.insecure and args.ca_bundle:
        raise UsageError("--insecure and --ca-bundle contradict each other; pick one")
    report_dir = Path(args.report_dir).resolve()
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"cannot create the report directory {report_dir}: {error.strerror}"
        ) from None
    return report_dir


def _touch_target(args: argparse.Namespace, run_id: str | None = None) -> None:
    """Log in to an external target and out again; closing sweeps VMs tagged with ``run_id``.

    Before the run this makes a dead host or a wrong password exit 3 rather than test errors;
    after it, it removes whatever an interrupted worker left behind.
    """
    if not args.target:
        return
    verify: bool | str = args.ca_bundle or not args.insecure
    config = RunConfig(
        target=args.target,
        user=args.user,
        password=os.environ.get(args.password_env, ""),
        protocol=args.protocol,
        settings=TargetSettings(verify=verify),
        run_id=run_id or secrets.token_hex(4),
    )
    _connection, close = open_connection(config)
    close()


def pytest_arguments(args: argparse.Namespace, report_dir: Path) -> list[str]:
    """The pytest command line ``run`` stands for (also printed with --verbose runs)."""
    argv = [
        "--pyargs",
        "conformance.suite",
        "-p",
        "no:cacheprovider",
        "-q",
        "--no-header",
        "-rN",
        "--tb=line",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        f"--junitxml={report_dir / 'junit.xml'}",
        f"--alluredir={report_dir / 'allure-results'}",
        f"--xapi-report-dir={report_dir}",
        f"--xapi-user={args.user}",
        f"--xapi-password-env={args.password_env}",
        f"--xapi-protocol={args.protocol}",
        f"--xapi-profile={args.profile}",
        f"--xapi-strictness={args.strictness}",
    ]
    optional = {
        "--xapi-target": args.target,
        "--xapi-max-examples": args.max_examples,
        "--xapi-waivers": args.waivers,
        "--xapi-ca-bundle": args.ca_bundle,
        "-k": args.select,
    }
    argv += [
        f"{name}={value}" if name.startswith("--") else name
        for name, value in optional.items()
        if value is not None
    ]
    if args.select:
        argv.append(args.select)
    if args.seed is not None:
        argv += [f"--hypothesis-seed={args.seed}", f"--xapi-seed={args.seed}"]
    if args.insecure:
        argv.append("--xapi-insecure")
    argv += [f"--xapi-role-account={r}" for r in args.role_account]
    argv += [f"--xapi-fault={f}" for f in getattr(args, "fault", [])]
    if args.workers:
        argv += ["-n", str(args.workers)]
    return argv


@contextlib.contextmanager
def _progress(report_dir: Path) -> Iterator[None]:
    stop = threading.Event()
    started = time.monotonic()
    interactive = sys.stderr.isatty()

    def show() -> None:
        examples = steps = divergences = 0
        for path in (report_dir / ".progress").glob("*.txt"):
            with contextlib.suppress(OSError, ValueError):
                e, s, d = (int(x) for x in path.read_text().split())
                examples, steps, divergences = examples + e, steps + s, divergences + d
        elapsed = int(time.monotonic() - started)
        line = f"examples {examples:,} · steps {steps:,} · divergences {divergences} · {elapsed // 60:02d}:{elapsed % 60:02d}"
        print(
            f"\r{line}" if interactive else line,
            end="" if interactive else "\n",
            file=sys.stderr,
            flush=True,
        )

    def loop() -> None:
        while not stop.wait(1.0 if interactive else 15.0):
            show()

    for stale in (report_dir / ".progress").glob("*.txt"):
        stale.unlink(missing_ok=True)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        show()
        if interactive:
            print(file=sys.stderr)


def _error_summary(
    args: argparse.Namespace, report_dir: Path, reason: str, started: datetime.datetime
) -> None:
    facts = RunFacts(
        args.target or "embedded",
        args.protocol,
        args.profile,
        args.seed,
        args.strictness,
        started,
        "",
    )
    summary = merge_parts([], facts, extra_error=reason)
    write_summary(report_dir, summary)
    write_html(report_dir, summary)


def _print_result(report_dir: Path) -> str:
    summary = read_summary(report_dir / "summary.json")
    print(
        f"verdict: {summary.verdict} — {summary.examples:,} examples, {summary.steps:,} steps, "
        f"{sum(1 for c in summary.coverage if c.count)} of {len(summary.coverage)} coverage cells"
    )
    for divergence in summary.divergences[:SHOWN_DIVERGENCES]:
        mark = "waived" if divergence.waived else "DIVERGES"
        print(f"  {mark}: {divergence.message}")
    hidden = len(summary.divergences) - SHOWN_DIVERGENCES
    if hidden > 0:
        print(f"  … and {hidden} more in report.html")
    if summary.error:
        print(f"  error: {summary.error}")
    print(
        f"reports: {report_dir / 'report.html'}, {report_dir / 'summary.json'}, {report_dir / 'junit.xml'}"
    )
    return summary.verdict


def _interrupt_on_sigterm() -> None:
    """SIGTERM stops the run like Ctrl-C: pytest unwinds and every clean-up runs."""

    def handler(signum: int, _frame: object) -> None:
        del signum
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run_command(args: argparse.Namespace) -> int:
    """Run the suite; exit 0 conforms, 1 diverges, 2 usage error, 3 target could not be tested."""
    started = datetime.datetime.now(datetime.UTC)
    report_dir = _validate(args)
    try:
        _touch_target(args)
    except TargetError as error:
        _error_summary(args, report_dir, str(error), started)
        raise
    summary_path = report_dir / "summary.json"
    summary_path.unlink(missing_ok=True)
    run_id = secrets.token_hex(4)
    _interrupt_on_sigterm()
    try:
        with _progress(report_dir):
            status = pytest.main([*pytest_arguments(args, report_dir), f"--xapi-run-id={run_id}"])
    finally:
        with contextlib.suppress(TargetError):
            _touch_target(args, run_id)
    if status in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise UsageError(
            f"pytest could not run the suite (exit {int(status)}); check -k and the options"
        )
    if status == pytest.ExitCode.INTERRUPTED:
        _error_summary(args, report_dir, "interrupted; the suite's VMs were removed", started)
    elif not summary_path.exists():
        _error_summary(
            args,
            report_dir,
            f"the suite ended without results (pytest exit {int(status)})",
            started,
        )
    return _VERDICT_EXIT[_print_result(report_dir)]
