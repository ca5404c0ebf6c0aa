"""Fixtures for harness tests: an embedded server on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer, start_in_thread
from models.world import Account

PASSWORD = "s3cret-pw"


@pytest.fixture
def server() -> Iterator[RunningServer]:
    """A fresh embedded server with root/PASSWORD and a read-only account."""
    config = ServerConfig(password=PASSWORD, accounts=(Account("ro", "ro-pw", "read-only"),))
    running = start_in_thread(config)
    try:
        yield running
    finally:
        running.stop()
