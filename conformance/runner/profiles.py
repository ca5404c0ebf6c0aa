"""Run profiles: how many examples and steps per area, and the Hypothesis settings they make."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hypothesis import HealthCheck, Phase, settings

from conformance.errors import UsageError

__all__ = ["PROFILES", "Profile", "area_examples", "hypothesis_settings", "profile_named"]


@dataclass(frozen=True)
class Profile:
    """Examples per area machine and steps per example; whether the sweeps run in full."""

    name: str
    max_examples: int
    steps: int
    full_sweeps: bool
    per_area: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Examples of the areas that get another number than ``max_examples``."""
    chunk: int = 10
    """Examples per chunk: an area's examples run as chunks of about this many, each a
    Hypothesis run of its own that any worker may take (``conformance.runner.split``)."""


CI_PER_AREA: Mapping[str, int] = MappingProxyType(
    {
        "lifecycle": 20,
        "memory": 20,
        "templates": 30,
        "async": 30,
        "concurrency": 45,
        "rpc": 80,
        "events": 30,
    }
)
"""Where ``ci`` spends fewer examples: areas whose cells the sweeps and the other areas reach
too, and whose seeded faults (if any) an area run finds in the first few hundred steps
(benchmarks/fault_detection.py). Their time goes to the run's minute. Concurrency keeps more:
whether a race shows depends on timing, and on a loaded machine fewer of its races do."""

PROFILES = {
    "dev": Profile("dev", max_examples=10, steps=15, full_sweeps=True),
    "ci": Profile("ci", max_examples=60, steps=25, full_sweeps=True, per_area=CI_PER_AREA),
    "thorough": Profile("thorough", max_examples=1000, steps=60, full_sweeps=True, chunk=50),
}


def area_examples(profile: str, area: str, max_examples: int | None) -> int:
    """Examples an area machine runs: ``max_examples`` if given (``--max-examples``), else
    the profile's number for the area."""
    if max_examples:
        return max_examples
    chosen = PROFILES[profile]
    return chosen.per_area.get(area, chosen.max_examples)


def profile_named(name: str) -> Profile:
    """The profile called ``name``; a usage error naming the profiles otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown profile {name!r}; profiles are: {', '.join(PROFILES)}") from None


def hypothesis_settings(profile: str, max_examples: int | None) -> settings:
    """Settings for the area machines: the profile's sizes.

    No example database: every chunk of a run has its own seed, and a failure one chunk saved
    would be replayed first by whichever chunk ran next, so that what a chunk runs would hang
    on which worker ran what before it. A run is repeated with its seed instead.
    """
    chosen = profile_named(profile)
    return settings(
        max_examples=max_examples or chosen.max_examples,
        stateful_step_count=chosen.steps,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        print_blob=False,
        report_multiple_bugs=False,
    )
