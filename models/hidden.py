"""VM messages xapi hides from the published reference (``~hide_from_docs``) that a client
may still call: declared here since the catalogue, read from that reference, lacks them.

None is sent by the suite (its generators draw from the catalogue); the simulator answers them
as xapi does.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from models.checks import update_vm
from models.outcome import Value
from models.schema import LOCAL_ROOT_ONLY, Message, Param, XType
from models.transition import Ctx, Handler, Result, as_map, done, vm_of

__all__ = ["HIDDEN_ENUMS", "HIDDEN_MESSAGES"]

HIDDEN_ENUMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"update_status": ("yes", "no", "unspecified")}
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
    return done(update_vm(ctx.world, ref, {"NVRAM": nvram}))


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

HIDDEN_MESSAGES: Mapping[str, tuple[Message, Handler]] = MappingProxyType(
    {_SET_NVRAM_EFI_VARIABLES.wire_name: (_SET_NVRAM_EFI_VARIABLES, set_nvram_efi_variables)}
)
"""Wire name → (declaration, handler) of the hidden VM messages the model answers."""
