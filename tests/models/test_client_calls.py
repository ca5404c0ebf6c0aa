"""What a client calls to find its way (session, pool, host, SR) and VM.provision, as xapi answers.

Sources: xapi's datamodel (session.this_host, pool.default_SR; get_by_name_label exists only for
classes with a ``name`` namespace, datamodel_utils.ml ``obj_has_get_by_name_label``),
create_misc.ml (software_version keys) and xapi_vm.ml / xapi_templates.ml (provision).
"""

from __future__ import annotations

import pytest

from models.outcome import Failure
from models.releases import DEFAULT_RELEASE, RELEASES, release, release_of_software_version
from models.world import Account
from tests.models.helpers import driver

DISK = '<disk device="0" size="10737418240" sr="{sr}" bootable="true"/>'


def test_session_is_on_the_pool_master() -> None:
    d = driver()
    master = d.ok("pool.get_master", d.ok("pool.get_all")[0])
    assert d.ok("session.get_this_host", d.session) == master
    record = d.ok("session.get_record", d.session)
    assert record["this_host"] == master and record["is_local_superuser"] is True
    assert d.ok("session.get_by_uuid", record["uuid"]) == d.session


def test_another_session_ref_is_a_handle_invalid() -> None:
    d = driver()
    assert d.fails("session.get_this_host", "OpaqueRef:gone") == Failure(
        "HANDLE_INVALID", ("session", "OpaqueRef:gone")
    )


def test_pool_default_sr_is_the_local_sr() -> None:
    d = driver()
    pool = d.ok("pool.get_all")[0]
    sr = d.ok("pool.get_default_SR", pool)
    assert d.ok("SR.get_all") == (sr,)
    assert d.ok("SR.get_name_label", sr) == "Local storage"
    assert d.ok("SR.get_by_name_label", "Local storage") == (sr,)
    assert d.ok("SR.get_by_uuid", d.ok("SR.get_uuid", sr)) == sr
    assert d.ok("pool.get_by_uuid", d.ok("pool.get_uuid", pool)) == pool


def test_pool_has_no_get_by_name_label() -> None:
    d = driver()
    assert d.fails("pool.get_by_name_label", "") == Failure(
        "MESSAGE_METHOD_UNKNOWN", ("pool.get_by_name_label",)
    )


def test_hosts_by_name_label_and_uuid() -> None:
    d = driver()
    host = d.ok("host.get_by_name_label", "host1")
    assert len(host) == 1
    assert d.ok("host.get_by_uuid", d.ok("host.get_uuid", host[0])) == host[0]
    assert d.ok("host.get_by_name_label", "no such host") == ()
    assert d.fails("host.get_by_uuid", "nope") == Failure("UUID_INVALID", ("host", "nope"))


def test_host_reports_the_release_it_follows() -> None:
    d = driver()
    host = d.ok("host.get_all")[0]
    versions = d.ok("host.get_software_version", host)
    assert versions["xapi"] == DEFAULT_RELEASE.xapi
    assert int(versions["product_version"].split(".")[0]) >= 8
    assert d.ok("host.get_API_version_major", host) == 2
    assert d.ok("host.get_API_version_minor", host) == DEFAULT_RELEASE.api_minor
    assert release_of_software_version(versions) == DEFAULT_RELEASE


@pytest.mark.parametrize(
    ("text", "xapi"), [("1.249.38", "1.249"), ("24.19", "24.19"), ("26.17.0", "26.17")]
)
def test_a_known_release_is_found_by_its_version(text: str, xapi: str) -> None:
    assert release(text).xapi == xapi


def test_an_unknown_release_takes_the_behaviour_of_the_newest_older_one() -> None:
    between = release("25.6.0")
    assert between.xapi == "25.6.0"
    assert between.api_minor == RELEASES[1].api_minor
    assert between.at_least("24.19") and not between.at_least("26.17")


def test_a_release_must_be_a_version() -> None:
    with pytest.raises(ValueError, match="not a version"):
        release("latest")


def test_provision_makes_the_template_a_vm() -> None:
    d = driver()
    template = d.new_vm(is_a_template=True)
    d.ok("VM.provision", template)
    assert d.field(template, "is_a_template") is False
    assert "start" in d.field(template, "allowed_operations")


def test_provision_makes_disks_on_named_srs_and_drops_the_install_keys() -> None:
    d = driver()
    sr_uuid = d.ok("SR.get_uuid", d.ok("SR.get_all")[0])
    disks = f"<provision>{DISK.format(sr=sr_uuid)}</provision>"
    other = {"disks": disks, "postinstall": "x", "default_template": "true"}
    template = d.new_vm(is_a_template=True, other_config=other)
    d.ok("VM.provision", template)
    assert d.field(template, "other_config") == {
        "default_template": "true",
        "mac_seed": d.field(template, "other_config")["mac_seed"],
    }


def test_provision_on_an_unknown_sr_fails_but_the_vm_is_no_longer_a_template() -> None:
    d = driver()
    disks = f"<provision>{DISK.format(sr='')}</provision>"
    template = d.new_vm(is_a_template=True, other_config={"disks": disks})
    assert d.fails("VM.provision", template) == Failure("UUID_INVALID", ("sr", ""))
    assert d.field(template, "is_a_template") is False
    assert d.field(template, "other_config")["disks"] == disks


def test_provision_of_a_malformed_disk_list() -> None:
    d = driver()
    template = d.new_vm(
        is_a_template=True, other_config={"disks": "<provision><disk/></provision>"}
    )
    assert d.fails("VM.provision", template) == Failure(
        "INTERNAL_ERROR", ("Xapi_templates.Parse_failure",)
    )
    # message_forwarding.ml parses the spec before xapi_vm.ml provision clears the flag
    assert d.field(template, "is_a_template") is True


def test_provision_of_a_vm_is_refused() -> None:
    d = driver()
    vm = d.new_vm()
    assert d.fails("VM.provision", vm).code == "PROVISION_ONLY_ALLOWED_ON_TEMPLATE"


def test_pool_other_config_add_and_remove() -> None:
    d = driver(accounts=(Account("ro", "ro", "read-only"),))
    pool = d.ok("pool.get_all")[0]
    d.ok("pool.add_to_other_config", pool, "k", "v")
    assert d.ok("pool.get_other_config", pool)["k"] == "v"
    assert d.fails("pool.add_to_other_config", pool, "k", "w") == Failure(
        "MAP_DUPLICATE_KEY", ("pool", "other_config", pool, "k")
    )
    d.ok("pool.remove_from_other_config", pool, "k")
    d.ok("pool.remove_from_other_config", pool, "k")  # an absent key is no error
    assert "k" not in d.ok("pool.get_other_config", pool)
    d.session = d.login("ro", "ro")
    assert d.fails("pool.add_to_other_config", pool, "k", "v").code == "RBAC_PERMISSION_DENIED"
