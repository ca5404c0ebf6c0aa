"""RBAC on the VM's map keys, read from xapi's source (no unit test of xapi covers them).

rbac.ml ``permission_of_action``: a call on a protected key (datamodel_vm.ml ``map_keys_roles``)
needs the key's own permission, ``<call>/key:<protected key, lower-cased>`` (a wildcard's own
name for the keys it covers), held by the key's roles only, instead of the call's. helpers.ml
``set_map_with_rbac``: ``VM.set_other_config`` and ``VM.set_platform`` need, beyond their own,
the ``add_to`` permission of each protected key they add or change and the ``remove_from`` one
of each they remove.
"""

from __future__ import annotations

import pytest

from models.outcome import Failure, Success
from tests.xapi.conftest import Api, login_as

ACCOUNTS = {"vm-operator": ("operator", "op-pw"), "vm-admin": ("admin", "admin-pw")}
ACCOUNTS["read-only"] = ("ro", "ro-pw")
POOL_ADMIN = "pool-admin"
VM_OPERATOR = "pool-admin, pool-operator, vm-power-admin, vm-admin, vm-operator"
VM_ADMIN = "pool-admin, pool-operator, vm-power-admin, vm-admin"


def _denied(permission: str, roles: str) -> Failure:
    text = f"No permission in user session. (Roles with this permission: {roles})"
    return Failure("RBAC_PERMISSION_DENIED", (permission, text))


def _as(api: Api, role: str) -> Api:
    return login_as(api, *ACCOUNTS[role])


KEYED_CASES = [
    ("vm-operator", "add_to_other_config", "folder", None),
    ("vm-operator", "remove_from_other_config", "folder", None),
    ("vm-operator", "add_to_other_config", "XenCenter.CustomFields.colour", None),
    ("vm-operator", "add_to_other_config", "xencenter.customfields.colour", ("", VM_ADMIN)),
    ("vm-operator", "add_to_other_config", "mine", ("", VM_ADMIN)),
    ("read-only", "add_to_other_config", "folder", ("/key:folder", VM_OPERATOR)),
    (
        "read-only",
        "remove_from_other_config",
        "XenCenter.CustomFields.",
        ("/key:xencenter.customfields.*", VM_OPERATOR),
    ),
    ("vm-admin", "add_to_other_config", "pci", ("/key:pci", POOL_ADMIN)),
    ("vm-admin", "remove_from_other_config", "hvm_serial", ("/key:hvm_serial", POOL_ADMIN)),
    ("vm-admin", "add_to_platform", "hvm_serial", ("/key:hvm_serial", POOL_ADMIN)),
    ("vm-admin", "add_to_platform", "pci", None),
    ("vm-operator", "add_to_platform", "hvm_serial", ("/key:hvm_serial", POOL_ADMIN)),
]


@pytest.mark.parametrize(
    ("role", "message", "key", "denied"),
    KEYED_CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in KEYED_CASES],
)
def test_a_protected_key_needs_its_own_permission(
    api: Api, role: str, message: str, key: str, denied: tuple[str, str] | None
) -> None:
    """rbac.ml permission_of_action, with the keys of datamodel_vm.ml map_keys_roles."""
    vm = api.new_vm()
    args = (vm, key, "v") if message.startswith("add_to") else (vm, key)
    outcome = _as(api, role).call(f"VM.{message}", *args)
    if denied is None:
        assert isinstance(outcome, Success), outcome
    else:
        assert outcome == _denied(f"vm.{message}{denied[0]}", denied[1])


SET_CASES = [
    ("add pci", {"pci": "0/0000:00:02.0"}, {}, "vm.add_to_other_config/key:pci"),
    ("change pci", {"pci": "new"}, {"pci": "old"}, "vm.add_to_other_config/key:pci"),
    ("remove pci", {}, {"pci": "old"}, "vm.remove_from_other_config/key:pci"),
    ("keep pci", {"pci": "old", "mine": "1"}, {"pci": "old"}, None),
    ("add folder", {"folder": "/a"}, {}, None),
    (
        "add before remove",
        {"hvm_serial": "pty"},
        {"pci": "old"},
        "vm.add_to_other_config/key:hvm_serial",
    ),
]


@pytest.mark.parametrize(
    ("new", "old", "denied"), [c[1:] for c in SET_CASES], ids=[c[0] for c in SET_CASES]
)
def test_set_other_config_checks_the_protected_keys_it_changes(
    api: Api, new: dict[str, str], old: dict[str, str], denied: str | None
) -> None:
    """helpers.ml set_map_with_rbac: add_to permissions first, then remove_from, each sorted."""
    vm = api.new_vm()
    api.ok("VM.set_other_config", vm, old)
    outcome = _as(api, "vm-admin").call("VM.set_other_config", vm, new)
    if denied is None:
        assert isinstance(outcome, Success), outcome
        assert api.get(vm, "other_config") == new
    else:
        assert outcome == _denied(denied, POOL_ADMIN)
        assert api.get(vm, "other_config") == old


def test_set_platform_checks_hvm_serial(api: Api) -> None:
    """xapi_vm.ml set_platform: set_map_with_rbac over platform's one protected key."""
    vm = api.new_vm()
    admin = _as(api, "vm-admin")
    assert isinstance(admin.call("VM.set_platform", vm, {"acpi": "1"}), Success)
    assert admin.call("VM.set_platform", vm, {"hvm_serial": "pty"}) == _denied(
        "vm.add_to_platform/key:hvm_serial", POOL_ADMIN
    )


