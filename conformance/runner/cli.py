"""xapi-conformance: a property-based conformance suite for XenAPI VM-class servers.

run tests a target (the embedded reference server by default), serve starts the embedded
server as a XenAPI simulator, report re-renders reports or builds a cross-target matrix.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.errors import ConformanceError, ExitCode, UsageError
from models.features import EDITIONS

if TYPE_CHECKING:
    from conformance.server.profiles import LatencyProfile

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting, so main() owns every exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


_UNSAFE = "UNSAFE: visible to every local user in the process list; "


def _serve_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the embedded reference XenAPI server",
        description="Run the embedded reference XenAPI server (a XenAPI simulator). Give root's "
        "password with --password-env or --password-file, role-limited accounts with "
        "--accounts-file: passwords on the command line are visible to every local user.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port (default 0: pick a free one)")
    root = serve.add_mutually_exclusive_group()
    root.add_argument(
        "--password-env",
        metavar="VAR",
        help="read root's password (pool-admin) from environment variable VAR",
    )
    root.add_argument(
        "--password-file",
        metavar="FILE",
        help="read root's password from the first line of FILE",
    )
    root.add_argument("--password", help=_UNSAFE + "use --password-env or --password-file instead")
    serve.add_argument(
        "--accounts-file",
        metavar="FILE",
        help="role-limited accounts, one a line: NAME:ROLE:env:VAR or NAME:ROLE:file:PATH "
        "(# starts a comment)",
    )
    serve.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="NAME:PASSWORD:ROLE",
        help=_UNSAFE + "a role-limited account (repeatable); use --accounts-file instead",
    )
    serve.add_argument("--restrict-dmc", action="store_true", help="start with DMC licensed off")
    serve.add_argument(
        "--no-templates",
        action="store_true",
        help="start without the default templates (Other install media, Debian Bookworm 12)",
    )
    serve.add_argument(
        "--edition",
        default="free/libre",
        choices=sorted(EDITIONS),
        help="licence edition (default free/libre: every feature, as xapi without a licensing"
        " daemon)",
    )
    serve.add_argument(
        "--restrict",
        action="append",
        default=[],
        metavar="FEATURE",
        help="license FEATURE off (repeatable; xapi's names: Checkpoint, VMSS, VM_start,"
        " Live_set_vcpus, Nested_virt, Xen_motion, DMC...); the pool's restrictions say so",
    )
    serve.add_argument(
        "--no-guest-agent", action="store_true", help="guests lack PV drivers (HVM without tools)"
    )
    serve.add_argument("--hosts", type=int, default=2, help="hosts in the pool (default 2)")
    serve.add_argument(
        "--xapi-version",
        default="",
        metavar="V",
        help="behave as xapi release V, e.g. 24.19 or 1.249 (default: the newest known)",
    )
    serve.add_argument(
        "--latency",
        default=None,
        metavar="PROFILE",
        help="make calls take a pool's time: 'xapi' or a TOML file (see docs/simulator.md)",
    )
    serve.add_argument(
        "--latency-scale",
        type=float,
        default=None,
        metavar="F",
        help="multiply every --latency figure by F (0.1: ten times faster)",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="serve with this seeded fault (repeatable; names from --list-faults): a server "
        "that departs from xapi in a known way, to see what a run reports",
    )
    serve.add_argument(
        "--list-faults",
        action="store_true",
        help="list the seeded faults the suite's own tests use, and exit",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xapi-conformance")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> _Parser:
    """The command-line grammar."""
    parser = _Parser(prog="xapi-conformance", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _serve_parser(commands)
    from conformance.runner.options import add_run_parser
    from conformance.runner.report import add_report_parser

    add_run_parser(commands)
    add_report_parser(commands)
    return parser


def _root_password(args: argparse.Namespace) -> str:
    """root's password from --password-env, --password-file or (unsafe) --password; "" if none."""
    from conformance.server.config import read_secret

    if args.password_env is not None:
        return read_secret(f"env:{args.password_env}", os.environ)
    if args.password_file is not None:
        return read_secret(f"file:{args.password_file}", os.environ)
    return str(args.password or "")


def _serve(args: argparse.Namespace) -> int:
    from conformance.faults import known
    from conformance.server.config import (
        ServerConfig,
        parse_account,
        parse_release,
        read_accounts_file,
    )
    from conformance.server.process import serve_forever

    if args.list_faults:
        return _list_faults()
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    if args.hosts < 1:
        raise UsageError(f"--hosts must be at least 1, got {args.hosts}")
    accounts = tuple(parse_account(a) for a in args.account)
    if args.accounts_file is not None:
        accounts += read_accounts_file(Path(args.accounts_file))
    config = ServerConfig(
        host=args.host,
        port=args.port,
        password=_root_password(args),
        accounts=accounts,
        restrict_dmc=args.restrict_dmc,
        edition=args.edition,
        templates=not args.no_templates,
        restricted=tuple(args.restrict),
        guest_agent=not args.no_guest_agent,
        hosts=args.hosts,
        faults=known(args.fault),
        xapi_version=args.xapi_version,
        latency=_latency(args.latency, args.latency_scale),
    )
    parse_release(config.xapi_version)  # a bad version is a usage error before binding
    config.features()  # so is an unknown feature
    if config.faults:
        print(f"xapi-conformance: seeded faults: {', '.join(config.faults)}", file=sys.stderr)
    return serve_forever(config)


def _latency(profile: str | None, scale: float | None) -> LatencyProfile | None:
    from conformance.server.profiles import load_profile

    if profile is None:
        if scale is not None:
            raise UsageError("--latency-scale needs --latency PROFILE")
        return None
    loaded = load_profile(profile)
    return loaded if scale is None else loaded.scaled(scale)


def _list_faults() -> int:
    from conformance.faults import FAULTS, summary

    for name, fault in FAULTS.items():
        print(f"{name:32} {summary(fault)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "serve":
            return _serve(args)
        if args.command == "report":
            from conformance.runner.report import report_command

            return report_command(args)
        from conformance.runner.command import run_command

        return run_command(args)
    except ConformanceError as error:
        print(f"xapi-conformance: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        print(f"xapi-conformance: {error.strerror or error}", file=sys.stderr)
        return ExitCode.TARGET
    except KeyboardInterrupt:
        print("xapi-conformance: interrupted", file=sys.stderr)
        return ExitCode.TARGET


if __name__ == "__main__":
    sys.exit(main())
