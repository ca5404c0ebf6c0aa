"""The ``run`` command's options (a contract other tools depend on)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["AREA_NAMES", "add_run_parser"]

PROFILES = ("ci", "dev", "thorough")
STRICTNESS = ("exact", "arity", "code")
AREA_NAMES = (
    "lifecycle",
    "memory",
    "operations",
    "templates",
    "fields",
    "rpc",
    "roles",
    "async",
    "sweep",
)
"""What ``-k`` selects: the suite's areas (its machines) and the deterministic sweeps."""

SUITE_TESTS = (
    "test_area",
    "test_lifecycle_sweep",
    "test_operations_blocked_sweep",
    "test_memory_sweep",
)
"""The suite's test functions, which ``-k`` may also name (as with pytest)."""

RUN_DESCRIPTION = """\
Run the conformance suite: random call sequences and deterministic sweeps, sent to the
target and to the reference model side by side; every answer is compared. Divergences are
grouped into findings, each with a reproducer script under the report directory's
reproducers/."""

RUN_EPILOG = f"""\
exit status:
  0  the target conforms (or every finding is known in --baseline)
  1  findings: the target diverges from xapi
  2  usage error (bad option, unreadable file)
  3  the target could not be tested (unreachable, login refused, broken protocol)

areas (-k): {", ".join(AREA_NAMES)}"""

DEFAULT_TIMEOUT_S = 30.0
"""Per-call deadline: far above what a real pool takes for the suite's diskless VMs."""

DEFAULT_MAX_RESPONSE_MB = 64
"""Largest answer read: a thousand-VM pool's ``VM.get_all_records`` is a few MB."""

STALL_AFTER = 3
"""Consecutive missed deadlines after which a target is stalled and the run ends."""


def add_run_parser(commands: Any) -> None:
    """Register ``run`` on the subcommand table."""
    run: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="run the conformance suite against a target (default: the embedded server)",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--target", default=None, metavar="URL", help="XenAPI endpoint (default: embedded server)"
    )
    run.add_argument("--user", default="root", help="login name (default root)")
    run.add_argument(
        "--password-env",
        default="XAPI_PASSWORD",
        metavar="VAR",
        help="environment variable holding the password (default XAPI_PASSWORD)",
    )
    run.add_argument(
        "--protocol",
        choices=("xmlrpc", "jsonrpc"),
        default="xmlrpc",
        help="wire protocol (default xmlrpc)",
    )
    run.add_argument(
        "--profile",
        choices=PROFILES,
        default="ci",
        help="dev (fast), ci (default, about a minute), thorough (nightly)",
    )
    run.add_argument(
        "--max-examples",
        type=int,
        default=None,
        metavar="N",
        help="examples per area (overrides the profile)",
    )
    run.add_argument("--seed", type=int, default=None, metavar="N", help="repeat a run exactly")
    run.add_argument(
        "--strictness",
        choices=STRICTNESS,
        default="exact",
        help="compare error params exactly (default), by count, or by code only",
    )
    run.add_argument(
        "--waivers", default=None, metavar="FILE", help="TOML file of known deviations (see README)"
    )
    run.add_argument(
        "--report-dir",
        default="./xapi-conformance-report",
        metavar="DIR",
        help="where reports go (default ./xapi-conformance-report)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"deadline of each call's whole answer and of an Async task (default "
        f"{DEFAULT_TIMEOUT_S:g}); {STALL_AFTER} missed in a row stop the run",
    )
    run.add_argument(
        "--max-response-mb",
        type=int,
        default=DEFAULT_MAX_RESPONSE_MB,
        metavar="MB",
        help=f"largest answer read from the target (default {DEFAULT_MAX_RESPONSE_MB})",
    )
    run.add_argument(
        "-n",
        dest="workers",
        default="0",
        metavar="N",
        help="parallel workers: a number, or auto for one per core (default 0: none)",
    )
    run.add_argument(
        "--baseline",
        default=None,
        metavar="PATH",
        help="summary.json of an earlier run: its findings are known; only new ones exit 1",
    )
    run.add_argument(
        "-x",
        dest="exitfirst",
        action="store_true",
        help="stop at the first test with a finding",
    )
    run.add_argument(
        "--max-findings",
        type=int,
        default=None,
        metavar="N",
        help="stop once N findings are seen",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show each test and its failure as pytest reports it",
    )
    run.add_argument(
        "--role-account",
        action="append",
        default=[],
        metavar="ROLE=USER:PASSWORD_ENV",
        help="an external target's account for ROLE (repeatable); password read from PASSWORD_ENV",
    )
    run.add_argument("--ca-bundle", default=None, metavar="FILE", help="CA bundle to verify TLS")
    run.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    run.add_argument("--fault", action="append", default=[], help=argparse.SUPPRESS)
    run.add_argument(
        "-k",
        dest="select",
        default=None,
        metavar="EXPR",
        help=f"select areas (pytest -k): {', '.join(AREA_NAMES)}",
    )
