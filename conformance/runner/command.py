"""Running the suite from the command line."""

from __future__ import annotations

import argparse

from conformance.errors import UsageError

__all__ = ["run_command"]


def run_command(args: argparse.Namespace) -> int:
    """Placeholder until the engine lands (issue 4)."""
    raise UsageError("run: the conformance engine is not built yet")
