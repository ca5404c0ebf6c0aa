"""Defensive redaction: keep secrets out of every report, even if a record carried one."""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from reports.files import atomic_write_bytes
from reports.records import RunSummary

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "MASK",
    "Scrubbed",
    "redact",
    "redact_files",
    "redact_summary",
    "redact_url_credentials",
    "redact_value",
    "scrub",
]

MASK = "***"
"""What a secret is replaced with."""

_URL_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):[^\s/@]+@")

_UNREDACTED_FIELDS = frozenset({"verdict"})
"""Fields drawn from a fixed vocabulary; redacting them could only make the record invalid."""

_R = TypeVar("_R", bound="DataclassInstance")


SHORT_SECRET = 8
"""Secrets shorter than this are masked only where they stand alone, not inside a longer word:
masking every ``x`` of a one-letter password would turn ``examples`` into ``e***amples``, wreck
summary.json and junit.xml, and hide nothing."""

_WORD = "A-Za-z0-9"


def _ordered(secrets: Iterable[str]) -> tuple[str, ...]:
    """Non-empty secrets, longest first, so a secret inside another leaves no tail behind."""
    return tuple(sorted({s for s in secrets if s}, key=len, reverse=True))


def _text_source(secret: str) -> str:
    escaped = re.escape(secret)
    if len(secret) >= SHORT_SECRET:
        return escaped
    return f"(?<![{_WORD}]){escaped}(?![{_WORD}])"


@functools.lru_cache(maxsize=16)
def _text_pattern(ordered: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for every secret, longest first: a summary with a hundred session refs is
    scanned once per text, not once per secret."""
    return re.compile("|".join(_text_source(secret) for secret in ordered))


def _bytes_pattern(secret: bytes, length: int) -> re.Pattern[bytes]:
    escaped = re.escape(secret)
    if length >= SHORT_SECRET:
        return re.compile(escaped)
    word = _WORD.encode()
    return re.compile(b"(?<![" + word + b"])" + escaped + b"(?![" + word + b"])")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each non-empty secret replaced by ``***`` (see ``SHORT_SECRET``)."""
    ordered = _ordered(secrets)
    return _text_pattern(ordered).sub(MASK, text) if ordered else text


def redact_url_credentials(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` URL replaced by ``***``."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{MASK}@", text)


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` without ``secrets`` (already ordered) and without URL passwords."""
    masked = _text_pattern(secrets).sub(MASK, text) if secrets else text
    return redact_url_credentials(masked)


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


@dataclasses.dataclass(frozen=True)
class Scrubbed:
    """A run's summary with every secret and URL password masked: what the report writers
    render. Only :func:`scrub` makes one."""

    summary: RunSummary

    def reproducers(self) -> dict[str, str]:
        """Each finding's reproducer script (its example's), by finding id."""
        s = self.summary
        return {f.id: s.divergence(f.example).reproducer for f in s.findings}


def scrub(s: RunSummary | Scrubbed, secrets: Iterable[str] = ()) -> Scrubbed:
    """``s`` with every text scrubbed (see :func:`redact_summary`): the one way into every report
    writer. A summary scrubbed already is walked again only for the ``secrets`` given now, so a
    run's reports, written one after another, scrub its summary once."""
    ordered = _ordered(secrets)
    if isinstance(s, Scrubbed):
        return Scrubbed(_walk_record(s.summary, ordered)) if ordered else s
    return Scrubbed(_walk_record(s, ordered))


def _spellings(secret: str) -> set[bytes]:
    """A secret as it may be written: plain, HTML/XML-escaped, JSON-escaped (UTF-8 bytes)."""
    forms = {secret, html.escape(secret), html.escape(secret, quote=False)}
    forms |= {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return {form.encode("utf-8") for form in forms if form}


def _files(paths: Iterable[Path], skip: Collection[str]) -> Iterator[Path]:
    for path in paths:
        if path.name in skip:
            continue
        if path.is_dir():
            for child in sorted(path.iterdir()):
                yield from _files([child], skip)
        elif path.is_file():
            yield path


def redact_files(
    paths: Iterable[Path], secrets: Iterable[str], skip: Collection[str] = ()
) -> list[Path]:
    """Rewrite every file at or under ``paths`` that holds a secret, each spelling masked.

    The last line of defence for files other tools write (JUnit, Allure); files and
    directories named in ``skip`` are left alone. Returns the files that had to change.
    """
    forms = sorted(
        {(form, len(secret)) for secret in _ordered(secrets) for form in _spellings(secret)},
        key=lambda spelled: len(spelled[0]),
        reverse=True,
    )
    patterns = [_bytes_pattern(form, length) for form, length in forms]
    changed = []
    for path in _files(paths, skip) if patterns else ():
        data = path.read_bytes()
        scrubbed = data
        for pattern in patterns:
            scrubbed = pattern.sub(MASK.encode(), scrubbed)
        if scrubbed != data:
            atomic_write_bytes(path, scrubbed)
            changed.append(path)
    return changed
