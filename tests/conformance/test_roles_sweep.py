"""The roles sweep both ways, in-process with an account of every role the suite logs in as:
the reference server conforms; a server that loses a write to the pool's other_config, lets
any session act on another user's task, judges map edits by their message's role alone, takes
any password, names no user in its refusal, loses a session's originator or keeps a session
after its logout diverges in the case that asks."""

from __future__ import annotations

import pytest

from conformance.areas import roles_sweep
from conformance.engine.harness import Connection
from conformance.engine.importer import Login
from conformance.faults import lookup
from conformance.judge.divergence import Divergence
from conformance.judge.waivers import Waivers
from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.state import ServerState
from conformance.targets.inprocess import InProcessTarget
from models.coverage import CLIENT_CELLS
from models.outcome import Success
from models.setup import initial_world
from models.world import Account, Facts

PASSWORD = "roles-sweep-pw"
ACCOUNTS = tuple(Account(f"u-{role}", f"{role}-pw", role) for role in roles_sweep.ROLE_ORDER)


def _connection(*faults: str) -> Connection:
    config = ServerConfig(password=PASSWORD, accounts=ACCOUNTS)
    world = initial_world(hosts=2, accounts=config.all_accounts(), salt="roles-sweep")
    target = InProcessTarget(XenAPIApp(ServerState(world, lookup(faults))), "xmlrpc")
    root = Account("root", PASSWORD, "pool-admin", superuser=True)
    logins = []
    for account in (root, *ACCOUNTS):
        session = target.call("session.login_with_password", account.name, account.password)
        assert isinstance(session, Success)
        logins.append(Login(str(session.value), account))
    return Connection(
        target=target,
        root=logins[0],
        roles={login.account.role: login for login in logins[1:]},
        facts=Facts(),
        run_id="roles-sweep",
        waivers=Waivers(),
        task_timeout=5.0,
    )


def _run(connection: Connection) -> None:
    for case in roles_sweep.roles_sweep():
        case(connection, "roles")


def test_the_reference_server_conforms_to_every_case() -> None:
    connection = _connection()
    _run(connection)
    assert connection.tally.divergences == []
    assert connection.tally.messages["VM.add_to_other_config"] > 0
    assert [cell for cell in CLIENT_CELLS if not connection.tally.coverage[cell]] == []


def test_the_sweep_leaves_the_pool_as_it_found_it() -> None:
    connection = _connection()
    before = connection.target.call("pool.get_all_records", connection.root.session)
    _run(connection)
    after = connection.target.call("pool.get_all_records", connection.root.session)
    assert after == before


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        ("pool-other-config-write-lost", "pool.get_other_config"),
        ("task-owner-ignored", "task."),
        ("map-key-roles-ignored", "VM."),
        ("any-password-accepted", "SESSION_AUTHENTICATION_FAILED"),
        ("auth-failure-unnamed", "SESSION_AUTHENTICATION_FAILED"),
        ("session-originator-lost", "originator"),
        ("logout-keeps-session", "SESSION_INVALID"),
    ],
)
def test_a_faulty_server_diverges(fault: str, shown: str) -> None:
    with pytest.raises(Divergence) as raised:
        _run(_connection(fault))
    assert shown in str(raised.value)
