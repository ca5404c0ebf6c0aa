"""The world the model reasons about: VMs plus the pool, hosts, SRs, sessions and tasks they touch.

Everything here is frozen. A transition builds a new ``World`` with ``dataclasses.replace``; nothing
is mutated in place, so any earlier world can be kept, compared or replayed.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from models.outcome import Value
from models.releases import DEFAULT_RELEASE, Release

__all__ = [
    "NULL_REF",
    "Account",
    "Facts",
    "Host",
    "Pool",
    "Record",
    "SessionInfo",
    "Task",
    "World",
    "frozen",
    "new_ids",
    "with_vm",
    "without_vm",
]

NULL_REF = "OpaqueRef:NULL"

Record = Mapping[str, Value]
"""A VM record keyed by wire field names, never mutated."""


def frozen(record: Mapping[str, Value]) -> Record:
    """Return a read-only view of a fresh copy of ``record``."""
    return MappingProxyType(dict(record))


def _empty() -> Mapping[str, Value]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Facts:
    """What decides xapi's answer but which a client cannot see.

    ``None`` means unknown: where the answer depends on it, the model offers every branch.
    What a client can read (DMC in ``pool.restrictions``, host capabilities) lives in the pool
    and host records instead.
    """

    guest_has_pv_drivers: bool | None = True
    host_memory_sufficient: bool | None = True
    clone_suspended_allowed: bool = False


@dataclass(frozen=True)
class Account:
    """A login the server accepts. ``superuser`` sessions bypass RBAC, as PAM logins do."""

    name: str
    password: str
    role: str
    superuser: bool = False


@dataclass(frozen=True)
class SessionInfo:
    """A live session: who logged in, with which role."""

    user: str
    role: str
    superuser: bool
    uuid: str = ""
    originator: str = ""


GENERIC_BIOS_STRINGS: Mapping[str, str] = MappingProxyType(
    {
        "bios-vendor": "Xen",
        "bios-version": "",
        "system-manufacturer": "Xen",
        "system-product-name": "HVM domU",
        "system-version": "",
        "system-serial-number": "",
        "baseboard-manufacturer": "",
        "baseboard-product-name": "",
        "baseboard-version": "",
        "baseboard-serial-number": "",
        "baseboard-asset-tag": "",
        "baseboard-location-in-chassis": "",
        "enclosure-asset-tag": "",
        "hp-rombios": "",
        "oem-1": "Xen",
        "oem-2": "MS_VM_CERT/SHA1/bdbeb6e0a816d43fa6d3fe8aaef04c2bad9d3e3d",
    }
)
"""constants.ml ``generic_bios_strings`` (with ``standard_type11_strings``): what a VM without
BIOS strings gets at its first start, and the strings of the simulator's hosts."""


@dataclass(frozen=True)
class Host:
    """A pool member. ``hvm`` mirrors an "hvm-3.0-x86_64" entry in its capabilities."""

    ref: str
    uuid: str
    name_label: str
    address: str
    memory_total: int = 64 * 2**30
    hvm: bool = True
    live: bool = True
    control_domain: str = NULL_REF
    enabled: bool = True
    """False after host.disable: only control domains (and local migrations) start there."""
    cpu_count: int = 16
    """Physical CPUs (``cpu_info`` "cpu_count"): a VM with more VCPUs_max does not boot here."""
    virtual_hardware_platform_versions: tuple[int, ...] = (0, 1, 2)
    """The versions a host offers its guests (xapi_globs.ml: 0, 1 and 2, has_vendor_device)."""
    memory_overhead: int = 0
    """Host memory xapi keeps back from guests (its record's ``memory_overhead``)."""
    bios_strings: Mapping[str, str] = field(default_factory=lambda: GENERIC_BIOS_STRINGS)
    """What VM.copy_bios_strings copies to a VM (its record's ``bios_strings``)."""


@dataclass(frozen=True)
class Pool:
    """The pool singleton: its restrictions decide DMC, its other_config clone-suspended."""

    ref: str
    uuid: str
    master: str
    restrictions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    other_config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Task:
    """An ``Async.`` call's task. ``result`` holds the value; codecs render xapi's text form."""

    ref: str
    uuid: str
    name_label: str
    status: str
    result: Value = ""
    error_info: tuple[str, ...] = ()
    session: str = NULL_REF
    created: datetime.datetime = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    progress: float = 0.0
    """How far a ``pending`` task has come (0 to 1); a finished task reports 1."""
    other_config: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    resident_on: str = NULL_REF
    """The host running the call: the one the client called, the pool master
    (taskHelper.ml ``make``: ``!Xapi_globs.localhost_ref``)."""
    finished: datetime.datetime | None = None
    """When it ended; None for a task the model ends as it creates it (at ``created``)."""


@dataclass(frozen=True)
class World:
    """The model's whole state. ``counter`` and ``salt`` make new refs and uuids deterministic."""

    pool: Pool
    hosts: Mapping[str, Host]
    srs: Mapping[str, Record]
    vms: Mapping[str, Record]
    accounts: Mapping[str, Account]
    sessions: Mapping[str, SessionInfo] = field(default_factory=_empty)  # type: ignore[arg-type]
    tasks: Mapping[str, Task] = field(default_factory=_empty)  # type: ignore[arg-type]
    facts: Facts = Facts()
    allowed_without_drivers: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)  # type: ignore[arg-type]
    """While guest drivers are unknown: each VM's allowed_operations as xapi would have stored
    them if the guest had no PV drivers, where that differs from the record's (which assumes
    drivers). Discarded once a branch fixes the fact."""
    counter: int = 0
    salt: str = "xapi-conformance"
    release: Release = DEFAULT_RELEASE
    """The xapi release whose behaviour (and host versions) the model follows."""
    booted_flags: Mapping[str, tuple[bool, bool]] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Per VM, ``(nomigrate, nested_virt)`` as xenopsd captured them from the platform at its
    last boot (xapi's VM_metrics); later platform changes do not count until the next boot."""
    booted_domain_types: Mapping[str, str] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Per VM, its domain type at its last boot (VM_metrics.current_domain_type, as xenopsd
    reports the domain): a later VM.set_domain_type does not change it until the next boot."""
    snapshot_sources: Mapping[str, Record] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Per snapshot ref, the source VM's record when it was taken: what xapi serialises into
    ``snapshot_metadata`` and VM.revert restores from (the wire field itself is opaque)."""
    plugin_calls: Mapping[tuple[str, str], datetime.datetime] = field(default_factory=_empty)  # type: ignore[arg-type]
    """Per (host, VM), when the host last let a VM.call_plugin through its rate limit (xapi's
    host-local ``call_plugin_latest`` table in xapi_vm.ml); entries past the interval go."""


def _uuid_from(salt: str, counter: int, kind: str) -> str:
    digest = hashlib.sha256(f"{salt}/{counter}/{kind}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def new_ids(world: World) -> tuple[str, str, World]:
    """A fresh ``(ref, uuid)`` pair and the world that has used it."""
    ref = "OpaqueRef:" + _uuid_from(world.salt, world.counter, "ref")
    new_uuid = _uuid_from(world.salt, world.counter, "uuid")
    return ref, new_uuid, replace(world, counter=world.counter + 1)


def with_vm(world: World, ref: str, record: Mapping[str, Value]) -> World:
    """The world where VM ``ref`` has ``record`` (added or replaced)."""
    return replace(world, vms=MappingProxyType({**world.vms, ref: frozen(record)}))


def without_vm(world: World, ref: str) -> World:
    """The world without VM ``ref``."""
    return replace(world, vms=MappingProxyType({k: v for k, v in world.vms.items() if k != ref}))
