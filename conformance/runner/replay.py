"""Replaying a race reproducer: the calls before the race, then the race, up to N times.

A race shows only when the calls overlap the way they did, so one replay proves little: the
script repeats the whole example (fresh VMs each time) and reports how often no order of the
calls explained what the target did.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Mapping, Sequence

from conformance.engine.harness import Connection, Harness
from conformance.errors import ConformanceError, TargetError
from conformance.judge.divergence import Desynced, Divergence
from conformance.races.concurrency import Race, RaceCall, run_race
from conformance.reproduce.reproducer import LOGIN
from conformance.runner.connect import RunConfig, open_connection
from models.outcome import Success, Value

__all__ = ["replay_race"]

DEFAULT_REPEAT = 20


def replay_race(scenario: Mapping[str, object], argv: Sequence[str]) -> int:
    """Run ``scenario`` (see ``race_reproducer``) up to ``--repeat`` times; print how often the
    race showed. Exit 1 if it did, 0 if it never did, 2 if the target cannot be tested."""
    parser = argparse.ArgumentParser(description="Replay a race found by xapi-conformance.")
    parser.add_argument("url", nargs="?", default=str(scenario["url"]))
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    args = parser.parse_args(list(argv))
    config = RunConfig(
        target=args.url,
        user=str(scenario["user"]),
        password=os.environ.get(str(scenario.get("password_env", "XAPI_PASSWORD")), ""),
        protocol=str(scenario["protocol"]),
    )
    try:
        connection, close = open_connection(config)
    except ConformanceError as error:
        print(f"cannot test {args.url}: {error}")
        return 2
    try:
        return _repeat(connection, scenario, max(1, args.repeat))
    except TargetError as error:
        print(f"the target failed: {error}")
        return 2
    finally:
        close()


def _repeat(connection: Connection, scenario: Mapping[str, object], repeat: int) -> int:
    shown: list[str] = []
    for attempt in range(1, repeat + 1):
        outcome = _once(connection, scenario)
        print(f"run {attempt}: {'RACE SHOWS' if outcome else 'explained'}")
        if outcome:
            shown.append(outcome)
    print(f"the race showed in {len(shown)} of {repeat} runs")
    if shown:
        print("DIVERGES:\n" + shown[0])
        return 1
    print("conforms now: every run was explained by some order of the calls")
    return 0


def _once(connection: Connection, scenario: Mapping[str, object]) -> str:
    """One replay: the divergence's message if the race showed, else ""."""
    harness = Harness(connection, "concurrency")
    names: dict[str, str] = {}
    sessions: list[str] = []
    try:
        for step in _list(scenario["prefix"]):
            _prefix_step(harness, _list(step), names)
        race = _race(_list(scenario["lanes"]), names)
        sessions = _logins(harness, len(race.lanes))
        lanes = [harness.session, *sessions]
        run_race(harness, race, lanes + [harness.session] * (len(race.lanes) - len(lanes)))
        return ""
    except Divergence as divergence:
        return divergence.info.message
    except Desynced:
        return ""
    finally:
        harness.teardown()
        for session in sessions:
            with contextlib.suppress(TargetError):
                connection.target.call("session.logout", harness.refs.to_target(session))


def _list(value: object) -> list[object]:
    assert isinstance(value, list)
    return value


def _prefix_step(harness: Harness, step: list[object], names: dict[str, str]) -> None:
    method, raw_args, result = str(step[0]), _list(step[1]), step[2]
    if method == LOGIN:
        return
    outcome = harness.call(method, *(_arg(a, names) for a in raw_args))
    if isinstance(result, str) and isinstance(outcome, Success):
        names[result] = str(outcome.value)


def _arg(value: object, names: Mapping[str, str]) -> Value:
    if isinstance(value, dict) and set(value) == {"ref"}:
        return names.get(str(value["ref"]), "OpaqueRef:NULL")
    return value  # type: ignore[return-value]


def _race(lanes: list[object], names: Mapping[str, str]) -> Race:
    return Race(
        tuple(
            tuple(
                RaceCall(str(c[0]), tuple(_arg(a, names) for a in _list(c[1])), bool(c[2]))
                for c in map(_list, _list(lane))
            )
            for lane in lanes
        )
    )


def _logins(harness: Harness, lanes: int) -> list[str]:
    root = harness.connection.root
    sessions = []
    for _ in range(lanes - 1):
        login = harness.call(LOGIN, root.account.name, root.account.password)
        if isinstance(login, Success):
            sessions.append(str(login.value))
    return sessions
