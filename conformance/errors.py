"""The exception trees of the harness, and the exit codes of ``xapi-conformance``.

A divergence between the model and a target is an ``AssertionError`` (a test failure). Problems of
the tool, the transport or the user's input are ``ConformanceError`` (a test error, CLI exit 2/3).
A XenAPI error is neither: it is a value, ``models.outcome.Failure``.
"""

from __future__ import annotations

import enum

__all__ = [
    "ConformanceError",
    "ExitCode",
    "LoginFailed",
    "MalformedAnswer",
    "ProtocolError",
    "TargetError",
    "TargetInconsistent",
    "TargetStalled",
    "TargetTimeout",
    "TargetUnreachable",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """The exit status of every command (the only place these numbers are written)."""

    CONFORMS = 0
    DIVERGES = 1
    USAGE = 2
    TARGET = 3


class ConformanceError(Exception):
    """A problem of the tool, the transport or the input, not of the target's conformance."""

    exit_code = ExitCode.TARGET


class UsageError(ConformanceError):
    """The user asked for something impossible: a bad option, file or value. CLI exit 2."""

    exit_code = ExitCode.USAGE


class TargetError(ConformanceError):
    """The target could not be tested. CLI exit 3."""


class TargetUnreachable(TargetError):
    """The target did not answer: connection refused, DNS failure, TLS failure or timeout."""


class TargetTimeout(TargetUnreachable):
    """One call's deadline passed before its whole answer arrived."""


class TargetStalled(TargetError):
    """Several calls in a row missed their deadline: the run ends, later calls fail at once."""


class ProtocolError(TargetError):
    """The target answered something that is not a XenAPI response (bad HTTP status or body)."""


class MalformedAnswer(ProtocolError):
    """The target answered a call (HTTP 200) with a body that does not read as a XenAPI answer:
    a wrong answer to a call the suite judges (a divergence), or an untestable target when it is
    the login's."""


class TargetInconsistent(TargetError):
    """The target answered the same calls differently when they were replayed (another client
    changing the pool, a proxy that repeats or drops requests, a race in the server)."""


class LoginFailed(TargetError):
    """session.login_with_password was refused."""
