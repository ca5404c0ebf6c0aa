"""How many area-machine rule calls that draw a VM send nothing (no-op rule calls).

A rule that draws a VM and returns without a call wastes an example's step. Run on demand:

    python benchmarks/noop_rules.py [AREA ...]

It runs each area machine against the embedded server (60 examples of up to 20 steps, fixed
derandomised seed) and counts, per area, the rule calls that drew a VM and how many of them sent
no call through the harness.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import RULE_MARKER, run_state_machine_as_test

from conformance import harness as harness_module
from conformance.areas.machines import AREAS
from conformance.runner.connect import RunConfig, open_connection

SETTINGS = settings(
    max_examples=60,
    stateful_step_count=20,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
sent = [0]


def _count_calls(original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(self: object, *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1
        return original(self, *args, **kwargs)

    return wrapped


def _counted_rule(function: Callable[..., Any], tally: dict[str, int]) -> Callable[..., Any]:
    def counted(self: object, *args: Any, **kwargs: Any) -> Any:
        before = sent[0]
        result = function(self, *args, **kwargs)
        tally["rules"] += 1
        tally["noop"] += sent[0] == before
        return result

    rule = copy.copy(getattr(function, RULE_MARKER))
    object.__setattr__(rule, "function", counted)
    setattr(counted, RULE_MARKER, rule)
    for marker in ("hypothesis_stateful_precondition", "hypothesis_stateful_preconditions"):
        if hasattr(function, marker):
            setattr(counted, marker, getattr(function, marker))
    return counted


def measure(area: str, connection: object) -> dict[str, int]:
    """Run one area machine with every VM-drawing rule counted."""
    machine = AREAS[area]
    tally = {"rules": 0, "noop": 0}
    attributes: dict[str, Any] = {"connection": connection}
    for name in dir(machine):
        function = getattr(machine, name)
        rule = getattr(function, RULE_MARKER, None)
        if rule is not None and "vm" in rule.arguments:
            attributes[name] = _counted_rule(function, tally)
    run_state_machine_as_test(
        type(f"{machine.__name__}Counted", (machine,), attributes), settings=SETTINGS
    )
    return tally


def main() -> None:
    """Print the no-op share per area and overall."""
    for name in ("call", "raw_call", "call_async"):
        setattr(harness_module.Harness, name, _count_calls(getattr(harness_module.Harness, name)))
    connection, close = open_connection(RunConfig(run_id="noop"))
    totals = {"rules": 0, "noop": 0}
    try:
        for area in sys.argv[1:] or list(AREAS):
            tally = measure(area, connection)
            totals = {k: totals[k] + tally[k] for k in totals}
            _show(area, tally)
    finally:
        close()
    _show("all", totals)


def _show(label: str, tally: dict[str, int]) -> None:
    share = 100 * tally["noop"] / max(1, tally["rules"])
    print(
        f"{label:11s} rule calls drawing a VM {tally['rules']:5d}  no-op {tally['noop']:5d} ({share:.0f}%)",
        flush=True,
    )


if __name__ == "__main__":
    main()
