"""Settings for the project's own tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import settings

# The tests run on a loaded 2-core machine beside other work (CI, xdist workers, the servers
# they start): a per-example time limit there measures the machine, not the code. Speed is
# measured in benchmarks/, never asserted in tests.
settings.register_profile("project-tests", deadline=None)
settings.load_profile("project-tests")

SLOWEST = Path(__file__).with_name("slowest.txt")
"""pytest's ``--durations`` lines from a whole run: the order the tests start in, not a limit."""


def _seconds_by_test() -> dict[str, float]:
    """Each listed test's setup, call and teardown seconds together."""
    seconds: dict[str, float] = {}
    for line in SLOWEST.read_text(encoding="utf-8").splitlines():
        found = re.match(r"([0-9.]+)s\s+(?:setup|call|teardown)\s+(\S.*)$", line.strip())
        if found:
            nodeid = found[2].strip()
            seconds[nodeid] = seconds.get(nodeid, 0.0) + float(found[1])
    return seconds


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest tests first, so that xdist's workers (``--dist loadgroup`` hands out one test
    at a time) end together instead of one worker finishing a long test alone; the rest keep
    their order."""
    seconds = _seconds_by_test()
    items.sort(key=lambda item: -seconds.get(item.nodeid, 0.0))
