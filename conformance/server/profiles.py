"""Latency profiles: the seconds each message class takes on a pool (``serve --latency``).

A profile gives seconds per message class (getters, setters, create, clone, start, ...). The
built-in profile ``xapi`` estimates a LAN pool of recent XCP-ng / XenServer hosts driving the small
disk-less VMs the suite creates; ``XAPI_SOURCES`` says where each figure comes from. A TOML file may
give its own figures (see ``load_profile``).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from conformance.errors import UsageError
from models.rpc import ASYNC_PREFIX, REGISTRY

__all__ = [
    "CLASSES",
    "NO_LATENCY",
    "PROFILES",
    "XAPI",
    "XAPI_SOURCES",
    "LatencyProfile",
    "load_profile",
    "message_class",
]

_LIFECYCLE_CLASSES = {
    "start": ("start", "start_on"),
    "clean_shutdown": ("clean_shutdown", "shutdown"),
    "hard_shutdown": ("hard_shutdown",),
    "clean_reboot": ("clean_reboot",),
    "hard_reboot": ("hard_reboot",),
    "suspend": ("suspend",),
    "resume": ("resume", "resume_on"),
    "pause": ("pause", "unpause"),
    "migrate": ("pool_migrate", "migrate_send"),
    "clone": ("clone", "copy", "snapshot", "provision", "snapshot_with_quiesce"),
    "checkpoint": ("checkpoint",),
    "revert": ("revert",),
    "create": ("create",),
    "destroy": ("destroy",),
}
_BY_VM_MESSAGE = {f"VM.{m}": cls for cls, ms in _LIFECYCLE_CLASSES.items() for m in ms}

CLASSES: Mapping[str, str] = MappingProxyType(
    {
        "read": "getters, get_record, get_all*, get_by_*, assert_* and other queries",
        "write": "setters, map and set edits, and every other small database change",
        "login": "session.login_with_password",
        "create": "VM.create",
        "destroy": "VM.destroy",
        "clone": "VM.clone, copy, snapshot, provision (of disk-less VMs)",
        "checkpoint": "VM.checkpoint (a snapshot with the memory image)",
        "revert": "VM.revert",
        "start": "VM.start, start_on",
        "clean_shutdown": "VM.clean_shutdown, shutdown",
        "hard_shutdown": "VM.hard_shutdown",
        "clean_reboot": "VM.clean_reboot",
        "hard_reboot": "VM.hard_reboot",
        "suspend": "VM.suspend",
        "resume": "VM.resume, resume_on",
        "pause": "VM.pause, unpause",
        "migrate": "VM.pool_migrate, migrate_send",
        "failure": "any call refused by xapi's checks (bad power state, blocked, RBAC, ...)",
        "async": "added to every Async. call: its task's creation, updates and completion",
    }
)
"""Message classes a profile gives figures for, and what each covers."""

XAPI: Mapping[str, float] = MappingProxyType(
    {
        "read": 0.004,
        "write": 0.008,
        "login": 0.05,
        "create": 0.03,
        "destroy": 0.05,
        "clone": 0.5,
        "checkpoint": 5.0,
        "revert": 1.0,
        "start": 8.0,
        "clean_shutdown": 15.0,
        "hard_shutdown": 2.0,
        "clean_reboot": 23.0,
        "hard_reboot": 10.0,
        "suspend": 8.0,
        "resume": 6.0,
        "pause": 0.1,
        "migrate": 15.0,
        "failure": 0.005,
        "async": 0.05,
    }
)
"""The ``xapi`` profile: seconds per class (estimates; see XAPI_SOURCES)."""

XAPI_SOURCES: Mapping[str, str] = MappingProxyType(
    {
        "read": "one RPC over TLS on a LAN (stunnel in front of xapi) plus a lookup in xapi's "
        "in-memory database: a few milliseconds; a remote pool adds its round trip (~40 ms "
        "measured in issue 11 for a plausible remote pool: scale or override for that).",
        "write": "a read's round trip plus a database write, which xapi also turns into an event "
        "for every subscriber (Db_cache / Xapi_event): about twice a read.",
        "login": "session.login_with_password authenticates through PAM (a password hash "
        "check, tens of milliseconds) and writes the session record.",
        "create": "VM.create writes the VM record and its VM_metrics record (Xapi_vm.create).",
        "destroy": "VM.destroy removes the VM, its metrics and its (here absent) devices "
        "(Xapi_vm_helpers.destroy).",
        "clone": "Xapi_vm_clone copies the record, VIFs and VBDs and clones each VDI; with no "
        "disks it is database work, a fraction of a second (seconds per disk otherwise).",
        "checkpoint": "a snapshot that also suspends the memory image to a VDI and resumes "
        "(Xapi_vm_snapshot.checkpoint): about a suspend for the suite's 0.5-1 GiB VMs.",
        "revert": "Xapi_vm_snapshot.revert rewrites the record from the snapshot and hard-shuts "
        "down the VM first when it runs: about a second with no disks.",
        "start": "xenopsd's VM_start atomics: create and build the domain, plug devices, start "
        "the device model (qemu) for HVM guests, unpause: several seconds until the call "
        "returns (the guest then still boots).",
        "clean_shutdown": "the guest runs its own shutdown after the PV control request; "
        "xenopsd waits up to domain_shutdown_ack_timeout (60 s) for the ack and xapi up to "
        "domain_shutdown_total_timeout (1200 s): a Linux guest takes 10-20 s.",
        "hard_shutdown": "xenopsd destroys the domain and unplugs its devices: 1-3 s.",
        "clean_reboot": "a clean shutdown and a start (xenopsd's VM_reboot atomics).",
        "hard_reboot": "a hard shutdown and a start.",
        "suspend": "the guest cooperates, then its memory (0.5-1 GiB here) is written to the "
        "suspend VDI at disk speed: 5-10 s.",
        "resume": "the memory image is read back and the domain rebuilt: a little less than a "
        "suspend.",
        "pause": "xenopsd pauses or unpauses the domain: a hypercall and a database write.",
        "migrate": "a live migration copies the memory over the network in rounds: 10-20 s "
        "for 1 GiB on 1 GbE.",
        "failure": "xapi checks power state, blocked and allowed operations and RBAC in "
        "message forwarding on the master before any work (Xapi_vm_lifecycle), so a refused "
        "call costs about a read.",
        "async": "an Async call creates its task, the task's progress and completion are "
        "database writes with events, and the client needs at least one more round trip "
        "to learn the result (TaskHelper).",
    }
)
"""Where each figure of the ``xapi`` profile comes from."""

PROFILES: Mapping[str, Mapping[str, float]] = MappingProxyType({"xapi": XAPI})
"""Built-in profiles by the name ``serve --latency`` takes."""

_READ_PREFIXES = ("get_", "assert_", "compute_", "retrieve_", "query_")


def message_class(method: str) -> str:
    """The class whose figure a successful call of ``method`` costs (``Async.`` prefix ignored)."""
    name = method.removeprefix(ASYNC_PREFIX)
    if name in _BY_VM_MESSAGE:
        return _BY_VM_MESSAGE[name]
    if name == "session.login_with_password":
        return "login"
    if name.partition(".")[2].startswith(_READ_PREFIXES) or name == "system.listMethods":
        return "read"
    return "write"


@dataclass(frozen=True)
class LatencyProfile:
    """Seconds per message class, per-method overrides, and the scale applied to all of them."""

    name: str
    seconds: Mapping[str, float]
    methods: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    scale: float = 1.0

    def delay(self, method: str, *, succeeded: bool) -> float:
        """Seconds a call of ``method`` takes: its class's, or ``failure``'s when refused;
        an ``Async.`` call adds the ``async`` overhead."""
        name = method.removeprefix(ASYNC_PREFIX)
        if not succeeded:
            base = self.seconds["failure"]
        else:
            base = self.methods.get(name, self.seconds[message_class(name)])
        overhead = self.seconds["async"] if method.startswith(ASYNC_PREFIX) else 0.0
        return (base + overhead) * self.scale

    def scaled(self, factor: float) -> LatencyProfile:
        """This profile with every figure multiplied by ``factor`` (0 or more)."""
        if not math.isfinite(factor) or factor < 0:
            raise UsageError(f"--latency-scale must be a number of 0 or more, got {factor}")
        return replace(self, scale=self.scale * factor)

    def uniform(self, method: str) -> bool:
        """Whether ``method`` costs the same refused or not (no need to look ahead)."""
        return self.delay(method, succeeded=True) == self.delay(method, succeeded=False)


NO_LATENCY = LatencyProfile("none", MappingProxyType(dict.fromkeys(CLASSES, 0.0)))
"""Every call at once: what a server with a race fault and no ``--latency`` runs with (the
fault's window then decides how long operations stay in flight)."""


def load_profile(spec: str) -> LatencyProfile:
    """A built-in profile by name, or a TOML file::

    base = "xapi"                 # optional: the profile the file amends (default xapi)
    [classes]                     # seconds per class (see CLASSES); others keep base's
    start = 30.0
    [methods]                     # seconds for single messages, overriding their class
    "VM.clean_shutdown" = 45.0
    """
    if spec in PROFILES:
        return LatencyProfile(spec, PROFILES[spec])
    path = Path(spec)
    if not path.is_file():
        raise UsageError(
            f"--latency {spec!r} is neither a built-in profile ({', '.join(PROFILES)}) "
            "nor a TOML file"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read the latency profile {spec}: {error}") from None
    return _from_toml(spec, data)


def _from_toml(spec: str, data: Mapping[str, object]) -> LatencyProfile:
    unknown = set(data) - {"base", "classes", "methods"}
    if unknown:
        raise UsageError(
            f"{spec}: unknown key {sorted(unknown)[0]!r}; a latency profile has base, "
            "[classes] and [methods]"
        )
    base = data.get("base", "xapi")
    if not isinstance(base, str) or base not in PROFILES:
        raise UsageError(f"{spec}: base must be one of {', '.join(PROFILES)}, got {base!r}")
    classes = _seconds_table(spec, "classes", data.get("classes", {}), CLASSES)
    methods = _seconds_table(spec, "methods", data.get("methods", {}), REGISTRY)
    seconds = MappingProxyType({**PROFILES[base], **classes})
    return LatencyProfile(spec, seconds, MappingProxyType(methods))


def _seconds_table(
    spec: str, table: str, raw: object, known: Mapping[str, object]
) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise UsageError(f"{spec}: [{table}] must be a table of name = seconds")
    seconds: dict[str, float] = {}
    for name, value in raw.items():
        if name not in known:
            hint = "see CLASSES in conformance/server/profiles.py" if table == "classes" else ""
            raise UsageError(f"{spec}: [{table}] has no {name!r} {hint}".rstrip())
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise UsageError(f"{spec}: [{table}] {name} must be seconds (0 or more)")
        seconds[name] = float(value)
    return seconds
