"""Opening a run's connection: the target (the embedded server by default), logins, facts."""

from __future__ import annotations

import contextlib
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from conformance.engine.harness import Connection, sweep_run_vms
from conformance.engine.importer import Login, memory_accounted
from conformance.errors import LoginFailed, ProtocolError, TargetError, UsageError
from conformance.judge.compare import Strictness
from conformance.judge.waivers import Waivers, load_waivers
from conformance.server.config import ServerConfig, parse_release
from conformance.server.process import start_in_thread
from conformance.targets import Target, TargetSettings, open_target
from models.outcome import Failure
from models.schema import ROLES
from models.world import Account, Facts

__all__ = ["RoleAccount", "RunConfig", "open_connection", "target_settings"]

MAX_SESSION_REF = 1024
"""A session ref longer than this is no ref (xapi's are 46 characters): it would be resent on
every call."""

SUITE_ROLES = ("pool-operator", "vm-power-admin", "vm-admin", "vm-operator", "read-only")
"""Role-limited accounts the suite creates on the embedded server, for RBAC rules."""


@dataclass(frozen=True)
class RoleAccount:
    """An external target's account for a role; the password comes from ``password``."""

    role: str
    user: str
    password: str = field(repr=False)
    password_env: str = ""
    """The environment variable the password was read from (named in reproducers)."""


def target_settings(
    timeout: float, max_response_mb: int, ca_bundle: str | None, insecure: bool
) -> TargetSettings:
    """The transport settings the options ask for; ``UsageError`` for impossible values."""
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    if max_response_mb < 1:
        raise UsageError(f"--max-response-mb must be at least 1, got {max_response_mb}")
    if insecure and ca_bundle:
        raise UsageError("--insecure and --ca-bundle contradict each other; pick one")
    return TargetSettings(
        timeout=timeout,
        connect_timeout=min(timeout, TargetSettings.connect_timeout),
        max_response_bytes=max_response_mb * 2**20,
        verify=ca_bundle or not insecure,
    )


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs to reach its target. ``password`` never appears in reprs."""

    target: str | None = None
    user: str = "root"
    password: str = field(default="", repr=False)
    password_env: str = "XAPI_PASSWORD"
    """The environment variable ``password`` was read from (named in reproducers)."""
    protocol: str = "xmlrpc"
    strictness: Strictness = "exact"
    waivers: Path | None = None
    roles: tuple[RoleAccount, ...] = ()
    settings: TargetSettings = field(default_factory=TargetSettings)
    server_faults: tuple[str, ...] = ()
    xapi_version: str = ""
    """The release to judge by (``--xapi-version``); empty: the one the pool master reports."""
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))


def _login(target: Target, account: Account) -> Login:
    outcome = target.call(
        "session.login_with_password", account.name, account.password, "2.21", "xapi-conformance"
    )
    if isinstance(outcome, Failure):
        raise LoginFailed(
            f"login as {account.name!r} on {target.url} failed with {outcome.code}; "
            "check --user and the password environment variable"
        )
    if not isinstance(outcome.value, str) or len(outcome.value) > MAX_SESSION_REF:
        size = len(outcome.value) if isinstance(outcome.value, str) else type(outcome.value)
        raise ProtocolError(
            f"login as {account.name!r} on {target.url} answered a session ref that is no ref "
            f"({size}); xapi answers a short OpaqueRef"
        )
    return Login(outcome.value, account)


def _embedded(config: RunConfig) -> tuple[Target, Facts, tuple[Account, ...], Callable[[], None]]:
    password = secrets.token_hex(12)
    accounts = tuple(Account(f"suite-{role}", secrets.token_hex(12), role) for role in SUITE_ROLES)
    server_config = ServerConfig(
        password=password,
        accounts=accounts,
        faults=config.server_faults,
        xapi_version=config.xapi_version,
    )
    server = start_in_thread(server_config)
    target = open_target(server.url, config.protocol, config.settings)
    root = Account("root", password, "pool-admin", superuser=True)
    return (
        target,
        Facts(guest_has_pv_drivers=True, host_memory_sufficient=True),
        (root, *accounts),
        server.stop,
    )


def _external(config: RunConfig) -> tuple[Target, Facts, tuple[Account, ...], Callable[[], None]]:
    assert config.target is not None
    target = open_target(config.target, config.protocol, config.settings)
    root = Account(config.user, config.password, "pool-admin", superuser=True)
    roles = tuple(Account(r.user, r.password, r.role) for r in config.roles)
    facts = Facts(guest_has_pv_drivers=None, host_memory_sufficient=None)
    return target, facts, (root, *roles), lambda: None


def open_connection(config: RunConfig) -> tuple[Connection, Callable[[], None]]:
    """Log in to the target (starting the embedded one if none is named); returns a closer."""
    for role in config.roles:
        if role.role not in ROLES:
            raise UsageError(f"unknown role {role.role!r}; roles are: {', '.join(ROLES)}")
    opener = _embedded if config.target is None else _external
    target, facts, accounts, stop_server = opener(config)
    try:
        logins = [_login(target, account) for account in accounts]
    except BaseException:
        target.close()
        stop_server()
        raise
    if facts.host_memory_sufficient is None and memory_accounted(target, tuple(logins)):
        facts = replace(facts, host_memory_sufficient=True)
    waivers = load_waivers(config.waivers) if config.waivers else Waivers()
    connection = Connection(
        target=target,
        root=logins[0],
        roles={login.account.role: login for login in logins[1:]},
        facts=facts,
        run_id=config.run_id,
        strictness=config.strictness,
        waivers=waivers,
        release=parse_release(config.xapi_version) if config.xapi_version else None,
        password_env=config.password_env,
        role_password_envs={role.role: role.password_env for role in config.roles},
    )

    def close() -> None:
        """Remove the run's VMs and log out, as far as the target answers; always release."""
        try:
            with contextlib.suppress(TargetError):
                sweep_run_vms(target, logins[0].session, connection.run_id)
            for login in logins:
                with contextlib.suppress(TargetError):
                    target.call("session.logout", login.session)
        finally:
            target.close()
            stop_server()

    return connection, close
