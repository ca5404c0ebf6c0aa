"""The Target interface and the settings every network target shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from models.outcome import Outcome, Value

__all__ = [
    "DEFAULT_MAX_RESPONSE_MB",
    "DEFAULT_TIMEOUT_S",
    "STALL_AFTER",
    "Protocol_",
    "Target",
    "TargetSettings",
]

DEFAULT_TIMEOUT_S = 30.0
"""Per-call deadline: far above what a real pool takes for the suite's diskless VMs."""

DEFAULT_MAX_RESPONSE_MB = 64
"""Largest answer read: a thousand-VM pool's ``VM.get_all_records`` is a few MB."""

STALL_AFTER = 3
"""Consecutive missed deadlines after which a target is stalled and the run ends."""

Protocol_ = Literal["xmlrpc", "jsonrpc"]


@dataclass(frozen=True)
class TargetSettings:
    """Transport settings: deadlines in seconds, the answer size bound, TLS verification.

    ``timeout`` bounds each call's whole exchange (connect, send, headers and body), and the
    wait for an Async call's task (``task_timeout``). ``connect_timeout`` bounds connecting
    within it. ``stall_after`` consecutive missed deadlines make the target stalled: every later
    call fails at once. ``verify`` is True (system CAs), a CA bundle path, or False only when the
    user asked for ``--insecure`` explicitly.
    """

    timeout: float = DEFAULT_TIMEOUT_S
    connect_timeout: float = 10.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_MB * 2**20
    stall_after: int = STALL_AFTER
    verify: bool | str = True

    @property
    def task_timeout(self) -> float:
        """How long an Async call's task may stay ``pending`` before the target is in error."""
        return self.timeout


class Target(Protocol):
    """Something that answers XenAPI calls: ``call(method, *params) -> Outcome``.

    XenAPI failures are outcomes; a target that cannot be reached or answers something that is
    not XenAPI raises ``conformance.errors.TargetError``.
    """

    url: str
    protocol: Protocol_
    settings: TargetSettings

    def call(self, method: str, *params: Value) -> Outcome:
        """Send one call; return what the target answered."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
