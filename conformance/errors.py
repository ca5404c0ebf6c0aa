"""The exception trees of the harness.

A divergence between the model and a target is an ``AssertionError`` (a test failure). Problems of
the tool, the transport or the user's input are ``ConformanceError`` (a test error, CLI exit 2/3).
A XenAPI error is neither: it is a value, ``models.outcome.Failure``.
"""

from __future__ import annotations

__all__ = [
    "ConformanceError",
    "LoginFailed",
    "ProtocolError",
    "TargetError",
    "TargetUnreachable",
    "UsageError",
]


class ConformanceError(Exception):
    """A problem of the tool, the transport or the input, not of the target's conformance."""


class UsageError(ConformanceError):
    """The user asked for something impossible: a bad option, file or value. CLI exit 2."""


class TargetError(ConformanceError):
    """The target could not be tested. CLI exit 3."""


class TargetUnreachable(TargetError):
    """The target did not answer: connection refused, DNS failure, TLS failure or timeout."""


class ProtocolError(TargetError):
    """The target answered something that is not a XenAPI response (bad HTTP status or body)."""


class LoginFailed(TargetError):
    """session.login_with_password was refused."""
