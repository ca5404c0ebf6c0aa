"""The ``run`` command's options (a contract other tools depend on)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_run_parser"]

PROFILES = ("ci", "dev", "thorough")
STRICTNESS = ("exact", "arity", "code")


def add_run_parser(commands: Any) -> None:
    """Register ``run`` on the subcommand table."""
    run: argparse.ArgumentParser = commands.add_parser(
        "run", help="run the conformance suite against a target (default: the embedded server)"
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
        "-n", dest="workers", type=int, default=0, metavar="N", help="parallel workers"
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
        "-k", dest="select", default=None, metavar="EXPR", help="select areas (pytest -k)"
    )
