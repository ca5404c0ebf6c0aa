"""Reading a target's starting state into a model world: facts read once, refs kept as they are."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from conformance.errors import ProtocolError, TargetError
from conformance.judge.compare import typed_vm_record
from conformance.targets.base import Target
from conformance.wire import WireFormatError, from_wire
from models import catalogue
from models.outcome import Failure, Value
from models.placement import free_memory
from models.records import type_default
from models.releases import DEFAULT_RELEASE, Release, release_of_software_version
from models.world import NULL_REF, Account, Facts, Host, Pool, SessionInfo, World, frozen

__all__ = ["Login", "import_world", "master_release", "memory_accounted"]


@dataclass(frozen=True)
class Login:
    """A session the suite holds on the target, with the account behind it."""

    session: str
    account: Account


def _records(target: Target, session: str, cls: str) -> Mapping[str, Mapping[str, object]]:
    outcome = target.call(f"{cls}.get_all_records", session)
    if isinstance(outcome, Failure):
        refused = " ".join([outcome.code, *(str(p) for p in outcome.params)])[:200]
        raise ProtocolError(
            f"the target refused {cls}.get_all_records on the suite's own session ({refused}), "
            "so its starting state cannot be read and it cannot be tested"
        )
    if not isinstance(outcome.value, Mapping):
        shown = str(outcome.value)[:80]
        raise ProtocolError(
            f"the target answered {cls}.get_all_records with {shown!s} "
            f"({type(outcome.value).__name__}) where xapi sends a map of records, so its "
            "starting state cannot be read and it cannot be tested"
        )
    return {str(k): v for k, v in outcome.value.items() if isinstance(v, Mapping)}


class _RecentVms:
    """The starting records read from the last few raw records, by the raw record's identity:
    a ``VM.get_all_records`` answer the same as a recent one decodes to the very same records
    (``xmlrpc.decode_response``), which each example's import then does not type again. Raw
    records and the read-only records made from them are never changed."""

    KEEP = 512

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[Mapping[str, object], Mapping[str, Value]]] = {}

    def record(self, raw: Mapping[str, object]) -> Mapping[str, Value]:
        with self._lock:
            known = self._by_id.get(id(raw))
        if known is not None and known[0] is raw:
            return known[1]
        record = frozen(_vm(raw))
        with self._lock:
            self._by_id[id(raw)] = (raw, record)
            if len(self._by_id) > self.KEEP:
                del self._by_id[next(iter(self._by_id))]
        return record


_RECENT_VMS = _RecentVms()


def _vm(raw: Mapping[str, object]) -> dict[str, Value]:
    """A starting VM record, read leniently: a wrongly typed field is not judged here (nothing
    was called yet) but by the first call that reads it, where it is a divergence."""
    record = {f.name: type_default(f.type) for f in catalogue.FIELDS.values()}
    try:
        record.update(typed_vm_record(raw))
    except WireFormatError:
        record.update({key: _lenient(key, value) for key, value in raw.items()})
    return record


def _lenient(name: str, raw: object) -> Value:
    spec = catalogue.FIELDS.get(name)
    if spec is None:
        return raw  # type: ignore[return-value]
    try:
        return from_wire(raw, spec.type)
    except WireFormatError:
        if spec.type.kind == "bool" and str(raw).lower() in ("true", "false", "1", "0"):
            return str(raw).lower() in ("true", "1")
        if spec.type.kind == "int" and isinstance(raw, str) and raw.lstrip("-").isdigit():
            return int(raw)
        return type_default(spec.type)


def _host(ref: str, raw: Mapping[str, object]) -> Host:
    capabilities = raw.get("capabilities", ())
    hvm = (
        any(str(c).startswith("hvm") for c in capabilities)
        if isinstance(capabilities, list | tuple)
        else True
    )
    defaults = Host(ref, "", "", "")
    return Host(
        ref=ref,
        uuid=str(raw.get("uuid", "")),
        name_label=str(raw.get("name_label", "")),
        address=str(raw.get("address", "")),
        hvm=hvm,
        control_domain=str(raw.get("control_domain", NULL_REF)),
        enabled=raw.get("enabled", True) not in (False, "false", "0"),
        cpu_count=_count(raw.get("cpu_info"), defaults.cpu_count),
        virtual_hardware_platform_versions=_versions(raw.get("virtual_hardware_platform_versions")),
        bios_strings=_strings(raw.get("bios_strings"), defaults.bios_strings),
    )


def _strings(raw: object, default: Mapping[str, str]) -> Mapping[str, str]:
    """A host's string map (``bios_strings``), or ``default`` if the record has none."""
    if not isinstance(raw, Mapping):
        return default
    return MappingProxyType({str(k): str(v) for k, v in raw.items()})


