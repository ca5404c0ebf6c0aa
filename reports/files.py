"""Atomic file writes: a report is either the previous one or the complete new one, never half."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text"]

_NEW_FILE_MODE = 0o644


def _mode_for(path: Path) -> int:
    """Keep the permissions of the file being replaced; a new report is world-readable."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return _NEW_FILE_MODE


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable, where the platform allows opening a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically.

    The data goes to a temporary file in the same directory, is fsynced, and is then renamed over
    ``path`` with :func:`os.replace`. On any failure the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    mode = _mode_for(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` encoded as UTF-8, atomically (see :func:`atomic_write_bytes`).

    Newlines are written as ``\\n`` on every platform. A lone UTF-16 half (text a JSON-RPC
    client sent that no UTF-8 holds, quoted in a divergence) is written as its ``\\uXXXX``
    escape: a report never fails on what the target was sent.
    """
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))
