"""Targets: anything that answers XenAPI calls with an ``Outcome``."""

from conformance.targets.base import Target, TargetSettings
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
]
