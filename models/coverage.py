"""The coverage space: every VM message, and every (message, power state, VM kind) cell a client
can reach through the API, for reports that show what a run did not exercise."""

from __future__ import annotations

from models.catalogue import MESSAGES
from models.releases import DEFAULT_RELEASE, Release, release, release_of_software_version
from models.schema import XType

__all__ = [
    "EVENT_CELLS",
    "REACHABLE_STATES",
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


def coverage_cells() -> tuple[tuple[str, str, str], ...]:
    """(``VM.<message>``, power state, VM kind) for every message that acts on one VM, in every
    reachable (power state, VM kind) pair; then the event cells (``EVENT_CELLS``)."""
    return (
        *(
            (f"VM.{message.name}", state, kind)
            for message in MESSAGES.values()
            if message.params and message.params[0].type == _VM_REF
            for state, kind in REACHABLE_STATES
        ),
        *EVENT_CELLS,
    )
