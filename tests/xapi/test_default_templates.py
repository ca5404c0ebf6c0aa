"""A pool's default templates (models/templates.py: guest-templates-json's loader, imported with
restore=true, then VM.set_is_default_template), and what a client does first with them: pick
one by name, clone it, provision it. On the model and the embedded server over both protocols."""

from __future__ import annotations

from models.outcome import Failure
from tests.xapi.conftest import Api, login_as

MIB = 2**20
GIB = 2**30


def _template(api: Api, name: str) -> str:
    (ref,) = api.ok("VM.get_by_name_label", name)
    return str(ref)


def test_other_install_media_is_as_its_json_makes_it(api: Api) -> None:
    vm = _template(api, "Other install media")
    assert api.get(vm, "uuid") == "552bce37-51b2-445d-84f2-5f33fa112d7e"
    assert api.get(vm, "is_a_template") is True
    assert api.get(vm, "is_default_template") is True
    assert api.get(vm, "reference_label") == "other-install-media"
    other = api.get(vm, "other_config")
    assert other["default_template"] == "true" and other["install-methods"] == "cdrom"
    assert api.int(vm, "memory_static_min") == 128 * MIB  # min_memory
    assert api.int(vm, "memory_static_max") == 256 * MIB  # twice min_memory
    assert api.int(vm, "memory_dynamic_min") == 256 * MIB
    assert api.int(vm, "memory_target") == 0  # absent from the record: the field's default
    assert api.int(vm, "VCPUs_max") == 1
    assert api.int(vm, "user_version") == 2
    assert api.int(vm, "version") == 1  # a full restore counts one more restore
    assert api.get(vm, "HVM_boot_params") == {"order": "dc"}
    assert api.get(vm, "platform")["viridian"] == "true"
    assert api.get(vm, "domain_type") == "hvm"


def test_debian_derives_from_the_uefi_and_hvm_linux_bases(api: Api) -> None:
    vm = _template(api, "Debian Bookworm 12")
    assert api.get(vm, "HVM_boot_params") == {"firmware": "uefi", "order": "cdn"}
    platform = api.get(vm, "platform")
    assert platform["secureboot"] == "auto" and "device-model" not in platform  # null dropped
    assert platform["vga"] == "std"
    other = api.get(vm, "other_config")
    assert other["linux_template"] == "true"
    assert 'size="10737418240" sr=""' in other["disks"]
    assert api.int(vm, "memory_static_max") == 2 * GIB


def test_a_default_template_cannot_be_destroyed(api: Api) -> None:
    vm = _template(api, "Other install media")
    assert "destroy" not in api.get(vm, "allowed_operations")
    # xapi_vm_lifecycle.ml: a default template is a template for the ops others allow
    assert api.fails("VM.destroy", vm) == Failure("VM_IS_TEMPLATE", (vm, "destroy"))


def test_clone_then_provision_as_a_client_does(api: Api) -> None:
    """copy_vm_record drops default_template and records base_template_name; VM.provision
    needs the disks' SR named (an empty sr is UUID_INVALID, as xapi_templates.ml says)."""
    template = _template(api, "Debian Bookworm 12")
    clone = str(api.ok("VM.clone", template, "my debian"))
    assert api.get(clone, "is_default_template") is False
    other = api.get(clone, "other_config")
    assert "default_template" not in other
    assert other["base_template_name"] == "Debian Bookworm 12"
    assert api.fails("VM.provision", clone) == Failure("UUID_INVALID", ("sr", ""))
    assert api.get(clone, "is_a_template") is False  # cleared first, kept after the failure
    second = str(api.ok("VM.clone", template, "my other debian"))
    sr_uuid = api.ok("SR.get_uuid", str(api.ok("SR.get_all")[0]))
    disks = other["disks"].replace('sr=""', f'sr="{sr_uuid}"')
    api.ok("VM.remove_from_other_config", second, "disks")
    api.ok("VM.add_to_other_config", second, "disks", disks)
    assert api.ok("VM.provision", second) == ""
    assert "disks" not in api.get(second, "other_config")


def test_set_is_default_template_as_the_template_installer_calls_it(api: Api) -> None:
    """VM.set_is_default_template (hidden from the docs, pool-admin): true makes a VM a
    template first (make_into_template), then sets the flag and other_config:default_template;
    false clears both, and the template can be destroyed again."""
    vm = api.new_vm()
    assert api.ok("VM.set_is_default_template", vm, True) == ""
    assert api.get(vm, "is_a_template") is True and api.get(vm, "is_default_template") is True
    assert api.get(vm, "other_config")["default_template"] == "true"
    assert "destroy" not in api.get(vm, "allowed_operations")
    assert api.ok("VM.set_is_default_template", vm, False) == ""
    assert api.get(vm, "other_config")["default_template"] == "false"
    assert "destroy" in api.get(vm, "allowed_operations")
    admin = login_as(api, "admin", "admin-pw")  # vm-admin: below pool-admin
    assert admin.fails("VM.set_is_default_template", vm, True).code == "RBAC_PERMISSION_DENIED"