def test_set_other_config_needs_its_own_permission_first(api: Api) -> None:
    """server.ml checks the call's own permission (vm-admin) before any key's."""
    vm = api.new_vm()
    outcome = _as(api, "vm-operator").call("VM.set_other_config", vm, {"folder": "/a"})
    assert outcome == _denied("vm.set_other_config", VM_ADMIN)


# ---- another subject's task: taskHelper.ml assert_op_valid ------------------------------------

TASK_ANY = "pool-admin, pool-operator"


def _operator_task(api: Api) -> tuple[Api, str]:
    operator = _as(api, "vm-operator")
    vm = api.new_vm()
    task = operator.call("Async.VM.start", vm, False, False)
    assert isinstance(task, Success), task
    return operator, str(task.value)


@pytest.mark.parametrize("message", ["task.destroy", "task.cancel"])
def test_another_subjects_task_needs_task_destroy_any(api: Api, message: str) -> None:
    """taskHelper.ml assert_op_valid: a subject acts on its own tasks; on another's, only with
    the permission task.destroy/any (pool-operator and above; a local superuser always)."""
    _operator, task = _operator_task(api)
    admin = _as(api, "vm-admin")
    assert admin.call(message, task) == _denied("task.destroy/any", TASK_ANY)
    assert isinstance(api.call(message, task), Success)  # root: the local superuser


@pytest.mark.parametrize("message", ["task.destroy", "task.cancel"])
def test_a_subject_acts_on_its_own_task_from_any_of_its_sessions(api: Api, message: str) -> None:
    """assert_op_valid compares the subjects of the two sessions, not the sessions."""
    _operator, task = _operator_task(api)
    again = _as(api, "vm-operator")
    assert isinstance(again.call(message, task), Success)


def test_a_task_whose_session_is_gone_is_no_ones(api: Api) -> None:
    """assert_op_valid: reading the task's session fails once it is destroyed, so the task is
    not one's own: even its subject needs task.destroy/any."""
    operator, task = _operator_task(api)
    assert isinstance(operator.raw("session.logout", operator.session), Success)
    again = _as(api, "vm-operator")
    assert again.call("task.destroy", task) == _denied("task.destroy/any", TASK_ANY)


# ---- task.other_config: datamodel.ml Task.protected_keys, xapi_task.ml ---------------------------

READ_ONLY_TASK_CASES = [
    ("read-only", "mine", None),
    ("read-only", "applies_to", "/key:applies_to"),
    ("read-only", "XenCenterUUID", "/key:xencenteruuid"),
    ("read-only", "XenCenterMeddlingActionTitle", "/key:xencentermeddlingactiontitle"),
    ("vm-operator", "applies_to", None),
    ("read-only", "xencenteruuid", None),  # keys match exactly
]


def _own_task(api: Api, role: str) -> tuple[Api, str]:
    """A task of a ``role`` session (an Async read, which any role may make)."""
    subject = _as(api, role)
    task = subject.call("Async.VM.get_possible_hosts", api.new_vm())
    assert isinstance(task, Success), task
    return subject, str(task.value)


@pytest.mark.parametrize(("role", "key", "denied"), READ_ONLY_TASK_CASES)
def test_a_tasks_protected_keys_need_vm_operator(
    api: Api, role: str, key: str, denied: str | None
) -> None:
    """task.add_to_other_config and remove_from_other_config are read-only's calls, but
    applies_to, XenCenterUUID and XenCenterMeddlingActionTitle are vm-operator's keys
    (``~map_keys_roles:protected_keys``): the permission names the key, lower-cased."""
    subject, task = _own_task(api, role)
    for message, args in (("add_to_other_config", ("v",)), ("remove_from_other_config", ())):
        outcome = subject.call(f"task.{message}", task, key, *args)
        if denied is None:
            assert isinstance(outcome, Success), outcome
        else:
            assert outcome == _denied(f"task.{message}{denied}", VM_OPERATOR)
    if denied is None:
        assert key not in subject.ok("task.get_other_config", task)


def test_another_subjects_task_other_config_needs_task_destroy_any(api: Api) -> None:
    """xapi_task.ml assert_can_modify_other_config: TaskHelper.assert_op_valid, as for
    task.destroy; a duplicate key is MAP_DUPLICATE_KEY."""
    operator, task = _own_task(api, "vm-operator")
    admin = _as(api, "vm-admin")
    assert admin.call("task.add_to_other_config", task, "k", "v") == _denied(
        "task.destroy/any", TASK_ANY
    )
    operator.ok("task.add_to_other_config", task, "k", "v")
    duplicate = operator.fails("task.add_to_other_config", task, "k", "w")
    assert duplicate == Failure("MAP_DUPLICATE_KEY", ("task", "other_config", task, "k"))
    assert operator.ok("task.get_other_config", task) == {"k": "v"}


def test_task_set_other_config_checks_the_protected_keys_it_changes(api: Api) -> None:
    """xapi_task.ml set_other_config: ownership first, then Helpers.set_map_with_rbac with the
    task's protected keys (add_to for a key added or changed, remove_from for one removed)."""
    subject, task = _own_task(api, "read-only")
    subject.ok("task.set_other_config", task, {"mine": "1"})
    denied = subject.call("task.set_other_config", task, {"mine": "1", "applies_to": "vm"})
    assert denied == _denied("task.add_to_other_config/key:applies_to", VM_OPERATOR)
    assert subject.ok("task.get_other_config", task) == {"mine": "1"}
    admin = _as(api, "vm-admin")
    assert admin.call("task.set_other_config", task, {}) == _denied("task.destroy/any", TASK_ANY)
