"""One table of options: the CLI and the pytest plugin agree on every name, default and value."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from conformance.areas.registry import SWEEP_AREAS
from conformance.errors import UsageError
from conformance.runner.cli import build_parser
from conformance.runner.command import _check_selection, pytest_arguments
from conformance.runner.options import OPTIONS, add_plugin_options

ARGS = [
    "run",
    "--target", "https://pool.example/",
    "--user", "alice",
    "--password-env", "POOL_PW",
    "--protocol", "jsonrpc",
    "--profile", "dev",
    "--max-examples", "7",
    "--seed", "42",
    "--strictness", "code",
    "--waivers", "w.toml",
    "--timeout", "2.5",
    "--max-response-mb", "3",
    "-n", "2",
    "--baseline", "old.json",
    "-x",
    "--max-findings", "4",
    "--role-account", "read-only=bob:BOB_PW",
    "--role-account", "vm-admin=carol:CAROL_PW",
    "--ca-bundle", "ca.pem",
    "--fault", "stale-record",
    "-k", "memory",
]  # fmt: skip


def _plugin_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_plugin_options(parser.add_argument)
    parser.add_argument("--hypothesis-seed")
    parser.add_argument("-n")
    parser.add_argument("-k")
    parser.add_argument("-x", action="store_true")
    return parser


def test_every_value_given_to_run_reaches_the_plugin_unchanged(tmp_path: Path) -> None:
    cli = build_parser().parse_args(ARGS)
    argv = pytest_arguments(cli, tmp_path)
    known, _rest = _plugin_parser().parse_known_args(argv)
    for option in OPTIONS:
        if option.twin and option.cli:
            plugin = getattr(known, "xapi_" + option.name.replace("-", "_"))
            expected = (
                str(tmp_path) if option.name == "report-dir" else getattr(cli, option.cli_dest)
            )
            assert plugin == expected, option.name
    assert known.hypothesis_seed == "42" and known.n == "2" and known.k == "memory" and known.x


def test_the_defaults_of_run_are_the_plugins_defaults() -> None:
    cli = build_parser().parse_args(["run"])
    plugin = _plugin_parser().parse_args([])
    for option in OPTIONS:
        if option.twin and option.cli:
            assert getattr(plugin, "xapi_" + option.name.replace("-", "_")) == getattr(
                cli, option.cli_dest
            ), option.name


@pytest.mark.parametrize("name", ["timeout", "max-response-mb", "baseline", "target", "protocol"])
def test_the_plugin_knows_every_run_option(name: str, pytestconfig: pytest.Config) -> None:
    assert pytestconfig.getoption(f"xapi_{name.replace('-', '_')}") == next(
        o.default for o in OPTIONS if o.name == name
    )


@pytest.mark.parametrize("name", ["test_area", *SWEEP_AREAS])
def test_k_may_name_each_test_of_the_suite(name: str) -> None:
    """``-k`` names areas and the suite's test functions, the gap cases' included."""
    _check_selection(name.removeprefix("test_"))
    with pytest.raises(UsageError):
        _check_selection(f"{name}_typo_x")


@pytest.mark.parametrize(("workers", "one_by_one"), [("0", False), ("2", True), ("auto", True)])
def test_workers_are_handed_one_piece_at_a_time(
    workers: str, one_by_one: bool, tmp_path: Path
) -> None:
    """With workers, xdist hands each its next piece as it starts one (not a batch), so that
    the pieces, longest first, go to whichever worker frees up first."""
    cli = build_parser().parse_args(["run", "-n", workers])
    assert ("--maxschedchunk=1" in pytest_arguments(cli, tmp_path)) is one_by_one
