"""XenAPI errors as the model raises them internally, one constructor per code it uses.

Handlers raise ``XenAPIError``; the RPC layer turns it into ``Failure`` and keeps the world as it
was before the call, so a failed call never leaves half its writes behind.
"""

from __future__ import annotations

from models.outcome import Failure

__all__ = [
    "XenAPIError",
    "handle_invalid",
    "internal_error",
    "invalid_value",
    "map_duplicate_key",
    "uuid_invalid",
    "vm_bad_power_state",
]


class XenAPIError(Exception):
    """A XenAPI error: ``ErrorDescription = [code, *params]``."""

    def __init__(self, code: str, *params: str) -> None:
        super().__init__(code, *params)
        self.code = code
        self.params = params

    @classmethod
    def of(cls, failure: Failure) -> XenAPIError:
        """Raise-able form of a ``Failure`` value."""
        return cls(failure.code, *failure.params)

    def failure(self) -> Failure:
        """The value form, for the wire."""
        return Failure(self.code, tuple(self.params))


def handle_invalid(cls: str, ref: str) -> XenAPIError:
    """``HANDLE_INVALID [class; ref]``: a ref that names no object of ``cls``."""
    return XenAPIError("HANDLE_INVALID", cls, ref)


def uuid_invalid(cls: str, uuid: str) -> XenAPIError:
    """``UUID_INVALID [class; uuid]``: get_by_uuid found nothing."""
    return XenAPIError("UUID_INVALID", cls, uuid)


def internal_error(*texts: str) -> XenAPIError:
    """``INTERNAL_ERROR [texts…]``."""
    return XenAPIError("INTERNAL_ERROR", *texts)


def invalid_value(name: str, value: str) -> XenAPIError:
    """``INVALID_VALUE [name; value]``."""
    return XenAPIError("INVALID_VALUE", name, value)


def map_duplicate_key(cls: str, field: str, ref: str, key: str) -> XenAPIError:
    """``MAP_DUPLICATE_KEY [class; field; ref; key]`` (the ref, not the uuid)."""
    return XenAPIError("MAP_DUPLICATE_KEY", cls, field, ref, key)


def vm_bad_power_state(ref: str, expected: str, actual: str) -> XenAPIError:
    """``VM_BAD_POWER_STATE [vm; expected; actual]`` for the non-generic call sites."""
    return XenAPIError("VM_BAD_POWER_STATE", ref, expected, actual)
