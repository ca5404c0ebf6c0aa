"""The filtered queries (VM.get_all_records_where, get_all_where) judged both ways: the
generated expressions and the query sweep's conform on the reference server, and a server that
ignores the expression diverges."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.areas.strategies import vm_record, where_expressions
from conformance.areas.sweeps import query_where
from conformance.engine.harness import Harness
from conformance.faults import lookup
from conformance.judge.divergence import Divergence
from conformance.server.app import XenAPIApp
from conformance.targets.inprocess import InProcessTarget
from models.outcome import Success
from tests.conformance.test_event_faults import _replayed
from tests.conformance.test_harness import PASSWORD, _server, connect, new_vm

FEW = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def _faulty_harness() -> Harness:
    state = _server(faults=lookup(["where-filter-ignored"]))
    connection = connect(state, wrap=lambda _inner: InProcessTarget(XenAPIApp(state), "xmlrpc"))
    return Harness(connection, "fields")


@FEW
@given(data=st.data(), records=st.booleans())
def test_generated_expressions_conform_on_the_reference_server(
    data: st.DataObject, records: bool
) -> None:
    harness = Harness(connect(), "fields")
    vm = new_vm(harness, name_label="xapi-conformance where")
    other = new_vm(harness, name_label="xapi-conformance other", user_version=7)
    for ref in (vm, other):
        expr = data.draw(where_expressions(harness.world.vms[ref]))
        harness.call("VM.get_all_records_where" if records else "VM.get_all_where", expr)
    harness.finish()


@pytest.mark.parametrize("faulty", [False, True], ids=["reference", "filter ignored"])
def test_the_query_sweep_finds_a_server_that_ignores_the_expression(faulty: bool) -> None:
    harness = _faulty_harness() if faulty else Harness(connect(), "fields")
    vm = new_vm(harness, name_label="xapi-conformance where")
    if not faulty:
        query_where(harness, harness.world.vms[vm])
        harness.finish()
        return
    with pytest.raises(Divergence) as raised:
        query_where(harness, harness.world.vms[vm])
    assert "VM.get_all_records_where" in raised.value.info.reproducer
    harness.teardown()


def test_a_pool_wide_querys_reproducer_judges_the_vms_it_replays(tmp_path: Path) -> None:
    """Another client's VM, there while the example ran, is in neither side of the reproducer's
    verdict: the script replays alone, on a pool where that VM is gone, and exits 1 on a server
    with the fault, 0 on the honest one."""
    state = _server(faults=lookup(["stale-record"]))
    other_client = InProcessTarget(XenAPIApp(state), "xmlrpc")
    session = other_client.call("session.login_with_password", "root", PASSWORD)
    assert isinstance(session, Success)
    record = vm_record("another client", name_label="another client's VM")
    assert isinstance(other_client.call("VM.create", session.value, record), Success)
    harness = Harness(connect(state), "fields")
    vm = new_vm(harness, name_label="xapi-conformance where")
    harness.call("VM.set_name_label", vm, "renamed")
    with pytest.raises(Divergence) as raised:
        harness.call("VM.get_all_records_where", 'field "is_a_template" = "false"')
    harness.teardown()
    script = tmp_path / "reproducer.py"
    script.write_text(raised.value.info.reproducer)
    assert "own_only(call('VM.get_all_records_where'" in script.read_text()
    assert "another client" not in script.read_text()
    status, printed = _replayed(script, "stale-record")
    assert status == 1, printed
    status, printed = _replayed(script, None)
    assert status == 0, printed