def _count(cpu_info: object, default: int) -> int:
    """``cpu_info``'s "cpu_count" (a decimal string), or ``default`` if it has none."""
    text = str(cpu_info.get("cpu_count", "")) if isinstance(cpu_info, Mapping) else ""
    return int(text) if text.isdigit() else default


def _versions(raw: object) -> tuple[int, ...]:
    """A host's virtual hardware platform versions (ints, or strings over XML-RPC); an old
    host without the field offers version 0 only (xapi_vm_helpers.ml
    ``assert_hardware_platform_support``)."""
    if not isinstance(raw, list | tuple):
        return (0,)
    return tuple(int(v) for v in raw if str(v).lstrip("-").isdigit())


def _pool(target: Target, session: str) -> Pool:
    pools = _records(target, session, "pool")
    if len(pools) != 1:
        raise ProtocolError(f"expected one pool on {target.url}, found {len(pools)}")
    ref, raw = next(iter(pools.items()))
    restrictions = raw.get("restrictions", {})
    other = raw.get("other_config", {})
    return Pool(
        ref,
        str(raw.get("uuid", "")),
        str(raw.get("master", NULL_REF)),
        MappingProxyType(
            {str(k): str(v) for k, v in restrictions.items()}
            if isinstance(restrictions, Mapping)
            else {}
        ),
        MappingProxyType(
            {str(k): str(v) for k, v in other.items()} if isinstance(other, Mapping) else {}
        ),
    )


def import_world(
    target: Target,
    logins: tuple[Login, ...],
    facts: Facts,
    salt: str,
    release: Release | None = None,
) -> World:
    """The model's world for the target as it is now, with the suite's sessions in it.

    The model behaves as ``release``, or else as the release the pool master reports in its
    ``software_version`` (the newest known when it reports none).
    """
    root = logins[0].session
    raw_hosts = _records(target, root, "host")
    hosts = {ref: _host(ref, raw) for ref, raw in raw_hosts.items()}
    srs = {
        ref: frozen({str(k): v for k, v in raw.items() if isinstance(v, str)})
        for ref, raw in _records(target, root, "SR").items()
    }
    vms = {ref: _RECENT_VMS.record(raw) for ref, raw in _records(target, root, "VM").items()}
    sessions = {
        login.session: SessionInfo(login.account.name, login.account.role, login.account.superuser)
        for login in logins
    }
    pool = _pool(target, root)
    return World(
        pool=pool,
        hosts=MappingProxyType(hosts),
        srs=MappingProxyType(srs),
        vms=MappingProxyType(vms),
        accounts=MappingProxyType({login.account.name: login.account for login in logins}),
        sessions=MappingProxyType(sessions),
        facts=facts,
        salt=salt,
        release=release or master_release(raw_hosts.get(pool.master, {})),
    )


def master_release(raw_master: Mapping[str, object]) -> Release:
    """The release a host record's ``software_version`` names; the newest known if none."""
    versions = raw_master.get("software_version", {})
    if not isinstance(versions, Mapping):
        return DEFAULT_RELEASE
    found = release_of_software_version({str(k): str(v) for k, v in versions.items()})
    return found or DEFAULT_RELEASE


def memory_accounted(target: Target, logins: tuple[Login, ...]) -> bool:
    """Whether the target's free memory on every host (``host.compute_free_memory``, the figure
    VM.start's memory check uses) is the model's for the target's state as read now.

    Where it is, the model judges memory checks exactly (``Facts.host_memory_sufficient``);
    a target that does not answer, or whose hosts' memory the model cannot see (a real pool's
    physical memory), keeps them in doubt.
    """
    try:
        world = import_world(target, logins, Facts(), "memory")
        return all(
            _free_memory_shown(target, logins[0].session, ref) == free_memory(world, host)
            for ref, host in world.hosts.items()
        )
    except TargetError:
        return False


def _free_memory_shown(target: Target, session: str, host: str) -> int | None:
    outcome = target.call("host.compute_free_memory", session, host)
    if isinstance(outcome, Failure) or isinstance(outcome.value, bool):
        return None
    text = str(outcome.value)
    return int(text) if text.isdigit() else None
