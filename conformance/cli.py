"""The ``xapi-conformance`` command."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    print("xapi-conformance: not yet implemented", file=sys.stderr)
    return 2
