"""Ported from xapi's ocaml/tests/test_vm_helpers.ml.

Every test there is about where VM.start may place a VM: vGPU capacity (PGPU, GPU groups),
SR-IOV network capacity, and anti-affinity VM groups. On the wire each shows as VM.start's
placement (or NO_HOSTS_AVAILABLE / VGPU_* / NETWORK_SRIOV_* errors) once those objects exist;
the model has none of them, so each is an xfail that runs up to the first object it would make.
"""

from __future__ import annotations

import pytest

from tests.xapi.conftest import Api
from tests.xapi.oracle import missing

NEEDS = {
    "PGPU.get_all": "the model has no PGPUs, GPU groups or vGPUs",
    "network_sriov.get_all": "the model has no networks, PIFs or SR-IOV",
    "VM_group.get_all": "the model has no VM groups (anti-affinity placement)",
}
TESTS = [
    ("test_gpus_available_succeeds", "PGPU.get_all"),
    ("test_gpus_available_fails_no_pgpu", "PGPU.get_all"),
    ("test_gpus_available_fails_disabled_type", "PGPU.get_all"),
    ("test_gpus_available_fails_no_capacity", "PGPU.get_all"),
    ("test_group_hosts_bf", "PGPU.get_all"),
    ("test_group_hosts_df", "PGPU.get_all"),
    ("test_is_sriov_network_succeeds", "network_sriov.get_all"),
    ("test_netsriov_available_succeeds", "network_sriov.get_all"),
    ("test_netsriov_available_fails_no_netsriov", "network_sriov.get_all"),
    ("test_netsriov_available_fails_no_capacity", "network_sriov.get_all"),
    ("test_group_hosts_netsriov", "network_sriov.get_all"),
    ("test_group_hosts_netsriov_unattached", "network_sriov.get_all"),
    ("test_group_hosts_netsriov_with_allocated", "network_sriov.get_all"),
    ("test_get_group_key_anti_affinity", "VM_group.get_all"),
    ("test_get_group_key_normal_group", "VM_group.get_all"),
    ("test_get_group_key_vgpu", "PGPU.get_all"),
    ("test_get_group_key_netsriov", "network_sriov.get_all"),
    ("test_get_group_key_vgpu_and_netsriov", "PGPU.get_all"),
    ("test_get_group_key_anti_affinity_and_vgpu_and_netsriov", "VM_group.get_all"),
    ("VMAntiAffinityRankedGrpTest", "VM_group.get_all"),
]


@pytest.mark.parametrize(("name", "needs"), TESTS, ids=[name for name, _ in TESTS])
def test_placement(api: Api, name: str, needs: str) -> None:
    """test_vm_helpers.ml ``name``: VM.start's placement given the objects it needs."""
    del name
    missing(api, needs, reason=NEEDS[needs])
