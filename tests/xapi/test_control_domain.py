"""The control domains' records as xapi creates them (create_misc.ml ``create_domain_zero_record``),
on the model and the embedded server over both protocols, and the checks that follow from them."""

from __future__ import annotations

from typing import Any

from models.outcome import Failure
from tests.xapi.conftest import Api

EXPECTED = {
    "name_description": "The domain which manages physical devices and manages other domains",
    "is_control_domain": True,
    "power_state": "Running",
    "domarch": "x64",
    "HVM_boot_policy": "",
    "actions_after_softreboot": "soft_reboot",
    "actions_after_shutdown": "destroy",
    "actions_after_reboot": "destroy",
    "actions_after_crash": "destroy",
    "domain_type": "pv",
    "generation_id": "",
    "other_config": {},  # written to the database directly: no mac_seed
    "platform": {},
    "is_a_template": False,
    "is_default_template": False,
}


def _control_domains(api: Api) -> dict[str, dict[str, Any]]:
    records = api.ok("VM.get_all_records")
    return {ref: r for ref, r in records.items() if r["is_control_domain"] is True}


def test_control_domains_are_as_create_misc_makes_them(api: Api) -> None:
    domains = _control_domains(api)
    hosts = api.ok("host.get_all")
    assert len(domains) == len(hosts)
    for ref, record in domains.items():
        assert {k: record[k] for k in EXPECTED} == EXPECTED
        assert str(record["domid"]) == "0"
        assert record["resident_on"] == record["affinity"]
        assert record["name_label"].startswith("Control domain on host: ")
        overhead = int(api.ok("VM.compute_memory_overhead", ref))
        assert int(record["memory_overhead"]) == overhead  # update_memory_overhead at creation


def test_the_control_domain_keeps_its_memory_pinned(api: Api) -> None:
    """xapi_vm_memory_constraints.ml: a control domain must stay pinned at static_max."""
    dom0 = next(iter(_control_domains(api)))
    size = api.get(dom0, "memory_static_max")
    outcome = api.fails("VM.set_memory_dynamic_range", dom0, str(int(size) // 2), size)
    assert outcome == Failure("MEMORY_CONSTRAINT_VIOLATION_MAXPIN", ("control domain",))
    assert api.fails("VM.set_VCPUs_at_startup", dom0, "1") == Failure(
        "OPERATION_NOT_ALLOWED", ("set_VCPUs_at_startup is not allowed on dom0",)
    )
