"""The embedded server's configuration, parsed once from the command line or built by tests."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from conformance.errors import UsageError
from conformance.server.profiles import LatencyProfile
from models.features import EDITIONS, feature_named
from models.releases import DEFAULT_RELEASE, Release, release
from models.schema import ROLES
from models.world import Account

__all__ = [
    "ServerConfig",
    "parse_account",
    "parse_release",
    "read_accounts_file",
    "read_secret",
]

MAX_REQUEST_BYTES = 300 * 1024
"""xapi's limit on an RPC body (``Constants.http_limit_max_rpc_size``)."""


@dataclass(frozen=True)
class ServerConfig:
    """What ``xapi-conformance serve`` was asked for.

    ``password`` is root's (pool-admin, a local superuser as on a PAM login); ``accounts`` are
    role-limited logins that go through RBAC. ``faults`` names seeded faults
    (``conformance.faults.FAULTS``), applied in order; empty for the reference server.

    Connection limits, as xapi's ``Http_svr`` sets them for TCP where it has one: a connection
    waiting for its next request is closed after ``idle_timeout`` seconds; once a request has
    begun, each read may take ``read_timeout`` seconds and the whole request (headers and
    body) ``request_timeout`` seconds (xapi: 10 s and 60 s); at most ``max_connections`` are
    served at once (xapi: 800), the next ones wait to be accepted. ``threads`` run the model;
    long polls hold none of them.
    ``latency`` makes calls take the time they take on a pool (``serve --latency``).
    """

    host: str = "127.0.0.1"
    port: int = 0
    password: str = ""
    accounts: tuple[Account, ...] = ()
    restrict_dmc: bool = False
    edition: str = "free/libre"
    """The licence edition (``serve --edition``): its features (models.features.EDITIONS)."""
    restricted: tuple[str, ...] = ()
    """Features licensed off on top of the edition (``serve --restrict FEATURE``)."""
    templates: bool = True
    """The pool has its default templates (models/templates.py); ``serve --no-templates``."""
    guest_agent: bool = True
    hosts: int = 2
    threads: int = 8
    max_request_bytes: int = MAX_REQUEST_BYTES
    idle_timeout: float = 120.0
    read_timeout: float = 10.0
    request_timeout: float = 60.0
    max_connections: int = 800
    salt: str = field(default="xapi-conformance")
    faults: tuple[str, ...] = ()
    xapi_version: str = ""
    """The xapi release to behave as (``serve --xapi-version``); empty for the newest known."""
    latency: LatencyProfile | None = None

    def features(self) -> frozenset[str]:
        """The features the pool is licensed for: the edition's, less the restricted ones."""
        try:
            licensed = EDITIONS[self.edition]
            off = {feature_named(name).name for name in self.restricted}
        except KeyError as error:
            raise UsageError(f"unknown licence edition or feature: {error.args[0]}") from None
        return licensed - off - ({"DMC"} if self.restrict_dmc else set())

    def all_accounts(self) -> tuple[Account, ...]:
        """root first, then the role-limited accounts."""
        return (Account("root", self.password, "pool-admin", superuser=True), *self.accounts)


def parse_release(text: str) -> Release:
    """``--xapi-version`` → the release; a clear UsageError when it is not a version."""
    if not text:
        return DEFAULT_RELEASE
    try:
        return release(text)
    except ValueError as error:
        raise UsageError(f"--xapi-version: {error}") from None


def parse_account(text: str) -> Account:
    """``NAME:PASSWORD:ROLE`` → Account; a clear UsageError for anything else."""
    name, sep1, rest = text.partition(":")
    password, sep2, role = rest.rpartition(":")
    if not (sep1 and sep2 and name and role):
        raise UsageError(
            f"--account expects NAME:PASSWORD:ROLE, got {text.split(':', maxsplit=1)[0]!r}:…"
        )
    return _account(name, role, password, "--account")


def read_secret(source: str, environ: Mapping[str, str], base: Path | None = None) -> str:
    """A password from ``env:VAR`` (an environment variable) or ``file:PATH`` (a file's first line).

    A relative PATH is taken from ``base`` (the accounts file's folder) when given. Errors name
    the variable or the file, never a value.
    """
    kind, sep, where = source.partition(":")
    if sep and kind == "env":
        if where not in environ:
            raise UsageError(f"the environment variable {where} is not set")
        return environ[where]
    if sep and kind == "file":
        path = Path(where) if base is None else base / where
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"cannot read the password file {path}: {error}") from None
        return lines[0] if lines else ""
    raise UsageError(f"a password source is env:VAR or file:PATH, got {kind!r}…")


def read_accounts_file(path: Path, environ: Mapping[str, str] = os.environ) -> tuple[Account, ...]:
    """Role-limited accounts, one a line: ``NAME:ROLE:env:VAR`` or ``NAME:ROLE:file:PATH``.

    Blank lines and lines starting with ``#`` are skipped. The file itself holds no password, so
    it can be kept with a CI configuration; a relative PATH is read beside the file.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read the accounts file {path}: {error}") from None
    accounts = []
    for number, line in enumerate(lines, 1):
        if line.strip() and not line.lstrip().startswith("#"):
            accounts.append(_account_line(line.strip(), f"{path}:{number}", environ, path.parent))
    return tuple(accounts)


def _account_line(line: str, where: str, environ: Mapping[str, str], base: Path) -> Account:
    name, _, rest = line.partition(":")
    role, _, source = rest.partition(":")
    if not (name and role and source):
        raise UsageError(f"{where}: expected NAME:ROLE:env:VAR or NAME:ROLE:file:PATH")
    try:
        return _account(name, role, read_secret(source, environ, base), "the accounts file")
    except UsageError as error:
        raise UsageError(f"{where}: {error}") from None


def _account(name: str, role: str, password: str, origin: str) -> Account:
    if role not in ROLES:
        raise UsageError(f"{origin}: role {role!r} is not one of: {', '.join(ROLES)}")
    if name == "root":
        raise UsageError(f"{origin} cannot redefine root; use --password-env for root")
    return Account(name, password, role)
