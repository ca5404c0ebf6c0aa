"""The README figure: xapi expectations ported, passing, xfail (``python -m tests.xapi.count``).

An expectation is one test case whatever its backend (model, XML-RPC, JSON-RPC); it counts as
xfail if it is an xfail on any backend, as passing if it passed on every backend that ran it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BACKEND = re.compile(r"(?:^|-)(?:model|xmlrpc|jsonrpc)(?=-|$)")


class _Counter:
    def __init__(self) -> None:
        self.outcomes: dict[str, set[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            outcome = "xfail" if hasattr(report, "wasxfail") else report.outcome
            self.outcomes.setdefault(_expectation(report.nodeid), set()).add(outcome)


def _expectation(nodeid: str) -> str:
    name, _, params = nodeid.partition("[")
    params = BACKEND.sub("", params.rstrip("]"))
    return f"{name}[{params}]" if params else name


def main() -> int:
    """Run tests/xapi quietly and print the three counts."""
    counter = _Counter()
    status = pytest.main(["-q", "-p", "no:randomly", str(Path(__file__).parent)], [counter])
    kinds = [_kind(outcomes) for outcomes in counter.outcomes.values()]
    print(
        f"expectations ported: {len(kinds)}, passing: {kinds.count('passed')}, "
        f"xfail: {kinds.count('xfail')}, failing: {kinds.count('failed')}"
    )
    return int(status)


def _kind(outcomes: set[str]) -> str:
    if "failed" in outcomes:
        return "failed"
    return "xfail" if "xfail" in outcomes else "passed"


if __name__ == "__main__":
    sys.exit(main())
