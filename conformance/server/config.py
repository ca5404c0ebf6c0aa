"""The embedded server's configuration, parsed once from the command line or built by tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.errors import UsageError
from models.schema import ROLES
from models.world import Account

__all__ = ["ServerConfig", "parse_account"]

MAX_REQUEST_BYTES = 16 * 2**20


@dataclass(frozen=True)
class ServerConfig:
    """What ``xapi-conformance serve`` was asked for.

    ``password`` is root's (pool-admin, a local superuser as on a PAM login); ``accounts`` are
    role-limited logins that go through RBAC. ``faults`` names seeded faults
    (``conformance.server.faults.FAULTS``), applied in order; empty for the reference server.
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
