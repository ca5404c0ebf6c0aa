"""The Target interface and the settings every network target shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from models.outcome import Outcome, Value

__all__ = ["Protocol_", "Target", "TargetSettings"]

Protocol_ = Literal["xmlrpc", "jsonrpc"]


@dataclass(frozen=True)
class TargetSettings:
    """Transport settings: timeouts in seconds and TLS verification.

    ``verify`` is True (system CAs), a CA bundle path, or False only when the user asked for
    ``--insecure`` explicitly.
    """

    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    verify: bool | str = True


class Target(Protocol):
    """Something that answers XenAPI calls: ``call(method, *params) -> Outcome``.

    XenAPI failures are outcomes; a target that cannot be reached or answers something that is
    not XenAPI raises ``conformance.errors.TargetError``.
    """

    url: str
    protocol: Protocol_

    def call(self, method: str, *params: Value) -> Outcome:
        """Send one call; return what the target answered."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
