"""Defensive redaction: keep secrets out of every report, even if a record carried one."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from reports.records import RunSummary

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["MASK", "redact", "redact_summary", "redact_url_credentials", "redact_value"]

MASK = "***"
"""What a secret is replaced with."""

_URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):[^\s/@]+@")

_UNREDACTED_FIELDS = frozenset({"verdict"})
"""Fields drawn from a fixed vocabulary; redacting them could only make the record invalid."""

_R = TypeVar("_R", bound="DataclassInstance")


def _ordered(secrets: Iterable[str]) -> tuple[str, ...]:
    """Non-empty secrets, longest first, so a secret inside another leaves no tail behind."""
    return tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``."""
    for secret in _ordered(secrets):
        text = text.replace(secret, MASK)
    return text


def redact_url_credentials(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` URL replaced by ``***``."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{MASK}@", text)


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    return redact_url_credentials(redact(text, secrets))


def _walk(value: object, secrets: tuple[str, ...]) -> object:
    if isinstance(value, str):
        return _scrub(value, secrets)
    if isinstance(value, Mapping):
        return {_walk(key, secrets): _walk(item, secrets) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_walk(item, secrets) for item in value)
    if isinstance(value, list):
        return [_walk(item, secrets) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _walk_record(value, secrets)
    return value


def _walk_record(record: _R, secrets: tuple[str, ...]) -> _R:
    changes = {
        field.name: _walk(getattr(record, field.name), secrets)
        for field in dataclasses.fields(record)
        if field.name not in _UNREDACTED_FIELDS
    }
    return dataclasses.replace(record, **changes)


def redact_value(value: object, secrets: Iterable[str]) -> object:
    """``value`` with every string in it (map keys and records included) scrubbed.

    Scrubbing replaces each secret, and the password of any credential-bearing URL, by ``***``.
    """
    return _walk(value, _ordered(secrets))


def redact_summary(s: RunSummary, secrets: Iterable[str] = ()) -> RunSummary:
    """A copy of ``s`` with every text field and value scrubbed (see :func:`redact_value`).

    The verdict is left alone. Credential-bearing URLs are masked even with no secrets given.
    """
    return _walk_record(s, _ordered(secrets))
