"""When each process of a run did what: a pytest plugin for ``scaling.py --timeline``.

Loaded into a run's processes with ``-p timeline`` (through ``PYTEST_ADDOPTS``, this folder on
``PYTHONPATH``), it writes one JSON line per event to ``$SCALING_TIMELINE/<process>.jsonl``:
when the process started (its start on the clock, from ``/proc``), when it had collected,
each test's start and end, when its session started to finish and when it ended. ``read``
turns the files into each worker's start-up, its pieces and its idle time, and the run's tail.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

__all__ = ["now", "read", "summary_lines"]

_ENV = "SCALING_TIMELINE"


def now() -> float:
    """Seconds since the machine booted: one clock for every process, which a step of the
    system clock does not move (the time of its start in ``/proc`` counts from boot too)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _process_started() -> float:
    """When this process started (Linux ``/proc``; now elsewhere)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now()


_LOADED = now()


def _log(config: Any, event: str, **fields: Any) -> None:
    folder = os.environ.get(_ENV)
    if not folder:
        return
    workerinput = getattr(config, "workerinput", None)
    name = str(workerinput["workerid"]) if workerinput else "main"
    line = json.dumps({"process": name, "event": event, "at": now(), **fields})
    with open(Path(folder) / f"{name}.jsonl", "a", encoding="utf-8") as out:
        out.write(line + "\n")


def pytest_configure(config: Any) -> None:
    """The process's start, and when this plugin was loaded (imports done)."""
    _log(config, "started", at_process=_process_started(), loaded=_LOADED)


def pytest_collection_finish(session: Any) -> None:
    """Collection done."""
    _log(session.config, "collected", items=len(session.items))


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    """A test starts (in the process that runs it: the controller only relays)."""
    del location
    if _CONFIG and not _relays(_CONFIG):
        _log(_CONFIG[0], "start", test=nodeid)


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    """A test ends."""
    del location
    if _CONFIG and not _relays(_CONFIG):
        _log(_CONFIG[0], "end", test=nodeid)


_CONFIG: list[Any] = []


def pytest_sessionstart(session: Any) -> None:
    """Keep the config for the hooks that are not handed it."""
    _CONFIG.append(session.config)


def _relays(configs: list[Any]) -> bool:
    """The xdist controller relays its workers' test events: not its own."""
    config = configs[0]
    return getattr(config, "workerinput", None) is None and bool(
        getattr(config.option, "numprocesses", None)
    )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist's controller: a worker is down (its session over, its process not yet gone)."""
    del error
    if _CONFIG:
        _log(_CONFIG[0], "down", worker=str(node.gateway.id))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: Any) -> None:
    """The session starts to finish (fixtures torn down, reports written after)."""
    _log(session.config, "finishing")


def pytest_unconfigure(config: Any) -> None:
    """The process is done with pytest (and which threads it still runs)."""
    threads = [f"{t.name}{'' if t.daemon else ' (not daemon)'}" for t in threading.enumerate()]
    _log(config, "ended", threads=threads)
    atexit.register(_log, config, "exiting")


def read(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Each process's events, in order."""
    events: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        events[path.stem] = sorted(records, key=lambda r: r["at"])
    return events


def _tests(records: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    started: dict[str, float] = {}
    spans = []
    for record in records:
        if record["event"] == "start":
            started[record["test"]] = record["at"]
        elif record["event"] == "end" and record["test"] in started:
            spans.append((record["test"], started.pop(record["test"]), record["at"]))
    return spans


def summary_lines(folder: Path, launched: float, ended: float) -> list[str]:
    """Each worker's start-up, pieces and idle time, from ``launched`` (the command's start)
    to ``ended`` (its exit), and the longest pieces."""
    events = read(folder)
    workers = {name: records for name, records in events.items() if name != "main"}
    lines, spans_all = [], []
    last_ends = []
    for name, records in sorted(workers.items(), key=lambda item: int(item[0].lstrip("gw") or 0)):
        spans = _tests(records)
        spans_all += [(name, *span) for span in spans]
        if not spans:
            continue
        first = min(start for _t, start, _e in spans)
        last = max(end for _t, _s, end in spans)
        last_ends.append(last)
        busy = sum(end - start for _t, start, end in spans)
        started = next((r for r in records if r["event"] == "started"), None)
        collected = next((r["at"] for r in records if r["event"] == "collected"), first)
        process = started["at_process"] if started else first
        lines.append(
            f"   {name}: process at {process - launched:5.1f} s, imports done "
            f"{(started['loaded'] if started else first) - launched:5.1f} s, collected "
            f"{collected - launched:5.1f} s, first piece {first - launched:5.1f} s, last piece "
            f"ends {last - launched:6.1f} s; {len(spans)} pieces, busy {busy:6.1f} s "
            f"({busy / (last - first):.0%} of its span)"
        )
    main = {r["event"]: r["at"] for r in events.get("main", [])}
    downs = [r["at"] for r in events.get("main", []) if r["event"] == "down"]
    exits = [r["at"] for records in workers.values() for r in records if r["event"] == "exiting"]
    if main and downs:
        lines.append(
            f"   the controller: started {main.get('started', launched) - launched:.1f} s, the "
            f"last worker down {max(downs) - launched:.1f} s, the workers' processes exiting by "
            f"{max(exits, default=ended) - launched:.1f} s, the controller's session over "
            f"{main.get('ended', ended) - launched:.1f} s"
        )
    if last_ends:
        span = ended - launched
        idle_tail = sum(max(last_ends) - end for end in last_ends)
        lines.append(
            f"   workers' last pieces end from {min(last_ends) - launched:.1f} to "
            f"{max(last_ends) - launched:.1f} s (idle at the tail: {idle_tail:.1f} worker-s); "
            f"the command ends at {span:.1f} s ({ended - max(last_ends):.1f} s after the last piece)"
        )
    longest = sorted(spans_all, key=lambda s: s[2] - s[3])[:8]
    lines.append(
        "   longest pieces: "
        + ", ".join(
            f"{test.rpartition('::')[2]} {end - start:.1f} s ({name} at {start - launched:.0f} s)"
            for name, test, start, end in longest
        )
    )
    return lines
