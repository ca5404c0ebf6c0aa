"""The catalogue of seeded faults (``serve --fault``, ``serve --list-faults``).

Each entry names what the fault gets wrong, the suite area whose divergence shows it, a one-line
summary and the divergence a conformance run must report. Each imitates a mistake a
reimplementation of xapi plausibly makes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from conformance.errors import UsageError
from conformance.faults.changes import (
    _OPERATOR_DENIED,
    AUTH_FAILED,
    MAP_SETTERS,
    TEMPLATE_VCPU_SETTERS,
    _affinity_ignored,
    _any_password,
    _blocked_operations_inherited,
    _capitalised_state,
    _case_folded,
    _control_domains_left_out,
    _counting_session,
    _created_local_time,
    _default_template,
    _default_template_kept,
    _denial_answered,
    _destroy_kept,
    _effect_lost,
    _error_code_only,
    _every_host,
    _failed_as_success,
    _filter_ignored,
    _kept,
    _logout_idempotent,
    _lowercase_class,
    _mac_seed_inherited,
    _map_merged,
    _message_only,
    _message_role_only,
    _new_vm_edited,
    _no_params,
    _not_nested,
    _not_resident,
    _not_template,
    _not_utf8_replaced,
    _operation,
    _operation_not_reason,
    _operator_denied,
    _or_read_as_and,
    _originator_dropped,
    _orphan_revert_refused,
    _overhead_not_refreshed,
    _password_only,
    _paused_as_running,
    _prefix_match,
    _record_without,
    _refusal_accepted,
    _result_dropped,
    _revert_keeps_changes,
    _rewrite_failure,
    _running_refused,
    _semicolons,
    _session_kept,
    _snapshots_left_out,
    _soft_destroyed,
    _start_fails,
    _started_unpaused,
    _stored_value,
    _success_without_effect,
    _suspend_vdi_kept,
    _suspended_refused,
    _tag_appended,
    _task_owner_ignored,
    _template_as_not_allowed,
    _template_vcpus_stored,
    _type_error_text,
    _unpause_running_accepted,
    _user_case_folded,
    _uuid_not_ref,
    _wire_case_permission,
    _without_key,
)
from conformance.faults.events import (
    class_filter_ignored,
    counts_empty,
    current_id_last,
    empty_subscription_everything,
    idle_object_repeated,
    ids_not_generations,
    inject_untouched,
    lax_token,
    mods_first,
    next_class_uppercase,
    next_del_bare,
    next_repeats,
    next_stale_snapshot,
    no_del_on_destroy,
    no_mod_after_power_change,
    stale_snapshot,
    subscription_case_sensitive,
    task_del_dropped,
    task_result_missing,
    token_stuck,
    token_unpadded,
    unregister_ignored,
    unregistered_handle,
    unsigned_token,
    wildcard_unmatched,
)
from conformance.faults.kinds import (
    _DYNAMIC_SETTERS,
    BranchFault,
    CallAltered,
    CheckLifted,
    Fault,
    MemoryOrderUnchecked,
    RbacIgnored,
    Rewired,
    Seeded,
    Unvalidated,
    WronglyTyped,
    _async_only,
    _vm_methods,
)
from conformance.faults.races import RACED
from conformance.wire import Quirks
from models.records import EPOCH
from models.world import NULL_REF

_BLOCKABLE_LIFECYCLE = _vm_methods(
    "start", "start_on", "clean_shutdown", "hard_shutdown", "shutdown", "clean_reboot",
    "hard_reboot", "pause", "unpause", "suspend", "resume", "checkpoint", "snapshot", "clone",
    "copy", "destroy", "provision",
)  # fmt: skip

_ENTRIES: tuple[tuple[str, Seeded], ...] = (
    # -- power states
    (
        "wrong-state-allowed",
        Seeded(
            CheckLifted(
                _vm_methods("suspend"), "VM_BAD_POWER_STATE", _paused_as_running, restore=False
            ),
            "lifecycle",
            "lifecycle",
            "VM.suspend on a Paused VM succeeds and moves it to Suspended, as if Paused were allowed.",
            'xapi answers VM_BAD_POWER_STATE [vm, "running", "paused"] and the VM stays Paused; the '
            "faulty server answers success and the VM is Suspended.",
        ),
    ),
    (
        "start-paused-ignored",
        Seeded(
            CallAltered(
                _started_unpaused,
                _vm_methods("start", "start_on", "resume", "resume_on", asynchronous=True),
            ),
            "lifecycle",
            "lifecycle",
            "VM.start (and start_on, resume, resume_on) ignore start_paused: the VM always runs.",
            "after VM.start(vm, true, false) xapi's VM is Paused; the faulty server's is Running, so "
            'VM.unpause then answers VM_BAD_POWER_STATE [vm, "paused", "running"].',
        ),
    ),
    (
        "suspend-keeps-host",
        Seeded(
            BranchFault(_kept("resident_on"), _vm_methods("suspend", asynchronous=True)),
            "lifecycle",
            "lifecycle",
            "A suspended VM stays resident on its host (resident_on is not cleared).",
            "after VM.suspend, xapi's record has resident_on OpaqueRef:NULL; the faulty one keeps the "
            "host.",
        ),
    ),
    (
        "shutdown-keeps-domid",
        Seeded(
            BranchFault(
                _kept("domid"),
                _vm_methods("hard_shutdown", "clean_shutdown", "shutdown", asynchronous=True),
            ),
            "lifecycle",
            "lifecycle",
            "A VM shut down keeps its domain id (domid is not reset to -1).",
            "after VM.hard_shutdown of a Running VM, xapi's record has domid -1; the faulty one keeps "
            "the running domain's id.",
        ),
    ),
    (
        "bios-strings-unfilled",
        Seeded(
            BranchFault(_kept("bios_strings"), _vm_methods("start", "start_on", asynchronous=True)),
            "lifecycle",
            "lifecycle",
            "A VM's first start leaves its BIOS strings empty (no generic strings filled in).",
            "xapi's VM.start and VM.start_on give a VM without BIOS strings the generic ones "
            "(consider_generic_bios_strings); the faulty server leaves the map empty.",
        ),
    ),
    (
        "start-fails",
        Seeded(
            BranchFault(_start_fails, _vm_methods("start", "start_on", asynchronous=True)),
            "lifecycle",
            "lifecycle",
            "VM.start and VM.start_on always fail with NO_HOSTS_AVAILABLE (a partial server).",
            "xapi starts a Halted VM; the faulty server answers NO_HOSTS_AVAILABLE [] and the VM "
            "stays Halted, so nothing that needs a running VM can be reached by starting one.",
        ),
    ),
    (
        "boot-checks-lax",
        Seeded(
            BranchFault(_refusal_accepted, _vm_methods("assert_can_boot_here", asynchronous=True)),
            "lifecycle",
            "lifecycle",
            "VM.assert_can_boot_here always succeeds (the host checks run only at start).",
            "for a VM whose hardware_platform_version is 3, xapi answers "
            'VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION [host, "[0; 1; 2]", vm, "3"]; '
            "the faulty server answers success.",
        ),
    ),
    (
        "possible-hosts-all",
        Seeded(
            BranchFault(_every_host, _vm_methods("get_possible_hosts", asynchronous=True)),
            "lifecycle",
            "lifecycle",
            "VM.get_possible_hosts lists every host of the pool.",
            "for a VM whose hardware_platform_version is 3, xapi answers no host; the faulty "
            "server lists them all.",
        ),
    ),
    (
        "unpause-running-accepted",
        Seeded(
            BranchFault(_unpause_running_accepted, _vm_methods("unpause")),
            "lifecycle",
            "lifecycle",
            "VM.unpause of a Running VM succeeds as a no-op.",
            'xapi answers VM_BAD_POWER_STATE [vm, "paused", "running"]; the faulty server answers '
            "success.",
        ),
    ),
    (
        "hard-shutdown-suspended-refused",
        Seeded(
            BranchFault(_suspended_refused, _vm_methods("hard_shutdown")),
            "lifecycle",
            "lifecycle",
            "VM.hard_shutdown refuses a Suspended VM (xapi discards its suspend image and halts it).",
            "xapi answers success and the VM is Halted; the faulty server answers VM_BAD_POWER_STATE "
            '[vm, "paused, running", "suspended"].',
        ),
    ),
    # -- error codes and parameters
    (
        "wrong-error-param",
        Seeded(
            BranchFault(_rewrite_failure("VM_BAD_POWER_STATE", _semicolons)),
            "errors",
            "lifecycle",
            "VM_BAD_POWER_STATE joins its expected states with ';' instead of ', '.",
            'VM.hard_shutdown on a Halted VM answers [vm, "paused;suspended;running", "halted"] where '
            'xapi answers [vm, "paused, suspended, running", "halted"].',
        ),
    ),
    (
        "power-state-capitalised",
        Seeded(
            BranchFault(_rewrite_failure("VM_BAD_POWER_STATE", _capitalised_state)),
            "errors",
            "lifecycle",
            "VM_BAD_POWER_STATE names the actual power state capitalised (Halted, not halted).",
            'VM.clean_shutdown on a Halted VM answers [vm, "running", "Halted"] where xapi answers '
            '[vm, "running", "halted"].',
        ),
    ),
    (
        "handle-invalid-lowercase",
        Seeded(
            BranchFault(_rewrite_failure("HANDLE_INVALID", _lowercase_class)),
            "errors",
            "rpc",
            "HANDLE_INVALID names the class in lower case (vm, not VM).",
            'VM.get_record(OpaqueRef:NULL) answers HANDLE_INVALID ["vm", ref] where xapi answers '
            '["VM", ref].',
        ),
    ),
    (
        "blocked-reason-lost",
        Seeded(
            BranchFault(_rewrite_failure("OPERATION_BLOCKED", _operation_not_reason)),
            "errors",
            "operations",
            "OPERATION_BLOCKED gives the blocked operation's name instead of the reason stored.",
            'a VM.start blocked with reason R answers OPERATION_BLOCKED [vm, "start"] where xapi '
            "answers [vm, R].",
        ),
    ),
    (
        "template-error-code",
        Seeded(
            BranchFault(_template_as_not_allowed),
            "errors",
            "lifecycle",
            "Operations refused on templates answer OPERATION_NOT_ALLOWED instead of VM_IS_TEMPLATE.",
            'VM.start on a template answers OPERATION_NOT_ALLOWED ["VM is a template: start"] where '
            'xapi answers VM_IS_TEMPLATE [vm, "start"].',
        ),
    ),
    (
        "map-duplicate-uuid",
        Seeded(
            BranchFault(_rewrite_failure("MAP_DUPLICATE_KEY", _uuid_not_ref)),
            "errors",
            "fields",
            "MAP_DUPLICATE_KEY names the VM by its uuid instead of its ref.",
            'adding an existing other_config key answers MAP_DUPLICATE_KEY ["VM", "other_config", '
            'uuid, key] where xapi answers ["VM", "other_config", ref, key].',
        ),
    ),
    # -- memory
    (
        "memory-order-unchecked",
        Seeded(
            MemoryOrderUnchecked(),
            "memory",
            "memory",
            "On a Halted VM, the dynamic memory setters accept dynamic_min > dynamic_max.",
            "xapi answers MEMORY_CONSTRAINT_VIOLATION_ORDER [] and keeps the record; the faulty "
            "server answers success and stores dynamic_min above dynamic_max.",
        ),
    ),
    (
        "target-not-following",
        Seeded(
            BranchFault(_kept("memory_target"), frozenset(_DYNAMIC_SETTERS)),
            "memory",
            "memory",
            "The dynamic memory setters leave memory_target where it was.",
            "after VM.set_memory_dynamic_range(vm, low, high), xapi's memory_target is low; the "
            "faulty server's is the old target.",
        ),
    ),
    (
        "static-max-unchecked",
        Seeded(
            Unvalidated(
                _vm_methods("set_memory_static_max"),
                "MEMORY_CONSTRAINT_VIOLATION_ORDER",
                _stored_value("memory_static_max"),
            ),
            "memory",
            "memory",
            "VM.set_memory_static_max accepts a value below dynamic_max (the order is not checked).",
            "xapi answers MEMORY_CONSTRAINT_VIOLATION_ORDER []; the faulty server answers success "
            "and stores static_max below dynamic_max.",
        ),
    ),
    (
        "vcpus-unchecked",
        Seeded(
            Unvalidated(
                _vm_methods("set_VCPUs_at_startup"),
                "INVALID_VALUE",
                _stored_value("VCPUs_at_startup"),
            ),
            "memory",
            "memory",
            "VM.set_VCPUs_at_startup accepts any count, also above VCPUs_max or below 1.",
            'xapi answers INVALID_VALUE ["VCPU values must satisfy: 0 < VCPUs_at_startup ≤ '
            'VCPUs_max", n]; the faulty server answers success and stores n.',
        ),
    ),
    (
        "dynamic-range-running-refused",
        Seeded(
            BranchFault(_running_refused, frozenset(_DYNAMIC_SETTERS)),
            "memory",
            "memory",
            "The dynamic memory setters refuse a Running VM (xapi changes a running VM's balloon).",
            "xapi answers success on a Running VM; the faulty server answers VM_BAD_POWER_STATE "
            '[vm, "halted", "running"].',
        ),
    ),
    # -- blocked and allowed operations
    (
        "blocked-ignored",
        Seeded(
            CheckLifted(
                _vm_methods("start", "clean_shutdown", asynchronous=True),
                "OPERATION_BLOCKED",
                _without_key("blocked_operations", _operation),
                accept="any",
            ),
            "operations",
            "operations",
            "blocked_operations are ignored for VM.start and VM.clean_shutdown (also Async).",
            "on a VM whose blocked_operations has start: R, xapi answers OPERATION_BLOCKED [vm, R] "
            "and the VM stays Halted; the faulty server answers success and the VM is Running.",
        ),
    ),
    (
        "blocked-checked-late",
        Seeded(
            CheckLifted(
                _BLOCKABLE_LIFECYCLE,
                "OPERATION_BLOCKED",
                _without_key("blocked_operations", _operation),
                accept="failure",
            ),
            "operations",
            "operations",
            "blocked_operations are checked after the power state instead of first.",
            "VM.unpause, blocked, on a Halted VM answers VM_BAD_POWER_STATE where xapi answers "
            "OPERATION_BLOCKED [vm, R].",
        ),
    ),
    (
        "affinity-ignored",
        Seeded(
            BranchFault(_affinity_ignored, _vm_methods("start", asynchronous=True)),
            "lifecycle",
            "lifecycle",
            "VM.start ignores the VM's affinity: it starts the VM on another host that can run it.",
            "a VM whose affinity is the pool's last host is started; xapi starts it there (its "
            "affinity host ranks first), the faulty server on another host.",
        ),
    ),
    (
        "migrate-stays",
        Seeded(
            BranchFault(_kept("resident_on"), _vm_methods("pool_migrate", asynchronous=True)),
            "lifecycle",
            "lifecycle",
            "VM.pool_migrate answers success but leaves the VM on the host it ran on.",
            "after VM.pool_migrate(vm, other host, {}), xapi's VM.get_resident_on names the "
            "other host; the faulty server's still names the first.",
        ),
    ),
    (
        "allowed-ops-stale",
        Seeded(
            BranchFault(
                _kept("allowed_operations"), _vm_methods("start", "start_on", asynchronous=True)
            ),
            "operations",
            "operations",
            "VM.start does not recompute allowed_operations: a running VM lists a halted VM's ops.",
            "after VM.start, xapi's allowed_operations has clean_shutdown and no start; the faulty "
            "server's still has start.",
        ),
    ),
    (
        "assert-valid-lax",
        Seeded(
            BranchFault(_refusal_accepted, _vm_methods("assert_operation_valid")),
            "operations",
            "operations",
            "VM.assert_operation_valid always succeeds.",
            'VM.assert_operation_valid(vm, "unpause") on a Halted VM answers success where xapi '
            'answers VM_BAD_POWER_STATE [vm, "paused", "halted"].',
        ),
    ),
    (
        "unblock-ignored",
        Seeded(
            BranchFault(_kept("blocked_operations"), _vm_methods("remove_from_blocked_operations")),
            "operations",
            "operations",
            "VM.remove_from_blocked_operations succeeds but the operation stays blocked.",
            "after the removal, xapi's blocked_operations lacks the key; the faulty server's keeps it.",
        ),
    ),
    (
        "nested-virt-unpinned-started",
        Seeded(
            CheckLifted(
                _vm_methods("start", "start_on", asynchronous=True),
                "MEMORY_CONSTRAINT_VIOLATION_MAXPIN",
                _not_nested,
            ),
            "lifecycle",
            "lifecycle",
            "A VM asking for nested virt starts unforced with its memory not pinned.",
            "xapi_vm.ml start refuses an unforced start of a VM with platform:nested-virt whose "
            "memory is not pinned at static max (MEMORY_CONSTRAINT_VIOLATION_MAXPIN [nested "
            "virt]); the faulty server starts it.",
        ),
    ),
    # -- templates and snapshots
    (
        "template-startable",
        Seeded(
            CheckLifted(_vm_methods("start", asynchronous=True), "VM_IS_TEMPLATE", _not_template),
            "templates",
            "lifecycle",
            "A template can be started (the template check is skipped for VM.start).",
            "VM.start on a template answers success and the template runs, where xapi answers "
            'VM_IS_TEMPLATE [vm, "start"].',
        ),
    ),
    (
        "default-template-destroyable",
        Seeded(
            CheckLifted(
                _vm_methods("destroy"),
                "VM_IS_TEMPLATE",
                _without_key("other_config", _default_template),
                restore=False,
            ),
            "templates",
            "lifecycle",
            "VM.destroy removes a default template.",
            'xapi answers VM_IS_TEMPLATE [vm, "destroy"] and keeps it; the faulty server answers '
            "success and the template is gone.",
        ),
    ),
    (
        "default-template-clone-kept",
        Seeded(
            BranchFault(_default_template_kept, _vm_methods("clone", "copy", asynchronous=True)),
            "templates",
            "lifecycle",
            "A clone or copy of a default template is a default template too.",
            "xapi's copy of a pool's default template has is_default_template false and no "
            "other_config:default_template (xapi_vm_clone.ml); the faulty server's keeps both, "
            "so the copy cannot be destroyed.",
        ),
    ),
    (
        "snapshot-of-unset",
        Seeded(
            BranchFault(
                _new_vm_edited({"snapshot_of": NULL_REF}),
                _vm_methods("snapshot", "checkpoint", asynchronous=True),
            ),
            "templates",
            "lifecycle",
            "Snapshots do not record their VM: snapshot_of stays OpaqueRef:NULL.",
            "after VM.snapshot(vm, name), xapi's snapshot has snapshot_of vm; the faulty server's "
            "has OpaqueRef:NULL (and vm's snapshots list lacks it).",
        ),
    ),
    (
        "revert-orphan-refused",
        Seeded(
            BranchFault(_orphan_revert_refused, _vm_methods("revert")),
            "templates",
            "lifecycle",
            "VM.revert of a snapshot whose VM was destroyed answers VM_REVERT_FAILED "
            "instead of making the VM again.",
            "after VM.destroy of a snapshot's VM, xapi's VM.revert(snapshot) recreates the VM "
            "(create_vm_from_snapshot) and succeeds; the faulty server answers "
            "VM_REVERT_FAILED [snapshot, vm].",
        ),
    ),
    (
        "checkpoint-without-memory",
        Seeded(
            BranchFault(
                _new_vm_edited(
                    {"power_state": "Halted", "suspend_VDI": NULL_REF}, running_source=True
                ),
                _vm_methods("checkpoint", asynchronous=True),
            ),
            "templates",
            "lifecycle",
            "A checkpoint of a Running VM is a Halted snapshot (its memory image is not kept).",
            "after VM.checkpoint of a Running VM, xapi's snapshot is Suspended with a suspend_VDI; "
            "the faulty server's is Halted with none.",
        ),
    ),
    # -- fields and records
    (
        "stale-record",
        Seeded(
            BranchFault(_success_without_effect, _vm_methods("set_name_label")),
            "fields",
            "fields",
            "VM.set_name_label succeeds but the record keeps its old name.",
            'after VM.set_name_label(vm, "renamed") answers success, VM.get_name_label(vm) answers '
            'the old name where xapi answers "renamed".',
        ),
    ),
    (
        "tags-duplicated",
        Seeded(
            BranchFault(_tag_appended, _vm_methods("add_tags")),
            "fields",
            "fields",
            "VM.add_tags appends a tag that is already there (tags is a set).",
            'after VM.add_tags(vm, "a") twice, xapi\'s tags are ["a"]; the faulty server\'s are '
            '["a", "a"].',
        ),
    ),
    (
        "record-missing-field",
        Seeded(
            BranchFault(
                _record_without("hardware_platform_version"),
                frozenset({"VM.get_record", "VM.get_all_records"}),
            ),
            "fields",
            "fields",
            "VM.get_record and get_all_records leave out the hardware_platform_version field.",
            "the record read after any step lacks hardware_platform_version, which xapi's has.",
        ),
    ),
    # -- the RPC layer
    (
        "param-count-with-session",
        Seeded(
            BranchFault(_rewrite_failure("MESSAGE_PARAMETER_COUNT_MISMATCH", _counting_session)),
            "rpc",
            "rpc",
            "MESSAGE_PARAMETER_COUNT_MISMATCH counts the session among the parameters.",
            'VM.start(session, vm) answers ["VM.start", "4", "2"] where xapi answers '
            '["VM.start", "3", "1"].',
        ),
    ),
    (
        "unknown-method-bare",
        Seeded(
            BranchFault(_rewrite_failure("MESSAGE_METHOD_UNKNOWN", _no_params)),
            "rpc",
            "rpc",
            "MESSAGE_METHOD_UNKNOWN does not name the unknown method.",
            'VM.frobnicate answers MESSAGE_METHOD_UNKNOWN [] where xapi answers ["VM.frobnicate"].',
        ),
    ),
    (
        "type-error-text",
        Seeded(
            BranchFault(_rewrite_failure("INTERNAL_ERROR", _type_error_text)),
            "rpc",
            "rpc",
            "A wrongly typed argument's INTERNAL_ERROR words the type error its own way.",
            'VM.set_is_a_template(vm, "yes") answers INTERNAL_ERROR ["type error: expected bool, '
            "got 'S(yes)'\"] where xapi answers [\"Expected bool, got 'S(yes)'\"].",
        ),
    ),
    # -- roles
    (
        "rbac-ignored",
        Seeded(
            RbacIgnored(),
            "roles",
            "roles",
            "Role-limited sessions may call anything: the permission check is skipped.",
            "a read-only session's VM.start(vm, false, false) answers success where xapi answers "
            'RBAC_PERMISSION_DENIED ["vm.start", "No permission in user session. (…)"].',
        ),
    ),
    (
        "rbac-permission-case",
        Seeded(
            BranchFault(_rewrite_failure("RBAC_PERMISSION_DENIED", _wire_case_permission)),
            "roles",
            "roles",
            "RBAC_PERMISSION_DENIED names the permission as the wire method (VM.start, not vm.start).",
            'a read-only session\'s VM.start answers RBAC_PERMISSION_DENIED ["VM.start", …] where '
            'xapi answers ["vm.start", …].',
        ),
    ),
    (
        "operator-denied-start",
        Seeded(
            BranchFault(_operator_denied, _OPERATOR_DENIED),
            "roles",
            "roles",
            "vm-operator sessions are refused VM.start and the shutdowns (xapi allows them).",
            "a vm-operator session's VM.start answers RBAC_PERMISSION_DENIED where xapi starts the "
            "VM.",
        ),
    ),
    # -- Async tasks
    (
        "lost-async-error",
        Seeded(
            BranchFault(_failed_as_success),
            "async",
            "async",
            "An Async call that fails records its error in a task whose status is success.",
            'after Async.VM.hard_shutdown on a Halted VM, xapi\'s task has status "failure" and '
            'error_info [VM_BAD_POWER_STATE, …]; the faulty server\'s has status "success".',
        ),
    ),
    (
        "async-result-dropped",
        Seeded(
            BranchFault(
                _result_dropped, _async_only(_vm_methods("clone", "copy", "snapshot", "checkpoint"))
            ),
            "async",
            "async",
            "The task of a successful Async clone or snapshot has an empty result.",
            "after Async.VM.clone, xapi's task result is the new VM's ref; the faulty server's is "
            "empty.",
        ),
    ),
    (
        "async-error-code-only",
        Seeded(
            BranchFault(_error_code_only),
            "async",
            "async",
            "A failed Async task's error_info holds the error code without its parameters.",
            "after Async.VM.hard_shutdown on a Halted VM, the task's error_info is "
            '["VM_BAD_POWER_STATE"] where xapi\'s has the VM and the states.',
        ),
    ),
    (
        "async-effect-lost",
        Seeded(
            BranchFault(_effect_lost, _async_only(_BLOCKABLE_LIFECYCLE)),
            "async",
            "async",
            "An Async lifecycle call's task succeeds but the VM is not changed.",
            "after Async.VM.start succeeds, xapi's VM is Running; the faulty server's is still "
            "Halted.",
        ),
    ),
)

_ENTRIES += (
    # -- task records, judged after every Async call (taskHelper.ml)
    (
        "task-not-resident",
        Seeded(
            BranchFault(_not_resident),
            "async",
            "async",
            "An Async call's task is resident on no host (resident_on OpaqueRef:NULL).",
            "after Async.VM.start, xapi's task is resident on the host that ran the call (the "
            "pool master); the faulty server's task.get_record has resident_on OpaqueRef:NULL.",
        ),
    ),
    (
        "task-created-local-time",
        Seeded(
            BranchFault(_created_local_time),
            "async",
            "async",
            "An Async call's task has its creation time in local time labelled UTC (UTC+5).",
            "after Async.VM.start, xapi's task was created within the call's span (UTC); the "
            "faulty server's created is five hours later.",
        ),
    ),
    (
        "task-destroy-kept",
        Seeded(
            BranchFault(_destroy_kept, frozenset({"task.destroy"})),
            "async",
            "events",
            "task.destroy answers success but the task stays.",
            "after task.destroy(t), xapi answers HANDLE_INVALID [task, t] to task.get_record(t) "
            "and task.get_all no longer lists t; the faulty server still has the task.",
        ),
    ),
    (
        "task-listed-after-destroy",
        Seeded(
            BranchFault(_soft_destroyed, frozenset({"task.destroy", "task.get_record"})),
            "async",
            "events",
            "task.destroy marks the task gone: task.get_record fails, task.get_all still lists it.",
            "after task.destroy(t), xapi's task.get_all no longer lists t; the faulty server "
            "answers HANDLE_INVALID to task.get_record(t) but still lists t.",
        ),
    ),
    # -- events (xapi_event.ml from_inner), found by the events area's subscription
    (
        "event-no-mod-on-power-change",
        Seeded(
            no_mod_after_power_change,
            "events",
            "events",
            "A VM's power change is written without a new generation: event.from never reports "
            "the VM (mod).",
            "after VM.start(vm), xapi's event.from from the last token reports vm (mod) with "
            "power_state Running; the faulty server reports nothing for it.",
        ),
    ),
    (
        "event-stale-snapshot",
        Seeded(
            stale_snapshot,
            "events",
            "events",
            "A VM's mod event carries the record from before the change.",
            "after VM.set_name_label(vm, 'b'), the mod event's snapshot has name_label 'b' in "
            "xapi; the faulty server's snapshot still has the old name.",
        ),
    ),
    (
        "event-token-stuck",
        Seeded(
            token_stuck,
            "events",
            "events",
            "event.from answers the token it was given: every poll repeats the events since.",
            "after VM.create then VM.start, xapi's event.from from the token after the create "
            "reports vm (mod); the faulty server reports vm (add) again.",
        ),
    ),
    (
        "event-class-filter-ignored",
        Seeded(
            class_filter_ignored,
            "events",
            "events",
            "event.from answers every class's events, whatever the subscription.",
            "event.from(['vm/<vm1>'], token) reports only vm1 in xapi; the faulty server "
            "reports other VMs (and hosts) too.",
        ),
    ),
    (
        "event-empty-subscription-everything",
        Seeded(
            empty_subscription_everything,
            "events",
            "events",
            "event.from with an empty list of classes answers every class's events, as for '*'.",
            "event.from([], token) answers no event in xapi (no subscription matches anything: "
            "Xapi_event.Subscription.event_matches over an empty list); the faulty server "
            "reports the suite's VMs and tasks.",
        ),
    ),
    (
        "event-no-del-on-destroy",
        Seeded(
            no_del_on_destroy,
            "events",
            "events",
            "A destroyed VM leaves no del event.",
            "after VM.destroy(vm), xapi's event.from from the last token reports vm (del); the "
            "faulty server reports nothing.",
        ),
    ),
    (
        "event-task-without-result",
        Seeded(
            task_result_missing,
            "events",
            "events",
            "Task events carry an empty result (task.get_record has it).",
            "after an Async call succeeds, its task's event (subscribed as task/<ref>) has the "
            "encoded result in xapi; the faulty server's event has result ''.",
        ),
    ),
    # -- the legacy event.next queue (xapi_event.ml Next), found by the events area's register
    (
        "event-next-repeats",
        Seeded(
            next_repeats,
            "events",
            "events",
            "event.next never moves a session past what it answered: every call repeats the "
            "events since event.register.",
            "after event.register(['vm']), VM.create, event.next() and VM.set_name_label, "
            "xapi's second event.next answers the VM's mod alone, with a higher id; the faulty "
            "server answers its add (the same id) again.",
        ),
    ),
    (
        "event-next-stale-snapshot",
        Seeded(
            next_stale_snapshot,
            "events",
            "events",
            "event.next's mod events of VMs carry the record from before the change.",
            "after VM.set_name_label(vm, 'b'), xapi's event.next answers vm (mod) with "
            "name_label 'b'; the faulty server's snapshot still has the old name.",
        ),
    ),
    # -- the event struct as clients read it (Xapi_event.from_inner, Event_types)
    (
        "event-counts-empty",
        Seeded(
            counts_empty,
            "events",
            "events",
            "event.from's valid_ref_counts is empty.",
            "xapi's event.from answers valid_ref_counts with a count for every class (vm, "
            "task...); the faulty server's struct has none.",
        ),
    ),
    (
        "event-ids-not-generations",
        Seeded(
            ids_not_generations,
            "events",
            "events",
            "event.from numbers its events 0, 1, 2... instead of giving each the generation "
            "of its change.",
            "after VM.create, xapi's event.from reports vm (add) with the id of its creation's "
            "generation, after the token's; the faulty server's id is 0.",
        ),
    ),
    (
        "event-token-unpadded",
        Seeded(
            token_unpadded,
            "events",
            "events",
            "event.from's token is '<generation>,0', not two zero-padded 20-digit numbers.",
            "xapi's tokens look like '00000000000000000042,00000000000000000000' (they "
            "compare as text); the faulty server answers '42,0'.",
        ),
    ),
    (
        "event-next-class-uppercase",
        Seeded(
            next_class_uppercase,
            "events",
            "events",
            "event.next names classes as the tables are named (VM), not in lowercase.",
            "after event.register(['vm']) and VM.create, xapi's event.next answers an event of "
            "class 'vm'; the faulty server's class is 'VM'.",
        ),
    ),
    # -- the wildcard, event.inject and event.get_current_id (xapi_event.ml)
    (
        "event-wildcard-unmatched",
        Seeded(
            wildcard_unmatched,
            "events",
            "events",
            "'*' is read as a class name: event.from(['*']) and event.register(['*']) answer "
            "nothing.",
            "after VM.create, xapi's event.from(['*'], token) reports the VM (add) among every "
            "class's events; the faulty server reports nothing.",
        ),
    ),
    (
        "event-subscription-case-sensitive",
        Seeded(
            subscription_case_sensitive,
            "events",
            "events",
            "Subscriptions are matched as written: event.from(['VM']) answers no vm events.",
            "xapi lowercases a subscribed class, so after VM.create event.from(['VM'], token) "
            "reports the VM (add); the faulty server reports nothing.",
        ),
    ),
    (
        "event-inject-untouched",
        Seeded(
            inject_untouched,
            "events",
            "events",
            "event.inject answers a token but changes nothing: no mod event follows.",
            "after event.inject('VM', vm), xapi's event.from(['vm'], its token) reports vm "
            "(mod); the faulty server reports nothing.",
        ),
    ),
    (
        "event-current-id-last",
        Seeded(
            current_id_last,
            "events",
            "events",
            "event.get_current_id answers the newest queued event's id, not the next one's.",
            "after event.next answers an event with id 7, xapi's event.get_current_id answers "
            "8 (the id the next event gets); the faulty server answers 7.",
        ),
    ),
    # -- what event.next and event.from raise (xapi_event.ml Next.assert_subscribed, from)
    (
        "event-next-unregistered-handle",
        Seeded(
            unregistered_handle,
            "events",
            "events",
            "event.next before event.register raises SESSION_NOT_REGISTERED naming the "
            "session's ref, not its trackid.",
            "xapi's event.next by a session that never registered raises "
            "SESSION_NOT_REGISTERED [trackid=<MD5 of the session ref>]; the faulty server "
            "names the session ref itself (a secret).",
        ),
    ),
    (
        "event-from-token-lax",
        Seeded(
            lax_token,
            "events",
            "events",
            "event.from reads a token it cannot parse as '' (from scratch).",
            "xapi's event.from(['vm', 'task'], 'abc', 0) raises EVENT_FROM_TOKEN_PARSE_FAILURE "
            "[abc]; the faulty server answers every VM and task.",
        ),
    ),
    (
        "event-token-unsigned",
        Seeded(
            unsigned_token,
            "events",
            "events",
            "event.from refuses a token with a negative number or int64's largest.",
            "xapi's event.from(['vm', 'task'], '<generation>,-9223372036854775808', 0) "
            "answers a batch (Int64.of_string reads it); the faulty server raises "
            "EVENT_FROM_TOKEN_PARSE_FAILURE.",
        ),
    ),
    (
        "task-destroy-no-del",
        Seeded(
            task_del_dropped,
            "events",
            "events",
            "A destroyed task leaves no del event.",
            "after an Async call's task ended and task.destroy, xapi's event.from(['task/<t>'], "
            "the token it read the ended task at) answers task (del); the faulty server "
            "answers nothing.",
        ),
    ),
    (
        "event-order-mods-first",
        Seeded(
            mods_first,
            "events",
            "events",
            "event.from answers the objects changed before those created.",
            "when one answer holds a VM changed and another created, xapi answers the add first "
            "(adds, then mods, then dels); the faulty server answers the mod first.",
        ),
    ),
    (
        "event-next-del-bare",
        Seeded(
            next_del_bare,
            "events",
            "events",
            "event.next's del events carry no snapshot.",
            "after event.register(['vm']) and VM.destroy(vm), xapi's event.next answers vm "
            "(del) with the record as it was before the destroy; the faulty server's has none.",
        ),
    ),
    (
        "event-idle-object-repeated",
        Seeded(
            idle_object_repeated,
            "events",
            "events",
            "event.from on vm/<ref> answers the VM as a mod though it did not change.",
            "when nothing changed vm since the token, xapi's event.from(['vm/<vm>'], token, 0.1) "
            "answers no event at its timeout; the faulty server answers vm (mod).",
        ),
    ),
    (
        "event-unregister-ignored",
        Seeded(
            unregister_ignored,
            "events",
            "events",
            "event.unregister answers success and changes nothing.",
            "after event.register(['vm', 'task']) and event.unregister(['task']), xapi's "
            "event.next answers no task events; the faulty server still answers an Async "
            "call's task (add, mod, del).",
        ),
    ),
    # -- faults the ci profile once missed (issue 7, item 6)
    (
        "logout-keeps-session",
        Seeded(
            BranchFault(_session_kept, frozenset({"session.logout"})),
            "rpc",
            "rpc",
            "session.logout answers success but the session stays valid.",
            "after session.logout(s), xapi answers SESSION_INVALID [s] to any call with s; the "
            "faulty server answers it.",
        ),
    ),
    (
        "clone-keeps-blocked-ops",
        Seeded(
            BranchFault(_blocked_operations_inherited, _vm_methods("clone", "copy")),
            "operations",
            "operations",
            "A clone or copy keeps its source's blocked_operations (xapi_vm_clone.ml resets them).",
            "VM.clone of a VM with blocked_operations {start: …} makes a VM whose "
            "blocked_operations xapi leaves empty; the faulty server copies them.",
        ),
    ),
    (
        "clone-keeps-mac-seed",
        Seeded(
            BranchFault(_mac_seed_inherited, _vm_methods("clone", "copy")),
            "fields",
            "fields",
            "A clone or copy keeps its source's other_config mac_seed (no fresh one is drawn).",
            "xapi_vm_clone.ml replace_seed draws a clone or copy a fresh mac_seed, so its VIFs "
            "get MACs of their own; the faulty server's clone has its source's, and the two "
            "VMs' MACs clash.",
        ),
    ),
    (
        "create-keeps-suspend-vdi",
        Seeded(
            BranchFault(_suspend_vdi_kept, _vm_methods("create")),
            "lifecycle",
            "lifecycle",
            "VM.create keeps the record's suspend_VDI for a VM it makes Halted.",
            "xapi_vm.ml create stores a suspend VDI only for a Suspended VM (NULL otherwise, "
            "whatever the record held); the faulty server's Halted VM names the record's VDI.",
        ),
    ),
    (
        "start-overhead-stale",
        Seeded(
            BranchFault(_overhead_not_refreshed, _vm_methods("start", "start_on")),
            "lifecycle",
            "lifecycle",
            "VM.start keeps the stored memory_overhead instead of refreshing it.",
            "xapi's start refreshes memory_overhead before placing the VM (message_forwarding.ml); "
            "after VM.set_domain_type, which leaves it as it was, the faulty server's running VM "
            "still shows the overhead of its old domain type.",
        ),
    ),
    (
        "int-typed",
        Seeded(
            WronglyTyped(Quirks(int_typed=True)),
            "fields",
            "fields",
            "Ints are written as <int> over XML-RPC and as strings over JSON-RPC.",
            "VM.get_VCPUs_max answers <value><int>1</int></value> where xapi sends the bare "
            'string <value>1</value> (over JSON-RPC "1" where xapi sends 1).',
        ),
    ),
    (
        "bool-as-text",
        Seeded(
            WronglyTyped(Quirks(bool_text=True)),
            "fields",
            "fields",
            'Bools are written as the strings "true"/"false".',
            'VM.get_is_a_template answers the string "false" where xapi sends '
            "<boolean>0</boolean> (over JSON-RPC false).",
        ),
    ),
)

_LOGIN = frozenset({"session.login_with_password"})

_ENTRIES += (
    # -- RBAC on map keys, pool-wide queries, copies and reverts, template setters (issue 21)
    (
        "map-key-roles-ignored",
        Seeded(
            Rewired(_message_role_only),
            "roles",
            "roles",
            "Map edits are judged by their message's role only: the keys' own roles are ignored.",
            "xapi lets a vm-operator session add other_config:folder (datamodel_vm.ml "
            "map_keys_roles) and refuses a vm-admin other_config:pci with RBAC_PERMISSION_DENIED "
            "[vm.add_to_other_config/key:pci, …]; the faulty server does the opposite.",
        ),
    ),
    (
        "name-label-prefix-match",
        Seeded(
            BranchFault(_prefix_match, _vm_methods("get_by_name_label")),
            "fields",
            "fields",
            "VM.get_by_name_label answers every VM whose label begins with the text asked for.",
            'after VM.clone(vm, "xapi-conformance sweep clone"), xapi\'s VM.get_by_name_label('
            '"xapi-conformance sweep") answers [vm]; the faulty server answers the clone too.',
        ),
    ),
    (
        "queries-ignore-case",
        Seeded(
            BranchFault(_case_folded, _vm_methods("get_by_uuid", "get_by_name_label")),
            "fields",
            "fields",
            "VM.get_by_uuid and VM.get_by_name_label match whatever the case of the text asked for.",
            "xapi compares a uuid and a label exactly: VM.get_by_uuid of a VM's uuid in capitals "
            "fails with UUID_INVALID and VM.get_by_name_label of its label in capitals answers []; "
            "the faulty server finds the VM by both.",
        ),
    ),
    (
        "records-without-snapshots",
        Seeded(
            BranchFault(_snapshots_left_out, _vm_methods("get_all_records")),
            "fields",
            "fields",
            "VM.get_all_records leaves out snapshots.",
            "after VM.snapshot(vm, …), xapi's VM.get_all_records holds the snapshot's record; "
            "the faulty server's does not.",
        ),
    ),
    (
        "control-domains-unlisted",
        Seeded(
            BranchFault(_control_domains_left_out, _vm_methods("get_all", "get_all_records")),
            "fields",
            "fields",
            "VM.get_all and VM.get_all_records leave out the hosts' control domains.",
            "xapi's VM.get_all lists every VM row, each host's control domain (dom0) among them "
            "(clients find a host's dom0 so); the faulty server's lists none.",
        ),
    ),
    (
        "where-filter-ignored",
        Seeded(
            BranchFault(_filter_ignored, _vm_methods("get_all_records_where")),
            "fields",
            "fields",
            "VM.get_all_records_where answers every VM's record, whatever the expression.",
            'VM.get_all_records_where(\'not field "name__label" = "x" and …\') leaves out the VM '
            "labelled x in xapi; the faulty server answers its record too.",
        ),
    ),
    (
        "operator-sizes-vms",
        Seeded(
            RbacIgnored(
                _vm_methods(
                    "set_memory",
                    "set_memory_limits",
                    "set_memory_static_range",
                    "set_memory_dynamic_range",
                    "set_VCPUs_max",
                    "set_VCPUs_at_startup",
                ),
                frozenset({"vm-operator"}),
            ),
            "roles",
            "roles",
            "vm-operator sessions may call the memory and VCPU setters.",
            "datamodel_vm.ml gives the memory setters to vm-power-admin and the VCPU setters to "
            "vm-admin: xapi answers a vm-operator's VM.set_memory RBAC_PERMISSION_DENIED "
            '["vm.set_memory", …]; the faulty server resizes the VM.',
        ),
    ),
    (
        "async-denial-answered",
        Seeded(
            BranchFault(_denial_answered),
            "roles",
            "roles",
            "An Async call a role may not make answers RBAC_PERMISSION_DENIED itself (no task).",
            "xapi checks RBAC inside the call it dispatches (gen_server.ml wraps it in Rbac.check),"
            " which for Async.VM.clean_shutdown by a read-only session runs in the task: xapi "
            "answers a task that fails with RBAC_PERMISSION_DENIED; the faulty server answers the "
            "error and makes no task.",
        ),
    ),
    (
        "set-map-merges",
        Seeded(
            BranchFault(_map_merged, MAP_SETTERS),
            "fields",
            "fields",
            "VM.set_other_config, set_platform and the other map setters merge the map given "
            "into the one held.",
            "after VM.add_to_platform(vm, k, v), xapi's VM.set_platform(vm, {}) leaves the "
            "platform empty (the generated setter writes the whole field); the faulty server "
            "keeps k.",
        ),
    ),
    (
        "where-or-as-and",
        Seeded(
            CallAltered(_or_read_as_and, _vm_methods("get_all_records_where", "get_all_where")),
            "fields",
            "fields",
            "VM.get_all_records_where and get_all_where read 'or' as 'and'.",
            'VM.get_all_records_where(\'field "name__label" = "x" or field "name__label" = "y"\') '
            "answers the VM labelled x in xapi (db_filter.ml: Or is a disjunction); the faulty "
            "server answers none.",
        ),
    ),
    (
        "snapshot-time-epoch",
        Seeded(
            BranchFault(
                _new_vm_edited({"snapshot_time": EPOCH}),
                _vm_methods("snapshot", "checkpoint", asynchronous=True),
            ),
            "templates",
            "lifecycle",
            "Snapshots and checkpoints record the epoch as their snapshot_time.",
            "after VM.snapshot, xapi's snapshot_time is the time it was taken "
            "(xapi_vm_clone.ml copy_vm_record Date.now); the faulty server's is 19700101T00:00:00Z.",
        ),
    ),
    (
        "revert-keeps-changes",
        Seeded(
            BranchFault(_revert_keeps_changes, _vm_methods("revert", asynchronous=True)),
            "templates",
            "lifecycle",
            "VM.revert restores the power state but leaves description, other_config, tags and "
            "other fields as changed since the snapshot.",
            "after a snapshot, VM.set_name_description(vm, d) then VM.revert(snapshot), xapi's VM "
            "has the description it had at the snapshot (xapi_vm_snapshot.ml revert); the faulty "
            "server's keeps d.",
        ),
    ),
    (
        "template-vcpus-unchecked",
        Seeded(
            BranchFault(_template_vcpus_stored, TEMPLATE_VCPU_SETTERS),
            "templates",
            "memory",
            "On templates, VM.set_VCPUs_max and set_VCPUs_at_startup store any count.",
            "VM.set_VCPUs_at_startup(template, 0) is refused by xapi with INVALID_VALUE "
            "(xapi_vm_helpers.ml validate_VCPUs, templates included); the faulty server stores 0.",
        ),
    ),
)

_ENTRIES += (
    # -- values at the edges of their types (issue 21)
    (
        "int64-through-double",
        Seeded(
            WronglyTyped(Quirks(int_through_double=True)),
            "fields",
            "fields",
            "int64 values pass through a double on the way out: beyond 2^53 they come out rounded.",
            "after VM.set_user_version(vm, 9223372036854775807), xapi's VM.get_user_version "
            "answers 9223372036854775807; the faulty server 9223372036854775808, out of int64.",
        ),
    ),
    (
        "non-bmp-mangled",
        Seeded(
            WronglyTyped(Quirks(non_bmp_mangled=True)),
            "fields",
            "fields",
            "Text beyond U+FFFF goes out as UTF-16 halves (XML references to surrogates, or U+FFFD).",
            "after VM.set_name_label(vm, 'xapi-conformance \U0001f600'), xapi's get_name_label "
            "answers the same text; the faulty server writes &#55357;&#56832;, not XML.",
        ),
    ),
    (
        "datetime-as-string",
        Seeded(
            WronglyTyped(Quirks(datetime_text=True)),
            "fields",
            "fields",
            "Dates are written as plain strings over XML-RPC, not <dateTime.iso8601> values.",
            "VM.get_snapshot_time answers <value><dateTime.iso8601>19700101T00:00:00Z"
            "</dateTime.iso8601></value> in xapi; the faulty server <value>19700101T00:00:00Z"
            "</value>.",
        ),
    ),
    (
        "double-as-int",
        Seeded(
            WronglyTyped(Quirks(double_as_int=True)),
            "fields",
            "fields",
            "Over XML-RPC a double of integral value is written as <int> (1.0 as <int>1</int>).",
            "VM.get_HVM_shadow_multiplier answers <value><double>1</double></value> in xapi "
            "(rpclib writes every float as a double); the faulty server <value><int>1</int>"
            "</value>, which a typed client refuses.",
        ),
    ),
    (
        "datetime-hyphenated",
        Seeded(
            WronglyTyped(Quirks(datetime_hyphenated=True)),
            "fields",
            "fields",
            "Dates are written with hyphens (1970-01-01T00:00:00Z), not in xapi's basic form.",
            "VM.get_snapshot_time answers 19700101T00:00:00Z in xapi (Date.to_rfc3339 leaves the "
            "hyphens out: some clients cannot read them); the faulty server "
            "1970-01-01T00:00:00Z.",
        ),
    ),
    (
        "empty-text-null",
        Seeded(
            WronglyTyped(Quirks(empty_as_null=True)),
            "fields",
            "fields",
            "Over JSON-RPC an empty string is written as null.",
            'VM.get_name_description of a VM created without one answers "" in xapi; the faulty '
            "server null, which a client reading text cannot use (and an import of the pool's "
            "records must not take for a tool error).",
        ),
    ),
)

_ENTRIES += (
    # -- authentication and sessions (issue 21): the suite once only ever logged in correctly
    (
        "any-password-accepted",
        Seeded(
            BranchFault(_any_password, _LOGIN),
            "rpc",
            "rpc",
            "session.login_with_password accepts any password of a known user.",
            "session.login_with_password(root, wrong password) is refused by xapi with "
            'SESSION_AUTHENTICATION_FAILED [root, "Authentication failure"]; the faulty server '
            "logs in.",
        ),
    ),
    (
        "auth-failure-unnamed",
        Seeded(
            BranchFault(_rewrite_failure(AUTH_FAILED, _message_only), _LOGIN),
            "rpc",
            "rpc",
            "SESSION_AUTHENTICATION_FAILED gives only PAM's message, not the user's name first.",
            'xapi refuses a wrong password with SESSION_AUTHENTICATION_FAILED [user, "Authentication '
            'failure"] (xapi_session.ml do_local_auth); the faulty server with ["Authentication '
            'failure"].',
        ),
    ),
    (
        "session-originator-lost",
        Seeded(
            CallAltered(_originator_dropped, _LOGIN),
            "rpc",
            "rpc",
            "A session's record does not keep the originator its login gave.",
            'after session.login_with_password(user, pw, version, "XenCenter"), xapi\'s '
            'session.get_originator answers "XenCenter"; the faulty server\'s answers "".',
        ),
    ),
    (
        "logout-twice-accepted",
        Seeded(
            BranchFault(_logout_idempotent, frozenset({"session.logout"})),
            "rpc",
            "roles",
            "session.logout of a session already logged out answers success.",
            "xapi checks the session of session.logout as of any call (gen_server.ml "
            "Session_check.check): a second logout answers SESSION_INVALID [session]; the faulty "
            "server answers success.",
        ),
    ),
    (
        "login-name-ignored",
        Seeded(
            BranchFault(_password_only, _LOGIN),
            "rpc",
            "roles",
            "session.login_with_password checks the password only: any user name with an "
            "account's password logs in as that account.",
            "session.login_with_password(nobody, root's password) is refused by xapi with "
            'SESSION_AUTHENTICATION_FAILED [nobody, "Authentication failure"] (PAM authenticates '
            "the user named); the faulty server logs in as root.",
        ),
    ),
    (
        "user-name-case-folded",
        Seeded(
            BranchFault(_user_case_folded, _LOGIN),
            "rpc",
            "roles",
            "session.login_with_password matches user names whatever their case (ROOT is root).",
            "session.login_with_password(ROOT, root's password) is refused by xapi with "
            'SESSION_AUTHENTICATION_FAILED [ROOT, "Authentication failure"] (PAM\'s names are '
            "exact); the faulty server logs in as root.",
        ),
    ),
)

_ENTRIES += (
    # -- writes to objects other than VMs, and who may make them
    (
        "pool-other-config-write-lost",
        Seeded(
            BranchFault(_success_without_effect, frozenset({"pool.add_to_other_config"})),
            "fields",
            "roles",
            "pool.add_to_other_config answers success but the pool's other_config is unchanged.",
            "after pool.add_to_other_config(pool, k, v), xapi's pool.get_other_config holds k; "
            "the faulty server's does not.",
        ),
    ),
    (
        "not-utf8-replaced",
        Seeded(
            Rewired(_not_utf8_replaced),
            "rpc",
            "fields",
            "Text that is not UTF-8 (a lone UTF-16 half sent over JSON-RPC) is stored with U+FFFD "
            "in its place instead of refused.",
            'VM.set_name_label(vm, "\\ud800") over JSON-RPC is refused by xapi with INVALID_VALUE '
            '["Invalid UTF-8 string in parameter", …]; the faulty server renames the VM U+FFFD.',
        ),
    ),
    (
        "task-owner-ignored",
        Seeded(
            Rewired(_task_owner_ignored),
            "roles",
            "roles",
            "Any session may cancel, edit or destroy any task, another user's included.",
            "a read-only session's task.destroy of a task root made is refused by xapi with "
            "RBAC_PERMISSION_DENIED [task.destroy/any, …] (taskHelper.ml assert_op_valid); "
            "the faulty server destroys it.",
        ),
    ),
)

SEQUENTIAL: Mapping[str, Seeded] = MappingProxyType(dict(_ENTRIES))

FAULTS: Mapping[str, Seeded] = MappingProxyType({**SEQUENTIAL, **RACED})
"""Every seeded fault by the name ``serve --fault`` and ``ServerConfig.faults`` use."""


def summary(fault: Seeded) -> str:
    """The one line ``serve --list-faults`` prints after the name."""
    return fault.summary


def known(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or a UsageError naming the unknown one and every known fault."""
    checked = tuple(names)
    for name in checked:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}")
    return checked


def lookup(names: Iterable[str]) -> tuple[Fault, ...]:
    """The faults called ``names``, in order (UsageError for an unknown name)."""
    return tuple(FAULTS[name] for name in known(names))
