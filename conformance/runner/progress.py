"""Live progress of a run: the counters every process of the suite saves each second, summed
and shown on the terminal while pytest captures everything else.

``run`` shows one line updated in place on a terminal, else a plain line every 15 s (60 s after
two minutes). The plugin used directly (``pytest --xapi-...``) shares the terminal with pytest's
own output, so it always prints plain lines.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

__all__ = ["PROGRESS_DIR", "Counters", "LiveProgress", "terminal"]

PROGRESS_DIR = ".progress"
"""Under the report directory: one ``<worker>.txt`` each, its first line "examples steps
findings", its second the ids of those findings (grouped as the verdict groups them), so that
a finding two processes both saw counts once."""


class Counters:
    """The workers' progress files summed; each worker's figures never go down (a file read
    mid-write, or removed at the end, keeps its last figures)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._ids: dict[str, frozenset[str]] = {}

    def read(self) -> tuple[int, int, int]:
        """Examples, steps and findings so far, over every process (a finding is counted once
        however many processes saw it, where their files name it)."""
        for path in self._folder.glob("*.txt"):
            with contextlib.suppress(OSError, ValueError):
                self._read_file(path.name, path.read_text().splitlines())
        figures = list(self._seen.values())
        named = frozenset().union(*self._ids.values())
        unnamed = sum(f[2] for name, f in self._seen.items() if name not in self._ids)
        return (sum(f[0] for f in figures), sum(f[1] for f in figures), len(named) + unnamed)

    def _read_file(self, name: str, lines: list[str]) -> None:
        e, s, d = (int(x) for x in lines[0].split())
        old = self._seen.get(name, (0, 0, 0))
        self._seen[name] = (max(e, old[0]), max(s, old[1]), max(d, old[2]))
        if len(lines) > 1:
            self._ids[name] = self._ids.get(name, frozenset()) | frozenset(lines[1].split())

    @property
    def started(self) -> bool:
        """Whether any process has counted anything yet."""
        return bool(self._seen)


def terminal() -> TextIO:
    """A duplicate of this process's stderr as it is now (before pytest captures fd 2)."""
    return os.fdopen(os.dup(sys.stderr.fileno()), "w", encoding="utf-8", errors="replace")


def _plain_interval(elapsed: float) -> float:
    """Seconds between plain progress lines: 15 for the first two minutes, then 60, so that
    a long CI log stays short."""
    return 15.0 if elapsed < 120 else 60.0


class LiveProgress:
    """Shows the counters of ``folder`` on ``out`` from a daemon thread until ``stop``.

    ``in_place``: one line rewritten every second (a terminal of its own); otherwise plain
    lines at a slowing pace, each starting with ``prefix``.
    """

    def __init__(self, folder: Path, out: TextIO, in_place: bool, prefix: str = "") -> None:
        self._counters = Counters(folder)
        self._out = out
        self._in_place = in_place
        self._prefix = prefix
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="xapi-live")

    def start(self) -> None:
        """Begin showing (the clock starts at construction)."""
        self._thread.start()

    def stop(self) -> None:
        """Show the last figures and release the terminal."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            self._show()
            if self._in_place:
                self._out.write("\n")
            self._out.close()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval()):
            with contextlib.suppress(OSError, ValueError):
                self._show()

    def _interval(self) -> float:
        return 1.0 if self._in_place else _plain_interval(time.monotonic() - self._started)

    def _show(self) -> None:
        examples, steps, divergences = self._counters.read()
        if not (self._counters.started or self._in_place):
            return  # no suite test has begun: nothing to say
        elapsed = int(time.monotonic() - self._started)
        line = (
            f"{self._prefix}examples {examples:,} · steps {steps:,} · findings {divergences} · "
            f"{elapsed // 60:02d}:{elapsed % 60:02d}"
        )
        self._out.write(f"\r{line}\033[K" if self._in_place else line + "\n")
        self._out.flush()
