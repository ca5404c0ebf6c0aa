"""How each seeded fault is found in-process: the selection (a sweep, or an area's machine) that
finds it cheapest, with the ``ci`` profile's sizes, and what its divergence shows."""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from conformance.areas.machines import AREAS
from conformance.areas.roles_sweep import roles_sweep
from conformance.areas.sweeps import blocked_sweep, fields_sweep, lifecycle_sweep, memory_sweep
from conformance.engine.harness import Connection
from conformance.faults import FAULTS, lookup
from conformance.judge.divergence import Divergence, DivergenceInfo
from conformance.runner.profiles import PROFILES, area_examples
from conformance.server.app import XenAPIApp
from conformance.server.latency import SlowCalls
from conformance.server.profiles import NO_LATENCY
from conformance.targets.inprocess import InProcessTarget
from tests.conformance.test_harness import _server, connect

__all__ = [
    "CASES",
    "CONCURRENCY",
    "QUICK_IDLE_S",
    "SWEEPS",
    "ci_settings",
    "find",
    "found",
    "replayed",
    "shown",
]

LIFECYCLE_SWEEP = "lifecycle_sweep"
BLOCKED_SWEEP = "blocked_sweep"
MEMORY_SWEEP = "memory_sweep"
FIELDS_SWEEP = "fields_sweep"
ROLES_SWEEP = "roles_sweep"
CONCURRENCY = "test_area and concurrency"
EVENTS = "test_area and events"

