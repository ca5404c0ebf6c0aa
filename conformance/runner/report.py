"""``xapi-conformance report``: re-render one run's HTML, or a matrix across several runs."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from reports import RunSummary, read_summary, write_html, write_matrix

__all__ = ["add_report_parser", "report_command"]


def add_report_parser(commands: Any) -> None:
    """Register ``report`` on the subcommand table."""
    report: argparse.ArgumentParser = commands.add_parser(
        "report",
        help="render report.html again, or a compatibility matrix across report directories",
    )
    report.add_argument(
        "report_dirs", nargs="+", metavar="DIR", help="report directories of earlier runs"
    )
    report.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="where to write (default: the DIR itself for one, xapi-conformance-matrix for several)",
    )


def _summary(directory: Path) -> RunSummary:
    path = directory / "summary.json"
    try:
        return read_summary(path)
    except FileNotFoundError:
        raise UsageError(f"{directory} holds no summary.json; is it a report directory?") from None
    except (ValueError, json.JSONDecodeError) as error:
        raise UsageError(f"{path} is not a summary this tool wrote: {error}") from None


def report_command(args: argparse.Namespace) -> int:
    """One directory: rewrite its report.html. Several: write matrix.html and matrix.md."""
    directories = [Path(d) for d in args.report_dirs]
    summaries = [_summary(d) for d in directories]
    if len(summaries) == 1:
        print(f"wrote {write_html(Path(args.out or directories[0]), summaries[0])}")
        return 0
    out = Path(args.out or "xapi-conformance-matrix")
    out.mkdir(parents=True, exist_ok=True)
    reports = [os.path.relpath(d.resolve() / "report.html", out.resolve()) for d in directories]
    html_path = write_matrix(out, summaries, reports=reports)
    print(f"wrote {html_path} and {html_path.with_suffix('.md')}")
    return 0
