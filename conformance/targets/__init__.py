"""Targets: anything that answers XenAPI calls with an ``Outcome``."""

from conformance.targets.base import Target, TargetSettings
from conformance.targets.http import JsonRpcTarget, XmlRpcTarget, open_target
from conformance.targets.inprocess import InProcessTarget

__all__ = [
    "InProcessTarget",
    "JsonRpcTarget",
    "Target",
    "TargetSettings",
    "XmlRpcTarget",
    "open_target",
]
