"""Run profiles: how many examples and steps per area, and the Hypothesis settings they make."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from conformance.errors import UsageError

__all__ = ["PROFILES", "Profile", "hypothesis_settings"]


@dataclass(frozen=True)
class Profile:
    """Examples per area machine and steps per example; whether the sweeps run in full."""

    name: str
    max_examples: int
    steps: int
    full_sweeps: bool


PROFILES = {
    "dev": Profile("dev", max_examples=10, steps=15, full_sweeps=True),
    "ci": Profile("ci", max_examples=60, steps=25, full_sweeps=True),
    "thorough": Profile("thorough", max_examples=1000, steps=60, full_sweeps=True),
}


def hypothesis_settings(profile: str, max_examples: int | None, report_dir: Path) -> settings:
    """Settings for the area machines: the profile's sizes, the example database in the reports."""
    try:
        chosen = PROFILES[profile]
    except KeyError:
        raise UsageError(
            f"unknown profile {profile!r}; profiles are: {', '.join(PROFILES)}"
        ) from None
    return settings(
        max_examples=max_examples or chosen.max_examples,
        stateful_step_count=chosen.steps,
        deadline=None,
        database=DirectoryBasedExampleDatabase(str(report_dir / "hypothesis-db")),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        print_blob=False,
        report_multiple_bugs=False,
    )
