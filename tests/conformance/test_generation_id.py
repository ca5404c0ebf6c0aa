"""A VM's generation_id, drawn at random, judged by when it changes: xapi draws a fresh one on
clone, snapshot and revert and keeps it otherwise. Both ways, in-process: the copies sweep
against the reference server, and against one whose VM.revert keeps the VM's."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conformance.areas import sweeps
from conformance.engine.harness import Connection
from conformance.faults import BranchFault
from conformance.judge.divergence import Divergence
from models.checks import update_vm
from models.outcome import Success
from models.transition import Branch, Call
from models.world import World
from tests.conformance.test_harness import _server, connect


def _genid_kept(world: World, call: Call, branch: Branch) -> Branch:
    """VM.revert leaves the VM's generation_id as it was (the one at the snapshot) instead of
    drawing a fresh one."""
    snapshot = str(call.args[1])
    if not isinstance(branch.outcome, Success) or snapshot not in world.vms:
        return branch
    vm = str(world.vms[snapshot]["snapshot_of"])
    if vm not in branch.world.vms or vm not in world.vms:
        return branch
    kept = {"generation_id": world.vms[vm]["generation_id"]}
    return replace(branch, world=update_vm(branch.world, vm, kept, recompute=False))


def _copies(connection: Connection) -> None:
    for case in sweeps.copies_sweep():
        case(connection, "lifecycle")


def test_the_reference_server_conforms() -> None:
    connection = connect()
    _copies(connection)
    assert connection.tally.divergences == []


def test_a_revert_keeping_the_generation_id_diverges() -> None:
    fault = BranchFault(_genid_kept, frozenset({"VM.revert"}))
    with pytest.raises(Divergence) as raised:
        _copies(connect(_server(faults=(fault,))))
    assert "generation_id" in str(raised.value)
