"""VM messages xapi hides from the published reference (``~hide_from_docs``) that a client
may still call: declared here since the catalogue, read from that reference, lacks them.

The suite sends the queries (``get_all_records_where``, ``get_all_where``: the pool-wide
queries a client filters with, in the language of ``models.where``); the others it does not send
(its generators draw from the catalogue), and the simulator answers them as xapi does.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from models.checks import guarded, update_vm
from models.errors import XenAPIError
from models.outcome import Value
from models.schema import LOCAL_ROOT_ONLY, Message, Param, XType, parse_type
from models.setters import MADE_INTO_TEMPLATE
from models.transition import Ctx, Handler, Result, as_map, done, vm_of
from models.where import get_all_records_where, get_all_where

__all__ = ["HIDDEN_ENUMS", "HIDDEN_MESSAGES"]

HIDDEN_ENUMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "update_status": ("yes", "no", "unspecified"),
        "vm_secureboot_certificates_state": ("ok", "update_available", "update_on_boot"),
    }
)
"""Enums of the hidden messages' parameters, in datamodel order."""

EFI_VARIABLES = "EFI-variables"


def set_nvram_efi_variables(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_NVRAM_EFI_variables(self, value, update) (xapi_vm.ml, called by varstored):
    NVRAM's ``EFI-variables`` key takes ``value``, whatever the power state (message_forwarding
    skips the operation check). ``update`` decides secureboot_certificates_state, a field the
    catalogue has not (newer than the published reference). ``update`` came in xapi 26.12;
    older releases take two parameters, but the model accepts the third on every release."""
    ref = str(args[0])
    nvram = {**as_map(vm_of(ctx.world, ref)["NVRAM"]), EFI_VARIABLES: str(args[1])}
    changes: dict[str, Value] = {"NVRAM": nvram}
    if args[2] != "no":  # "yes"; "unspecified" runs a certificate check the model has not: ok
        changes[SECUREBOOT_STATE] = "ok"
    return done(update_vm(ctx.world, ref, changes))


_SET_NVRAM_EFI_VARIABLES = Message(
    "set_NVRAM_EFI_variables",
    (
        Param("self", XType("ref", name="VM")),
        Param("value", XType("string")),
        Param(
            "update", XType("enum", name="update_status"), has_default=True, default="unspecified"
        ),
    ),
    XType("void"),
    LOCAL_ROOT_ONLY,
    has_async=False,
)


def set_is_default_template(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.set_is_default_template(vm, value), the call the template installer makes
    (message_forwarding.ml, xapi_vm_helpers.ml): true on a VM that is not a template first makes
    it one under the make_into_template check; then other_config:default_template moves to the
    end with the value, and is_default_template takes it; allowed_operations recomputed."""
    ref, value = str(args[0]), args[1] is True
    vm = vm_of(ctx.world, ref)
    other = {k: v for k, v in as_map(vm["other_config"]).items() if k != "default_template"}
    changes: dict[str, Value] = {
        "other_config": {**other, "default_template": str(value).lower()},
        "is_default_template": value,
    }
    if value and vm["is_a_template"] is not True:
        made = {**MADE_INTO_TEMPLATE, **changes}
        return guarded(
            ctx.world, ref, "make_into_template", lambda _: done(update_vm(ctx.world, ref, made))
        )
    return done(update_vm(ctx.world, ref, changes))


_SET_IS_DEFAULT_TEMPLATE = Message(
    "set_is_default_template",
    (Param("vm", XType("ref", name="VM")), Param("value", XType("bool"))),
    XType("void"),
    "pool-admin",
    has_async=True,
)

SECUREBOOT_STATE = "secureboot_certificates_state"
"""A VM field newer than the catalogue's reference (xapi 26.14): ok, update_available or
update_on_boot; VM.create and the model's VMs start ``ok`` (no EFI certificates to check)."""


def get_secureboot_certificates_state(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.get_secureboot_certificates_state: the field (its default "ok" if never set)."""
    return done(ctx.world, vm_of(ctx.world, args[0]).get(SECUREBOOT_STATE, "ok"))


def update_secureboot_certificates_on_boot(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.update_secureboot_certificates_on_boot(self, mark) (xapi_vm.ml): mark moves
    update_available to update_on_boot, unmark the reverse, either is idempotent in its own
    state; in any other state OPERATION_NOT_ALLOWED, worded by the direction."""
    ref, mark = str(args[0]), args[1] is True
    current = vm_of(ctx.world, ref).get(SECUREBOOT_STATE, "ok")
    wanted = "update_on_boot" if mark else "update_available"
    if current not in ("update_on_boot", "update_available"):
        verb = "set" if mark else "clear"
        reason = f"Cannot {verb} update_on_boot: VM.{SECUREBOOT_STATE} is not in a valid state"
        raise XenAPIError("OPERATION_NOT_ALLOWED", reason)
    return done(update_vm(ctx.world, ref, {SECUREBOOT_STATE: wanted}, recompute=False))


_GET_SECUREBOOT_STATE = Message(
    "get_secureboot_certificates_state",
    (Param("self", XType("ref", name="VM")),),
    XType("enum", name="vm_secureboot_certificates_state"),
    "read-only",
    has_async=False,
)
_UPDATE_SECUREBOOT_ON_BOOT = Message(
    "update_secureboot_certificates_on_boot",
    (Param("self", XType("ref", name="VM")), Param("mark", XType("bool"))),
    XType("void"),
    "vm-admin",
    has_async=True,
)

_EXPR = (Param("expr", XType("string")),)
_GET_ALL_RECORDS_WHERE = Message(
    "get_all_records_where",
    _EXPR,
    parse_type("(VM ref -> VM record) map"),
    "read-only",
    has_async=False,
)
_GET_ALL_WHERE = Message(
    "get_all_where", _EXPR, parse_type("VM ref set"), "read-only", has_async=False
)
"""datamodel_utils.ml: each class's filtered queries, hidden from the docs, read-only."""

HIDDEN_MESSAGES: Mapping[str, tuple[Message, Handler]] = MappingProxyType(
    {
        _GET_ALL_RECORDS_WHERE.wire_name: (_GET_ALL_RECORDS_WHERE, get_all_records_where),
        _GET_ALL_WHERE.wire_name: (_GET_ALL_WHERE, get_all_where),
        _GET_SECUREBOOT_STATE.wire_name: (
            _GET_SECUREBOOT_STATE,
            get_secureboot_certificates_state,
        ),
        _UPDATE_SECUREBOOT_ON_BOOT.wire_name: (
            _UPDATE_SECUREBOOT_ON_BOOT,
            update_secureboot_certificates_on_boot,
        ),
        _SET_NVRAM_EFI_VARIABLES.wire_name: (_SET_NVRAM_EFI_VARIABLES, set_nvram_efi_variables),
        _SET_IS_DEFAULT_TEMPLATE.wire_name: (_SET_IS_DEFAULT_TEMPLATE, set_is_default_template),
    }
)
"""Wire name → (declaration, handler) of the hidden VM messages the model answers."""