# fault → (-k selection, a text the divergence's message, expected outcome or kind shows)
CASES: dict[str, tuple[str, str]] = {
    "wrong-state-allowed": (LIFECYCLE_SWEEP, "VM_BAD_POWER_STATE"),
    "start-paused-ignored": (LIFECYCLE_SWEEP, "paused"),
    "suspend-keeps-host": (LIFECYCLE_SWEEP, "resident_on"),
    "shutdown-keeps-domid": (LIFECYCLE_SWEEP, "domid"),
    "unpause-running-accepted": (LIFECYCLE_SWEEP, "VM_BAD_POWER_STATE"),
    "start-fails": (LIFECYCLE_SWEEP, "NO_HOSTS_AVAILABLE"),
    "bios-strings-unfilled": (LIFECYCLE_SWEEP, "bios_strings"),
    "create-keeps-suspend-vdi": (LIFECYCLE_SWEEP, "suspend_VDI"),
    "start-overhead-stale": (LIFECYCLE_SWEEP, "memory_overhead"),
    "nested-virt-unpinned-started": (LIFECYCLE_SWEEP, "MEMORY_CONSTRAINT_VIOLATION_MAXPIN"),
    "boot-checks-lax": (LIFECYCLE_SWEEP, "VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION"),
    "possible-hosts-all": (LIFECYCLE_SWEEP, "VM.get_possible_hosts"),
    "hard-shutdown-suspended-refused": (LIFECYCLE_SWEEP, "VM.hard_shutdown"),
    "wrong-error-param": (LIFECYCLE_SWEEP, "VM_BAD_POWER_STATE"),
    "power-state-capitalised": (LIFECYCLE_SWEEP, "VM_BAD_POWER_STATE"),
    "handle-invalid-lowercase": ("test_area and rpc", "HANDLE_INVALID"),
    "blocked-reason-lost": (BLOCKED_SWEEP, "OPERATION_BLOCKED"),
    "template-error-code": (LIFECYCLE_SWEEP, "VM_IS_TEMPLATE"),
    "map-duplicate-uuid": ("test_area and fields", "MAP_DUPLICATE_KEY"),
    "memory-order-unchecked": (MEMORY_SWEEP, "MEMORY_CONSTRAINT_VIOLATION_ORDER"),
    "target-not-following": (MEMORY_SWEEP, "memory_target"),
    "static-max-unchecked": (MEMORY_SWEEP, "MEMORY_CONSTRAINT_VIOLATION_ORDER"),
    "vcpus-unchecked": (MEMORY_SWEEP, "INVALID_VALUE"),
    "dynamic-range-running-refused": (MEMORY_SWEEP, "VM.set_memory_dynamic_range"),
    "blocked-ignored": (BLOCKED_SWEEP, "OPERATION_BLOCKED"),
    "blocked-checked-late": (BLOCKED_SWEEP, "OPERATION_BLOCKED"),
    "migrate-stays": (LIFECYCLE_SWEEP, "resident_on"),
    "affinity-ignored": (LIFECYCLE_SWEEP, "resident_on"),
    "allowed-ops-stale": ("test_area and operations", "allowed_operations"),
    "assert-valid-lax": ("test_area and operations", "VM.assert_operation_valid"),
    "unblock-ignored": ("test_area and operations", "blocked_operations"),
    "template-startable": (LIFECYCLE_SWEEP, "VM_IS_TEMPLATE"),
    "default-template-destroyable": (LIFECYCLE_SWEEP, "VM_IS_TEMPLATE"),
    "default-template-clone-kept": (LIFECYCLE_SWEEP, "default_template"),
    "snapshot-of-unset": (LIFECYCLE_SWEEP, "snapshot"),
    "checkpoint-without-memory": (LIFECYCLE_SWEEP, "uspended"),
    "revert-orphan-refused": ("test_area and lifecycle", "VM.revert"),
    "stale-record": ("test_area and fields", "name_label"),
    "tags-duplicated": ("test_area and fields", "tags"),
    "record-missing-field": ("test_area and fields", "hardware_platform_version"),
    "param-count-with-session": ("test_area and rpc", "MESSAGE_PARAMETER_COUNT_MISMATCH"),
    "unknown-method-bare": ("test_area and rpc", "MESSAGE_METHOD_UNKNOWN"),
    "type-error-text": ("test_area and rpc", "INTERNAL_ERROR"),
    "rbac-ignored": ("test_area and roles", "RBAC_PERMISSION_DENIED"),
    "rbac-permission-case": ("test_area and roles", "RBAC_PERMISSION_DENIED"),
    "operator-denied-start": ("test_area and roles", "RBAC_PERMISSION_DENIED"),
    "lost-async-error": ("test_area and async", "async"),
    "async-result-dropped": ("test_area and async", "async"),
    "async-error-code-only": ("test_area and async", "async"),
    "async-effect-lost": ("test_area and async", "[async]"),
    "logout-keeps-session": ("test_area and rpc", "_INVALID"),  # SESSION_ or HANDLE_
    "clone-keeps-blocked-ops": ("test_area and operations", "blocked_operations"),
    "clone-keeps-mac-seed": ("test_area and fields", "mac_seed"),
    "any-password-accepted": ("test_area and rpc", "SESSION_AUTHENTICATION_FAILED"),
    "auth-failure-unnamed": ("test_area and rpc", "SESSION_AUTHENTICATION_FAILED"),
    "session-originator-lost": ("test_area and rpc", "originator"),
    "logout-twice-accepted": (ROLES_SWEEP, "SESSION_INVALID"),
    "login-name-ignored": (ROLES_SWEEP, "SESSION_AUTHENTICATION_FAILED"),
    "user-name-case-folded": (ROLES_SWEEP, "SESSION_AUTHENTICATION_FAILED"),
    "int64-through-double": (FIELDS_SWEEP, "user_version"),
    "non-bmp-mangled": (FIELDS_SWEEP, "not a XenAPI answer"),
    "datetime-as-string": (FIELDS_SWEEP, "dateTime"),
    "datetime-hyphenated": (FIELDS_SWEEP, "datetime"),
    "empty-text-null": (FIELDS_SWEEP, "null"),
    "double-as-int": ("test_area and fields", "float"),
    "map-key-roles-ignored": ("test_area and roles", "RBAC_PERMISSION_DENIED"),
    "name-label-prefix-match": (FIELDS_SWEEP, "get_by_name_label"),
    "queries-ignore-case": (FIELDS_SWEEP, "get_by_"),
    "records-without-snapshots": (FIELDS_SWEEP, "get_all_records"),
    "control-domains-unlisted": (FIELDS_SWEEP, "control domain"),
    "where-filter-ignored": (FIELDS_SWEEP, "get_all_records_where"),
    "where-or-as-and": (FIELDS_SWEEP, "get_all_records_where"),
    "set-map-merges": (FIELDS_SWEEP, "xapi-conformance-key"),
    "async-denial-answered": (ROLES_SWEEP, "RBAC_PERMISSION_DENIED"),
    "operator-sizes-vms": (ROLES_SWEEP, "RBAC_PERMISSION_DENIED"),
    "snapshot-time-epoch": (LIFECYCLE_SWEEP, "snapshot_time"),
    "revert-keeps-changes": (LIFECYCLE_SWEEP, "name_description"),
    "template-vcpus-unchecked": (MEMORY_SWEEP, "INVALID_VALUE"),
    "int-typed": ("test_area and fields", "int"),
    "bool-as-text": ("test_area and fields", "bool"),
    "task-not-resident": ("test_area and async", "resident_on"),
    "task-created-local-time": ("test_area and async", "created"),
    "task-destroy-kept": (EVENTS, "destroyed task"),
    "task-listed-after-destroy": (EVENTS, "must not be listed"),
    "event-no-mod-on-power-change": (EVENTS, "(mod)"),
    "event-stale-snapshot": (EVENTS, "in the snapshot of"),
    "event-token-stuck": (EVENTS, "token"),
    "event-class-filter-ignored": (EVENTS, "outside the subscription"),
    "event-empty-subscription-everything": (EVENTS, "event.from([]"),
    "event-no-del-on-destroy": (EVENTS, "(del)"),
    "event-task-without-result": (EVENTS, "task result"),
    "event-next-repeats": (EVENTS, "the last id already answered"),
    "event-next-stale-snapshot": (EVENTS, "in the snapshot of"),
    "event-counts-empty": (EVENTS, "valid_ref_counts"),
    "event-ids-not-generations": (EVENTS, "event id"),
    "event-token-unpadded": (EVENTS, "is not xapi's"),
    "event-next-class-uppercase": (EVENTS, "event class"),
    "event-wildcard-unmatched": (EVENTS, "['*']"),
    "event-subscription-case-sensitive": (EVENTS, "['VM']"),
    "event-inject-untouched": (EVENTS, "event.inject"),
    "event-current-id-last": (EVENTS, "event.get_current_id"),
    "event-next-unregistered-handle": (EVENTS, "SESSION_NOT_REGISTERED"),
    "event-from-token-lax": (EVENTS, "EVENT_FROM_TOKEN_PARSE_FAILURE"),
    "event-token-unsigned": (EVENTS, "must not fail"),
    "task-destroy-no-del": (EVENTS, "task (del)"),
    "event-order-mods-first": (EVENTS, "event order"),
    "event-next-del-bare": (EVENTS, "(del)"),
    "event-unregister-ignored": (EVENTS, "outside the subscription"),
    "event-idle-object-repeated": (EVENTS, "event.from(['vm/"),
    "pool-other-config-write-lost": (ROLES_SWEEP, "pool.get_other_config"),
    "task-owner-ignored": (ROLES_SWEEP, "RBAC_PERMISSION_DENIED"),
    "not-utf8-replaced": (FIELDS_SWEEP, "INVALID_VALUE"),
    # races (issue 12): found only by the concurrency area
    "concurrent-starts-both-succeed": (CONCURRENCY, "VM.start"),
    "destroy-succeeds-twice": (CONCURRENCY, "VM.destroy"),
    "map-update-lost": (CONCURRENCY, "no order of these"),
    "conflict-not-waited": (CONCURRENCY, "OTHER_OPERATION_IN_PROGRESS"),
    "in-flight-not-asserted": (CONCURRENCY, "VM.assert_operation_valid"),
    "allowed-ops-stale-in-flight": (CONCURRENCY, "allowed_operations"),
    "cancelled-op-done": (CONCURRENCY, "TASK_CANCELLED"),
    "event-in-flight-hidden": (CONCURRENCY, "event.from"),
    "hard-shutdown-cancels-all": (CONCURRENCY, "TASK_CANCELLED"),
}
SWEEPS: dict[str, tuple[Callable[[], Iterable[Callable[[Connection, str], None]]], str]] = {
    LIFECYCLE_SWEEP: (lifecycle_sweep, "lifecycle"),
    BLOCKED_SWEEP: (blocked_sweep, "operations"),
    MEMORY_SWEEP: (memory_sweep, "memory"),
    FIELDS_SWEEP: (fields_sweep, "fields"),
    ROLES_SWEEP: (roles_sweep, "roles"),
}


