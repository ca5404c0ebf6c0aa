"""Settings for the project's own tests."""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# The tests run on a loaded 2-core machine beside other work (CI, xdist workers, the servers
# they start): a per-example time limit there measures the machine, not the code. Speed is
# measured in benchmarks/, never asserted in tests.
settings.register_profile("project-tests", deadline=None)
settings.load_profile("project-tests")

TESTS = Path(__file__).parent
SLOWEST = TESTS / "slowest.txt"
"""Each test's seconds from a whole run (the lines ``XAPI_TEST_TIMES`` writes, or pytest's
``--durations`` lines): the order the tests start in, not a limit."""
_LISTED = re.compile(r"([0-9.]+)s\s+(?:setup|call|teardown|wall)\s+(?:[0-9.]+s cpu\s+)?(\S.*)$")

TIMES_VARIABLE = "XAPI_TEST_TIMES"
"""A file each test's wall and CPU seconds are appended to, when this variable names one."""


def _seconds_by_test() -> dict[str, float]:
    """Each listed test's wall seconds (setup, call and teardown together)."""
    seconds: dict[str, float] = {}
    for line in SLOWEST.read_text(encoding="utf-8").splitlines():
        found = _LISTED.match(line.strip())
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


def _cpu_seconds() -> float:
    """User and system CPU of this process and of the children it has waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """With ``XAPI_TEST_TIMES`` set, one line a test: the wall and the CPU seconds its setup,
    call and teardown took (a shared fixture's under the test that set it up first).

    The CPU is what a test costs whatever runs beside it (on a shared 2-core machine the wall
    time measures the load too): its process's and its subprocesses'. A thread a test leaves
    running (a server) counts under whichever test runs while it spends."""
    path = os.environ.get(TIMES_VARIABLE)
    cpu, wall = _cpu_seconds(), time.monotonic()
    yield
    if path and item.path.is_relative_to(TESTS):  # not the suite a CLI run of a test runs
        line = f"{time.monotonic() - wall:.2f}s wall {_cpu_seconds() - cpu:.2f}s cpu {item.nodeid}"
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
