"""The ``run`` command's options: one table for the CLI and for its pytest plugin twins.

Each row of ``OPTIONS`` makes ``xapi-conformance run --NAME`` and, for most, the plugin's
``--xapi-NAME`` with the same default, type, choices and help; ``run`` hands its values to the
plugin through the same table (``pytest_arguments``). A contract other tools depend on: keep
names stable. The module is light (stdlib only) because the plugin reads it at start-up.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.areas.registry import SELECTABLE, SWEEP_AREAS
from conformance.targets.base import DEFAULT_MAX_RESPONSE_MB, DEFAULT_TIMEOUT_S, STALL_AFTER

__all__ = [
    "AREA_NAMES",
    "DEFAULT_MAX_RESPONSE_MB",
    "DEFAULT_TIMEOUT_S",
    "OPTIONS",
    "PROFILES",
    "STALL_AFTER",
    "STRICTNESS",
    "SUITE_TESTS",
    "Option",
    "add_plugin_options",
    "add_run_parser",
    "plugin_arguments",
]

PROFILES = ("ci", "dev", "thorough")
STRICTNESS = ("exact", "arity", "code")
AREA_NAMES = SELECTABLE
"""What ``-k`` selects: the suite's areas (its machines) and the deterministic sweeps."""

SUITE_TESTS = ("test_area", *SWEEP_AREAS)
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
  3  the target could not be tested (unreachable, login refused, broken protocol, stalled),
     or the run was interrupted before any finding