ON_POOL_TEMPLATES = ("default-template-clone-kept",)
"""Faults shown only on the pool's default templates (serve has them; ``_server`` has none)."""


QUICK_IDLE_S = 0.01
"""The events machine's idle event.from timeout in these searches (a run's is
``conformance.areas.events.IDLE_WAIT_S``): nothing changes on an in-process server while the poll
waits, so it answers the same; each idle step waits its timeout twice, which was most of an
events search's time."""


def faulty(fault: str) -> Connection:
    """An in-process embedded server with ``fault``, its operations in flight as the fault's
    windows say (as ``serve --fault``)."""
    templates = fault in ON_POOL_TEMPLATES
    state = _server(faults=lookup([fault]), templates=templates)  # type: ignore[arg-type]
    app = XenAPIApp(state, latency=SlowCalls(NO_LATENCY))
    return connect(state, wrap=lambda _inner: InProcessTarget(app, "xmlrpc"))


def ci_settings(area: str) -> settings:
    """The ci profile's sizes for ``area``, derandomized (the same examples every run), without
    shrinking: finding the fault is what is checked."""
    return settings(
        max_examples=area_examples("ci", area, None),
        stateful_step_count=min(PROFILES["ci"].steps, AREAS[area].max_steps),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        report_multiple_bugs=False,
    )


