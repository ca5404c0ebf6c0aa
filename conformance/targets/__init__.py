"""Targets: anything that answers XenAPI calls with an ``Outcome``."""

from conformance.targets.base import Protocol_, Target, TargetSettings
from conformance.targets.http import JsonRpcTarget, XmlRpcTarget, give_up, open_target
from conformance.targets.inprocess import InProcessTarget

__all__ = [
    "InProcessTarget",
    "JsonRpcTarget",
    "Target",
    "TargetSettings",
    "XmlRpcTarget",
    "give_up",
    "open_target",
    "other_protocol",
]


def other_protocol(target: Target) -> Target | None:
    """``target`` over the protocol it does not speak, or None for a target that cannot say
    (a wrapper of a test's)."""
    make = getattr(target, "with_protocol", None)
    other: Protocol_ = "jsonrpc" if target.protocol == "xmlrpc" else "xmlrpc"
    return make(other) if callable(make) else None
