"""Waivers: a vendor's record of known deviations, reported as waived rather than hidden.

The file is TOML::

    [[waiver]]
    method = "VM.start"            # the call that diverges
    code = "NO_HOSTS_AVAILABLE"     # the error code the target answers ("" or omitted: any)
    reason = "placement differs on our appliance; CA-1234"
    expires = 2027-03-31            # after this date the waiver no longer applies

An expired waiver does not waive: the divergence fails the run, and the message says it expired.
"""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.errors import UsageError
from models.outcome import Failure

if TYPE_CHECKING:
    from conformance.judge.divergence import DivergenceInfo

__all__ = ["Waiver", "Waivers", "load_waivers"]


@dataclass(frozen=True)
class Waiver:
    """One known deviation of the target."""

    method: str
    code: str
    reason: str
    expires: datetime.date

    def covers(self, info: DivergenceInfo) -> bool:
        """Whether this waiver describes ``info`` (expiry aside)."""
        if self.method != info.method.removeprefix("Async."):
            return False
        actual_code = info.actual.code if isinstance(info.actual, Failure) else ""
        return not self.code or self.code == actual_code


@dataclass(frozen=True)
class Waivers:
    """The waivers in force for a run, and the day the run is judged on."""

    entries: tuple[Waiver, ...] = ()
    today: datetime.date = field(default_factory=datetime.date.today)

    def match(self, info: DivergenceInfo) -> Waiver | None:
        """The unexpired waiver covering ``info``, if any."""
        for waiver in self.entries:
            if waiver.covers(info) and waiver.expires >= self.today:
                return waiver
        return None

    def expired(self) -> tuple[Waiver, ...]:
        """Waivers past their date (reported, never applied)."""
        return tuple(w for w in self.entries if w.expires < self.today)


def _entry(index: int, raw: object) -> Waiver:
    if not isinstance(raw, dict):
        raise UsageError(f"waiver #{index + 1} must be a table")
    missing = [k for k in ("method", "reason", "expires") if k not in raw]
    if missing:
        raise UsageError(f"waiver #{index + 1} lacks {', '.join(missing)}")
    expires = raw["expires"]
    if isinstance(expires, str):
        try:
            expires = datetime.date.fromisoformat(expires)
        except ValueError:
            raise UsageError(
                f"waiver #{index + 1}: expires must be a date like 2027-03-31"
            ) from None
    if not isinstance(expires, datetime.date):
        raise UsageError(f"waiver #{index + 1}: expires must be a date like 2027-03-31")
    return Waiver(str(raw["method"]), str(raw.get("code", "")), str(raw["reason"]), expires)


def load_waivers(path: Path, today: datetime.date | None = None) -> Waivers:
    """Read a waiver file; a clear UsageError for a missing or malformed one."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"waiver file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"waiver file {path} is not valid TOML: {error}") from None
    entries = document.get("waiver", [])
    if not isinstance(entries, list):
        raise UsageError(f"waiver file {path}: use [[waiver]] tables")
    waivers = tuple(_entry(i, raw) for i, raw in enumerate(entries))
    return Waivers(waivers, today or datetime.date.today())