def find(selection: str, connection: Connection) -> DivergenceInfo:
    """The divergence the selection (a sweep, or an area's machine) finds first."""
    with pytest.raises(Divergence) as caught:
        if selection in SWEEPS:
            cases, area = SWEEPS[selection]
            for case in cases():  # the first divergence ends the sweep
                case(connection, area)
        else:
            area = selection.removeprefix("test_area and ")
            bound = type(
                "Bound", (AREAS[area],), {"connection": connection, "idle_wait_s": QUICK_IDLE_S}
            )
            run_state_machine_as_test(bound, settings=ci_settings(area))
    return caught.value.info


def found(fault: str) -> DivergenceInfo:
    """The divergence the search for ``fault`` (its case's selection on a server with it) finds,
    checked: in the area the catalogue names, showing the case's text."""
    selection, mark = CASES[fault]
    info = find(selection, faulty(fault))
    assert info.area == FAULTS[fault].area, info.message
    assert mark in f"{info.expected!r}{info.kind}{info.message}", info.message
    return info


def shown(divergence: Mapping[str, object]) -> str:
    """What a divergence of a summary.json shows, where a case's text is looked for: its
    expected outcomes, its kind and its message."""
    return json.dumps(divergence["expected"]) + str(divergence["kind"]) + str(divergence["message"])


def replayed(script: Path, args: Iterable[str], env: Mapping[str, str]) -> tuple[int, str]:
    """A finding's reproducer run in this process as ``python script *args`` runs it, with the
    environment variables ``env`` set and none of ``XAPI_PASSWORD*`` (it must read the variables
    its run named): its exit status and what it printed. What the script does is the claim, not
    the process it runs in (tests/reports/test_failing_run.py runs reproducers as scripts)."""
    printed = io.StringIO()
    with (
        contextlib.redirect_stdout(printed),
        contextlib.redirect_stderr(printed),
        pytest.MonkeyPatch.context() as patch,
        pytest.raises(SystemExit) as ended,
    ):
        patch.setattr(sys, "argv", [str(script), *args])
        for name in [name for name in os.environ if name.startswith("XAPI_PASSWORD")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        runpy.run_path(str(script), run_name="__main__")
    return int(ended.value.code or 0), printed.getvalue()
