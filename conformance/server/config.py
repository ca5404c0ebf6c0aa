"""The embedded server's configuration, parsed once from the command line or built by tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.errors import UsageError
from models.schema import ROLES
from models.world import Account

__all__ = ["ServerConfig", "parse_account"]

MAX_REQUEST_BYTES = 300 * 1024
"""xapi's limit on an RPC body (``Constants.http_limit_max_rpc_size``)."""


@dataclass(frozen=True)
class ServerConfig:
    """What ``xapi-conformance serve`` was asked for.

    ``password`` is root's (pool-admin, a local superuser as on a PAM login); ``accounts`` are
    role-limited logins that go through RBAC. ``faults`` names seeded faults
    (``conformance.server.faults.FAULTS``), applied in order; empty for the reference server.

    Connection limits, as xapi's ``Http_svr`` sets them for TCP where it has one: a connection
    waiting for its next request is closed after ``idle_timeout`` seconds; once a request has
    begun, each read may take ``read_timeout`` seconds and the whole request (headers and
    body) ``request_timeout`` seconds (xapi: 10 s and 60 s); at most ``max_connections`` are
    served at once (xapi: 800), the next ones wait to be accepted. ``threads`` run the model;
    long polls hold none of them.
    """

    host: str = "127.0.0.1"
    port: int = 0
    password: str = ""
    accounts: tuple[Account, ...] = ()
    restrict_dmc: bool = False
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

    def all_accounts(self) -> tuple[Account, ...]:
        """root first, then the role-limited accounts."""
        return (Account("root", self.password, "pool-admin", superuser=True), *self.accounts)


def parse_account(text: str) -> Account:
    """``NAME:PASSWORD:ROLE`` → Account; a clear UsageError for anything else."""
    name, sep1, rest = text.partition(":")
    password, sep2, role = rest.rpartition(":")
    if not (sep1 and sep2 and name and role):
        raise UsageError(
            f"--account expects NAME:PASSWORD:ROLE, got {text.split(':', maxsplit=1)[0]!r}:…"
        )
    if role not in ROLES:
        raise UsageError(f"--account role {role!r} is not one of: {', '.join(ROLES)}")
    if name == "root":
        raise UsageError("--account cannot redefine root; use --password for root")
    return Account(name, password, role)
