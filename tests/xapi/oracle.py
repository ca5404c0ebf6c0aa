"""Helpers for the ported tests: naming the xapi source, and xfails that name what is missing."""

from __future__ import annotations

import pytest

from models.outcome import Failure
from tests.xapi.conftest import Api

XAPI = "xapi-project/xen-api"


def missing(api: Api, method: str, *params: object, reason: str) -> None:
    """xfail with ``reason`` while ``method`` is unknown to the backend; fail once it exists.

    A ported expectation that needs an object or message the model lacks runs up to the first
    call that needs it; once the capability arrives the xfail turns into a failure that says
    the test must now be written out in full.
    """
    outcome = api.call(method, *params)
    if isinstance(outcome, Failure) and outcome.code == "MESSAGE_METHOD_UNKNOWN":
        pytest.xfail(reason)
    pytest.fail(f"{method} now answers ({outcome}): port this expectation in full")
