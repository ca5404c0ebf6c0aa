"""The suite's areas, named once.

Every other place reads them here: the area machines (``conformance.areas.machines.AREAS``), the
command line's ``-k`` help and check (``conformance.runner.options``), the area a sweep's results
count under (``conformance.runner.plugin``), the profiles' examples per area and the fault
catalogue's areas (held to these names by tests/conformance/test_area_registry.py; the faults
sit below the areas and cannot import them).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["AREA_NAMES", "SELECTABLE", "SWEEP_AREAS"]

AREA_NAMES = (
    "lifecycle",
    "memory",
    "operations",
    "templates",
    "fields",
    "rpc",
    "roles",
    "async",
    "concurrency",
    "events",
)
"""The areas, one state machine each, in the order runs and reports list them."""

SWEEP_AREAS: Mapping[str, str] = MappingProxyType(
    {
        "test_lifecycle_sweep": "lifecycle",
        "test_operations_blocked_sweep": "operations",
        "test_memory_sweep": "memory",
        "test_fields_sweep": "fields",
        "test_fields_unjudged_cells": "fields",
        "test_roles_sweep": "roles",
    }
)
"""The suite's deterministic sweeps (their test functions) and the area each belongs to."""

SELECTABLE = (*AREA_NAMES, "sweep")
"""What ``-k`` selects by name: an area (its machine) and the deterministic sweeps."""
