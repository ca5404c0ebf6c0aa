"""A bounded load on the embedded server as a process: 16 clients, no lost update, bounded memory.

Figures (calls per second) are the benchmark's (``benchmarks/server_load.py``); this test only
checks what must hold: every call answered without error, every map change kept, the long
pollers woken, and the server's memory not growing from one equal round to the next.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from tests.conformance.load import rss_kib, run_load, serving

PASSWORD = "load-pw"
GROWTH_LIMIT_KIB = 48 * 1024


@pytest.fixture
def served() -> Iterator[tuple[str, int]]:
    """``xapi-conformance serve`` in its own process: its URL and pid."""
    with serving(PASSWORD) as running:
        yield running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for memory")
def test_sixteen_clients_lose_no_update_and_memory_stays_bounded(served: tuple[str, int]) -> None:
    url, pid = served
    warm = run_load(url, PASSWORD, clients=16, rounds=8)
    before = rss_kib(pid)
    again = run_load(url, PASSWORD, clients=16, rounds=8)
    growth = rss_kib(pid) - before
    for result in (warm, again):
        assert result.errors == []
        assert result.keys_found == result.keys_expected == 14 * 8
        assert result.events_seen > 0
    assert growth < GROWTH_LIMIT_KIB, f"the server grew by {growth} KiB in an equal second round"