areas (-k): {", ".join(AREA_NAMES)}"""


@dataclass(frozen=True)
class Option:
    """One option of ``run``.

    ``twin``: the plugin has ``--xapi-<name>``; ``cli``: ``run`` has it (``flags`` when it is
    not spelled ``--<name>``); ``pytest``: a CLI-only option handed to pytest under that flag;
    ``also``: one more pytest flag that gets the same value.
    """

    name: str
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    repeat: bool = False
    switch: bool = False
    hidden: bool = False
    twin: bool = True
    cli: bool = True
    flags: tuple[str, ...] = ()
    dest: str = ""
    pytest: str = ""
    also: str = ""

    @property
    def cli_flags(self) -> tuple[str, ...]:
        """The CLI spellings (``--timeout``, or short flags such as ``-n``)."""
        return self.flags or (f"--{self.name}",)

    @property
    def cli_dest(self) -> str:
        """The attribute on the CLI's parsed arguments."""
        return self.dest or self.name.replace("-", "_")

    @property
    def plugin_flag(self) -> str:
        """The pytest plugin's spelling (``--xapi-timeout``; ``config.getoption("xapi_timeout")``)."""
        return f"--xapi-{self.name}"

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for argparse's ``add_argument`` and pytest's ``addoption``."""
        shown = argparse.SUPPRESS if self.hidden else self.help
        if self.switch:
            return {"help": shown, "action": "store_true", "default": False}
        if self.repeat:
            return {"help": shown, "action": "append", "default": [], "metavar": self.metavar}
        kwargs: dict[str, Any] = {"help": shown, "default": self.default}
        if self.type is not None:
            kwargs["type"] = self.type
        if self.choices is not None:
            kwargs["choices"] = self.choices
        elif self.metavar is not None:
            kwargs["metavar"] = self.metavar
        return kwargs


OPTIONS: tuple[Option, ...] = (
    Option("target", "XenAPI endpoint (default: the embedded server)", metavar="URL"),
    Option("user", "login name (default root)", default="root"),
    Option(
        "password-env",
        "environment variable holding the password (default XAPI_PASSWORD)",
        default="XAPI_PASSWORD",
        metavar="VAR",
    ),
    Option(
        "protocol",
        "wire protocol (default xmlrpc)",
        default="xmlrpc",
        choices=("xmlrpc", "jsonrpc"),
    ),
    Option(
        "profile",
        "dev (fast), ci (default, a few minutes), thorough (nightly)",
        default="ci",
        choices=PROFILES,
    ),
    Option("max-examples", "examples per area (overrides the profile)", type=int, metavar="N"),
    Option(
        "seed",
        "repeat a run exactly (default: one is picked and printed)",
        type=int,
        metavar="N",
        also="--hypothesis-seed",
    ),
    Option(
        "strictness",
        "compare error params exactly (default), by count, or by code only",
        default="exact",
        choices=STRICTNESS,
    ),
    Option("waivers", "TOML file of known deviations (see docs/reports.md)", metavar="FILE"),
    Option(
        "report-dir",
        "where reports go (default ./xapi-conformance-report)",
        default="./xapi-conformance-report",
        metavar="DIR",
    ),
    Option(
        "timeout",
        f"deadline of each call's whole answer and of an Async task, in seconds (default "
        f"{DEFAULT_TIMEOUT_S:g}); {STALL_AFTER} missed in a row stop the run",
        default=DEFAULT_TIMEOUT_S,
        type=float,
        metavar="SECONDS",
    ),
    Option(
        "max-response-mb",
        f"largest answer read from the target (default {DEFAULT_MAX_RESPONSE_MB})",
        default=DEFAULT_MAX_RESPONSE_MB,
        type=int,
        metavar="MB",
    ),
    Option(
        "workers",
        "parallel workers: a number, or auto for one per core (default 0: none)",
        default="0",
        metavar="N",
        twin=False,
        flags=("-n",),
        pytest="-n",
    ),
    Option(
        "baseline",
        "summary.json of an earlier run: its findings are known; only new ones exit 1",
        metavar="PATH",
    ),
    Option(
        "exitfirst",
        "stop at the first test with a finding",
        switch=True,
        twin=False,
        flags=("-x",),
        pytest="-x",
    ),
    Option("max-findings", "stop once N findings are seen", type=int, metavar="N"),
    Option(
        "verbose",
        "show each test and its failure as pytest reports it",
        switch=True,
        twin=False,
        flags=("-v", "--verbose"),
    ),
    Option(
        "role-account",
        "an external target's account for ROLE (repeatable); password read from PASSWORD_ENV",
        metavar="ROLE=USER:PASSWORD_ENV",
        repeat=True,
    ),
    Option("ca-bundle", "CA bundle to verify TLS", metavar="FILE"),
    Option("insecure", "do not verify TLS certificates", switch=True),
    Option(
        "time-budget",
        "end the run near this time: seconds, or 90s, 15m, 1h30m (sweeps first, shrinking "
        "bounded; what was left out is reported)",
        metavar="DURATION",
    ),
    Option(
        "version",
        "judge by xapi release V (e.g. 24.19) instead of the one the pool master reports; "
        "the embedded server then behaves as V",
        metavar="V",
        flags=("--xapi-version",),
        dest="xapi_version",
    ),
    Option("fault", "seeded fault of the embedded server", repeat=True, hidden=True),
    Option(
        "select",
        f"select areas (pytest -k): {', '.join(AREA_NAMES)}",
        metavar="EXPR",
        twin=False,
        flags=("-k",),
        pytest="-k",
    ),
    Option("run-id", "the run's tag on the VMs it creates", hidden=True, cli=False),
)
"""Every option of ``run`` and of the plugin, in ``--help`` order."""


def add_run_parser(commands: Any) -> None:
    """Register ``run`` on the subcommand table."""
    run: argparse.ArgumentParser = commands.add_parser(
        "run",
        help="run the conformance suite against a target (default: the embedded server)",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for option in OPTIONS:
        if option.cli:
            run.add_argument(*option.cli_flags, dest=option.cli_dest, **option.kwargs())


def add_plugin_options(addoption: Callable[..., None]) -> None:
    """Register the plugin's ``--xapi-*`` twins with pytest's ``group.addoption``."""
    for option in OPTIONS:
        if option.twin:
            addoption(option.plugin_flag, **option.kwargs())


def plugin_arguments(args: argparse.Namespace, overrides: Mapping[str, Any]) -> Iterator[str]:
    """pytest arguments carrying the CLI's values (``overrides`` by option name)."""
    for option in OPTIONS:
        if not option.cli:
            continue
        value = overrides.get(option.name, getattr(args, option.cli_dest))
        if option.twin:
            yield from _values(option.plugin_flag, option, value)
            yield from _values(option.also, option, value) if option.also else ()
        elif option.pytest:
            yield from _values(option.pytest, option, value, skip_default=True)


def _values(flag: str, option: Option, value: Any, skip_default: bool = False) -> Iterator[str]:
    if option.switch:
        yield from [flag] if value else []
    elif option.repeat:
        yield from (f"{flag}={item}" for item in value)
    elif value is not None and not (skip_default and value == option.default):
        yield from (
            [flag, str(value)]
            if flag.startswith("-") and not flag.startswith("--")
            else [f"{flag}={value}"]
        )
