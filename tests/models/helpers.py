"""A small driver for the model in tests: log in, create VMs, call, demand one branch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.outcome import Failure, Outcome, Success
from models.rpc import apply
from models.setup import initial_world
from models.transition import Call
from models.world import Account, Facts, World

GIB = 2**30
MIB = 2**20


def vm_args(**overrides: object) -> dict[str, object]:
    """A VM.create record with every required field, as a careful client sends it."""
    record: dict[str, object] = {
        "name_label": "test-vm",
        "user_version": "1",
        "is_a_template": False,
        "affinity": "OpaqueRef:NULL",
        "memory_static_max": str(GIB),
        "memory_dynamic_max": str(GIB),
        "memory_dynamic_min": str(512 * MIB),
        "memory_static_min": str(256 * MIB),
        "VCPUs_params": {},
        "VCPUs_max": "2",
        "VCPUs_at_startup": "1",
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {},
        "platform": {},
        "PCI_bus": "",
        "other_config": {},
        "recommendations": "",
    }
    record.update(overrides)
    return record


@dataclass
class Driver:
    """Drives the model through one branch at a time and keeps the current world."""

    world: World
    session: str = ""
    sessions: dict[str, str] = field(default_factory=dict)

    def branches(self, method: str, *args: object) -> tuple[Any, ...]:
        return apply(self.world, Call(method, args))

    def raw(self, method: str, *args: object) -> Outcome:
        """Call with exactly the given args (session included) and demand a single branch."""
        result = self.branches(method, *args)
        assert len(result) == 1, f"{method} has {len(result)} branches: {result}"
        self.world = result[0].world
        return result[0].outcome

    def call(self, method: str, *args: object) -> Outcome:
        """Call as the logged-in session."""
        return self.raw(method, self.session, *args)

    def ok(self, method: str, *args: object) -> Any:
        outcome = self.call(method, *args)
        assert isinstance(outcome, Success), f"{method}{args} failed: {outcome}"
        return outcome.value

    def fails(self, method: str, *args: object) -> Failure:
        outcome = self.call(method, *args)
        assert isinstance(outcome, Failure), f"{method}{args} succeeded: {outcome}"
        return outcome

    def login(self, user: str = "root", password: str = "") -> str:
        outcome = self.raw("session.login_with_password", user, password)
        assert isinstance(outcome, Success)
        return str(outcome.value)

    def new_vm(self, **overrides: object) -> str:
        return str(self.ok("VM.create", vm_args(**overrides)))

    def field(self, ref: str, name: str) -> Any:
        return self.ok(f"VM.get_{name}", ref)

    def in_state(self, state: str, **overrides: object) -> str:
        """A new VM brought to ``state`` through the API."""
        ref = self.new_vm(**overrides)
        if state in ("Running", "Paused", "Suspended"):
            self.ok("VM.start", ref, state == "Paused", False)
        if state == "Suspended":
            self.ok("VM.suspend", ref)
        assert self.field(ref, "power_state") == state
        return ref


def driver(
    *,
    dmc: bool = True,
    facts: Facts | None = None,
    accounts: tuple[Account, ...] = (),
    hosts: int = 2,
) -> Driver:
    """A logged-in driver on a fresh world."""
    every = (Account("root", "", "pool-admin", superuser=True), *accounts)
    world = initial_world(hosts=hosts, accounts=every, dmc_enabled=dmc, facts=facts or Facts())
    d = Driver(world)
    d.session = d.login()
    return d
