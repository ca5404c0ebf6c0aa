"""xapi's own tests, ported: each expectation runs against the model and the embedded server.

The ``api`` fixture is one client over three backends: the pure model (first branch, as the
server takes it), and the embedded server's WSGI app over XML-RPC and over JSON-RPC (the real
codecs, no socket). Values read back are normalised so that a test is written once: ints as
XML-RPC sends them (strings) compare through ``api.int``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.state import ServerState
from conformance.targets.inprocess import InProcessTarget
from conformance.wire.xmlrpc import value_text
from models.outcome import Encoded, Failure, Outcome, Success
from models.releases import DEFAULT_RELEASE, release
from models.rpc import apply
from models.setup import initial_world
from models.transition import Call
from models.world import Account, World
from tests.models.helpers import vm_args

PASSWORD = "xapi-oracle-pw"
BACKENDS = ("model", "xmlrpc", "jsonrpc")
WIRE = ("xmlrpc", "jsonrpc")


@dataclass
class ModelBackend:
    """The model alone: the first branch of every call, as the embedded server takes it."""

    world: World

    def call(self, method: str, *params: Any) -> Outcome:
        branch = apply(self.world, Call(method, params))[0]
        self.world = branch.world
        outcome = branch.outcome
        if isinstance(outcome, Success) and isinstance(outcome.value, Encoded):
            return Success(
                value_text(outcome.value.value)
            )  # the text a codec sends, as xapi stores it
        return outcome

    def update(self, change: Callable[[World], World]) -> None:
        """Change the world outside any call (what happens on the host, not on the wire)."""
        self.world = change(self.world)


@dataclass
class Api:
    """A logged-in client of one backend."""

    backend: Any
    name: str
    session: str = ""
    made: list[str] = field(default_factory=list)
    state: Any = None
    """The embedded server's state (None for the model)."""

    def raw(self, method: str, *params: Any) -> Outcome:
        return self.backend.call(method, *params)  # type: ignore[no-any-return]

    def call(self, method: str, *params: Any) -> Outcome:
        return self.raw(method, self.session, *params)

    def ok(self, method: str, *params: Any) -> Any:
        outcome = self.call(method, *params)
        assert isinstance(outcome, Success), f"{self.name}: {method}{params} failed: {outcome}"
        return outcome.value

    def fails(self, method: str, *params: Any) -> Failure:
        outcome = self.call(method, *params)
        assert isinstance(outcome, Failure), f"{self.name}: {method}{params} succeeded"
        return Failure(outcome.code, tuple(str(p) for p in outcome.params))

    def new_vm(self, **overrides: Any) -> str:
        return str(self.ok("VM.create", vm_args(**overrides)))

    def get(self, vm: str, field_name: str) -> Any:
        return self.ok(f"VM.get_{field_name}", vm)

    def int(self, vm: str, field_name: str) -> int:
        return int(self.get(vm, field_name))

    def host_event(self, change: Callable[[World], World]) -> None:
        """Something happens on the host, not through the API (a guest stops its domain)."""
        if self.state is None:
            self.backend.update(change)
        else:
            self.state.update(change)

    def in_state(self, state: str, **overrides: Any) -> str:
        """A new VM brought to ``state`` through the API."""
        vm = self.new_vm(**overrides)
        if state in ("Running", "Paused", "Suspended"):
            self.ok("VM.start", vm, state == "Paused", False)
        if state == "Suspended":
            self.ok("VM.suspend", vm)
        assert self.get(vm, "power_state") == state
        return vm


def _accounts() -> tuple[Account, ...]:
    return (
        Account("operator", "op-pw", "vm-operator"),
        Account("admin", "admin-pw", "vm-admin"),
        Account("ro", "ro-pw", "read-only"),
    )


def make_api(kind: str, xapi_version: str = "", restricted: tuple[str, ...] = ()) -> Api:
    """A logged-in root client of backend ``kind`` (model, xmlrpc or jsonrpc), behaving as xapi
    ``xapi_version`` (default: the newest release known), with the ``restricted`` features
    licensed off."""
    state: ServerState | None = None
    config = ServerConfig(
        password=PASSWORD, accounts=_accounts(), xapi_version=xapi_version, restricted=restricted
    )
    if kind == "model":
        every = (Account("root", PASSWORD, "pool-admin", superuser=True), *_accounts())
        chosen = release(xapi_version) if xapi_version else DEFAULT_RELEASE
        world = initial_world(
            accounts=every, release=chosen, features=config.features(), templates=config.templates
        )
        backend: Any = ModelBackend(world)
    else:
        state = ServerState.from_config(config)
        backend = InProcessTarget(XenAPIApp(state), protocol=kind)  # type: ignore[arg-type]
    api = Api(backend, kind, state=state)
    login = api.raw("session.login_with_password", "root", PASSWORD, "2.21", "xapi-oracle")
    assert isinstance(login, Success)
    api.session = str(login.value)
    return api


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    """One client per backend: the model, the embedded server over XML-RPC and JSON-RPC."""
    yield make_api(request.param)


@pytest.fixture(params=WIRE)
def wire_api(request: pytest.FixtureRequest) -> Iterator[Api]:
    """The embedded server only (event.from and event.inject are the server's, not the model's)."""
    yield make_api(request.param)


def login_as(api: Api, user: str, password: str) -> Api:
    """Another session on the same backend."""
    other = Api(api.backend, api.name)
    outcome = api.raw("session.login_with_password", user, password, "2.21", "xapi-oracle")
    assert isinstance(outcome, Success), outcome
    other.session = str(outcome.value)
    return other
