"""One registry of areas (conformance.areas.registry) that every other place reads or is held to."""

from __future__ import annotations

from conformance.areas.machines import AREAS
from conformance.areas.registry import AREA_NAMES, SELECTABLE, SWEEP_AREAS
from conformance.faults import FAULTS
from conformance.runner.options import AREA_NAMES as SELECTED_BY_K
from conformance.runner.profiles import PROFILES
from conformance.suite import test_conformance


def test_the_machines_are_the_registrys_areas_in_its_order() -> None:
    assert tuple(AREAS) == AREA_NAMES


def test_the_command_line_selects_the_registrys_names() -> None:
    assert SELECTED_BY_K == SELECTABLE


def test_each_sweep_of_the_suite_belongs_to_an_area() -> None:
    sweeps = {n for n in dir(test_conformance) if n.startswith("test_") and n != "test_area"}
    assert sweeps == set(SWEEP_AREAS)
    assert set(SWEEP_AREAS.values()) <= set(AREA_NAMES)


def test_the_profiles_name_only_areas() -> None:
    for profile in PROFILES.values():
        assert set(profile.per_area) <= set(AREA_NAMES), profile.name


def test_each_fault_is_found_in_an_area() -> None:
    """The faults sit below the areas (they cannot import the registry): held to it here."""
    assert {name: f.area for name, f in FAULTS.items() if f.area not in AREA_NAMES} == {}
