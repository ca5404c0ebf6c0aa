"""The coverage space: every VM message, and every (message, power state, VM kind) cell a client
can reach through the API, for reports that show what a run did not exercise."""

from __future__ import annotations

from models.catalogue import MESSAGES
from models.releases import DEFAULT_RELEASE, Release, release, release_of_software_version
from models.schema import XType

__all__ = [
    "ACCEPTED",
    "CLIENT_CELLS",
    "CLIENT_MESSAGES",
    "EDGE_CELLS",
    "EVENT_CELLS",
    "REACHABLE_STATES",
    "REFUSED",
    "RELEASE",
    "coverage_cells",
    "judged_release",
    "release_text",
    "vm_messages",
]


def release_text(release: Release) -> str:
    """A release as reports name it: ``xapi 26.17 (XenServer 8.4.0, XenAPI 2.21)``."""
    return (
        f"xapi {release.xapi} ({release.product_brand} {release.product_version}, "
        f"XenAPI {release.api_major}.{release.api_minor})"
    )


RELEASE = release_text(DEFAULT_RELEASE)
"""The xapi release whose behaviour the model follows by default."""


def judged_release(software_version: dict[str, str], chosen: str = "") -> str:
    """The release the model follows, named as reports name it: xapi ``chosen`` when one was
    chosen, else the one a pool master reporting ``software_version`` names (as the importer
    reads it). ``chosen`` must be a version (``release`` raises ValueError otherwise)."""
    if chosen:
        return release_text(release(chosen))
    return release_text(release_of_software_version(software_version) or DEFAULT_RELEASE)


REACHABLE_STATES: tuple[tuple[str, str], ...] = (
    ("Halted", "plain"),
    ("Running", "plain"),
    ("Paused", "plain"),
    ("Suspended", "plain"),
    ("Halted", "template"),
    ("Halted", "default_template"),
    ("Halted", "snapshot"),
    ("Suspended", "snapshot"),
)
"""(power state, VM kind) pairs a client can put a VM in through the API."""

_VM_REF = XType("ref", name="VM")


def vm_messages() -> tuple[str, ...]:
    """Every message of the VM class, as ``VM.<name>``, in reference order."""
    return tuple(f"VM.{name}" for name in MESSAGES)


EVENT_CELLS: tuple[tuple[str, str, str], ...] = (
    ("event.from", "vm", "add"),
    ("event.from", "vm", "mod"),
    ("event.from", "vm", "del"),
    ("event.from", "task", "add"),
    ("event.next", "vm", "add"),
    ("event.next", "vm", "mod"),
    ("event.next", "vm", "del"),
)
"""(``event.from`` or ``event.next``, class, operation): the events of the suite's own objects
a client can see (a task's add, seen by a subscription to it before the task is destroyed;
event.next's events coalesced per object)."""


ACCEPTED = "accepted"
REFUSED = "refused"

CLIENT_CELLS: tuple[tuple[str, str, str], ...] = tuple(
    (method, method.partition(".")[0], outcome)
    for method, outcomes in (
        ("session.login_with_password", (ACCEPTED, REFUSED)),
        ("session.get_record", (ACCEPTED, REFUSED)),
        ("session.logout", (ACCEPTED,)),
        ("pool.add_to_other_config", (ACCEPTED, REFUSED)),
        ("pool.remove_from_other_config", (ACCEPTED, REFUSED)),
        ("pool.get_other_config", (ACCEPTED,)),
        ("task.add_to_other_config", (ACCEPTED, REFUSED)),
        ("task.remove_from_other_config", (ACCEPTED,)),
        ("task.set_other_config", (ACCEPTED,)),
        ("task.get_other_config", (ACCEPTED,)),
        ("task.cancel", (ACCEPTED, REFUSED)),
        ("task.destroy", (ACCEPTED, REFUSED)),
    )
    for outcome in outcomes
)
"""(message, class, ``accepted`` or ``refused``): the messages of other classes a VM client
sends (logging in and out, the pool's and its tasks' other_config, a task's cancel and
destroy), each where xapi accepts it and where it refuses it (a wrong password, another
user's task, a role without the permission), by what the model answers."""

EDGE_CELLS: tuple[tuple[str, str, str], ...] = (
    *(
        ("values at their edges", protocol, kind)
        for protocol in ("xmlrpc", "jsonrpc")
        for kind in ("int64", "text", "double")
    ),
    ("values at their edges", "jsonrpc", "text no UTF-8 holds"),
)
"""(``values at their edges``, protocol, kind of value): the edges written and read back over
each protocol, whichever the run speaks; text no UTF-8 holds only JSON-RPC can send."""


def coverage_cells() -> tuple[tuple[str, str, str], ...]:
    """(``VM.<message>``, power state, VM kind) for every message that acts on one VM, in every
    reachable (power state, VM kind) pair; then the event cells (``EVENT_CELLS``), the other
    classes' (``CLIENT_CELLS``) and the edge values' (``EDGE_CELLS``)."""
    return (
        *(
            (f"VM.{message.name}", state, kind)
            for message in MESSAGES.values()
            if message.params and message.params[0].type == _VM_REF
            for state, kind in REACHABLE_STATES
        ),
        *EVENT_CELLS,
        *CLIENT_CELLS,
        *EDGE_CELLS,
    )


CLIENT_MESSAGES = frozenset(method for method, _cls, _outcome in CLIENT_CELLS)
"""The messages ``CLIENT_CELLS`` counts."""
