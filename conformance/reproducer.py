"""Rendering a call sequence as a standalone Python script that replays it against a target."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.outcome import Encoded, Failure, Outcome, Value

__all__ = ["LOGIN", "LoggedCall", "RoleLogin", "render_reproducer"]

LOGIN = "session.login_with_password"


@dataclass(frozen=True)
class LoggedCall:
    """One call of an example, in model terms; ``result_ref`` is the ref its success returned."""

    method: str
    args: tuple[Value, ...]
    session: str
    result_ref: str | None = None
    answer: Outcome | None = None
    """The target's answer, in model terms, when the call matched the model."""


@dataclass(frozen=True)
class RoleLogin:
    """A session logged in before the example for a role-limited account."""

    variable: str
    user: str
    role: str


def _source(value: Value, names: Mapping[str, str]) -> str:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return names.get(value) or repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return repr(value.strftime("%Y%m%dT%H:%M:%SZ"))
    if isinstance(value, Encoded):
        return _source(value.value, names)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_source(k, names)}: {_source(v, names)}" for k, v in value.items())
        return "{" + items + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_source(v, names) for v in value) + "]"
    return repr(value)


def _outcome_source(outcome: Outcome, names: Mapping[str, str]) -> str:
    if isinstance(outcome, Failure):
        return f"('error', {_source([outcome.code, *outcome.params], names)})"
    return f"('ok', {_source(outcome.value, names)})"


def _call_expr(call: LoggedCall, names: Mapping[str, str]) -> str:
    if call.method == LOGIN:
        return "login(USER, PASSWORD)"
    session = [names.get(call.session, repr(call.session))] if call.session else []
    rendered = ", ".join([*session, *(_source(a, names) for a in call.args)])
    if call.method.startswith("Async.") and call.session:
        return f"call_async({call.method.removeprefix('Async.')!r}, {rendered})"
    return f"call({call.method!r}, {rendered})"


def _step_line(call: LoggedCall, names: Mapping[str, str]) -> str:
    expression = _call_expr(call, names)
    variable = names.get(call.result_ref or "")
    if variable is None:
        return expression
    if call.method == LOGIN:
        return f"{variable} = {expression}"
    into = (
        "created"
        if call.method.removeprefix("Async.").startswith("VM.")
        and not call.method.startswith("Async.")
        else "others"
    )
    return f"{variable} = remember({expression}, {into})"


_PRELUDE = '''#!/usr/bin/env python3
"""xapi-conformance reproducer: {title}

Replays the shortest call sequence the suite found and shows the divergent answer.
Standard library only. Usage:
    XAPI_PASSWORD=... python3 {filename} [URL] [USER] [xmlrpc|jsonrpc]
Role-limited sessions read their passwords from XAPI_PASSWORD_<ROLE> (e.g. XAPI_PASSWORD_READ_ONLY).
Exit status: 1 when the divergence shows, 0 when the target answers as xapi would, 2 when it
cannot replay (login refused).
The VMs it creates are destroyed before it exits.
"""

import itertools
import json
import os
import sys
import time
import urllib.request
import xmlrpc.client

URL = sys.argv[1] if len(sys.argv) > 1 else {url!r}
USER = sys.argv[2] if len(sys.argv) > 2 else {user!r}
PROTOCOL = sys.argv[3] if len(sys.argv) > 3 else {protocol!r}
PASSWORD = os.environ.get("XAPI_PASSWORD", "")
STRICTNESS = {strictness!r}
IDS = itertools.count(1)


def wire(value):
    """int64 travels as a string over XML-RPC (xapi accepts digits)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and PROTOCOL == "xmlrpc":
        return str(value)
    if isinstance(value, dict):
        return {{k: wire(v) for k, v in value.items()}}
    if isinstance(value, list):
        return [wire(v) for v in value]
    return value


def call(method, *args):
    """One XenAPI call: ("ok", value) or ("error", [code, *params])."""
    args = [wire(a) for a in args]
    if PROTOCOL == "jsonrpc":
        body = json.dumps({{"jsonrpc": "2.0", "method": method, "params": args, "id": next(IDS)}})
        request = urllib.request.Request(URL.rstrip("/") + "/jsonrpc", body.encode(),
                                         {{"Content-Type": "application/json"}})
        answer = json.load(urllib.request.urlopen(request, timeout=300))
        if "error" in answer and answer["error"] is not None:
            error = answer["error"]
            return ("error", [error["message"], *error.get("data", [])] if isinstance(error, dict) else error)
        return ("ok", answer.get("result"))
    proxy = xmlrpc.client.ServerProxy(URL, allow_none=True)
    answer = getattr(proxy, method)(*args)
    if answer.get("Status") == "Success":
        return ("ok", answer.get("Value"))
    return ("error", answer.get("ErrorDescription"))


def call_async(method, session, *args):
    """Async.<method>, then poll its task: the task's outcome as ("ok", value) or ("error", info)."""
    status, task = call("Async." + method, session, *args)
    if status != "ok":
        return (status, task)
    for _ in range(12000):
        status, state = call("task.get_status", session, task)
        if status != "ok" or state != "pending":
            break
        time.sleep(0.05)
    _, record = call("task.get_record", session, task)
    call("task.destroy", session, task)
    if record.get("status") == "success":
        text = record.get("result", "") or "<value></value>"
        document = "<methodResponse><params><param>" + text + "</param></params></methodResponse>"
        return ("ok", xmlrpc.client.loads(document)[0][0])
    return ("error", record.get("error_info", []))


def login(user, password):
    status, value = call("session.login_with_password", user, password, "2.21", "xapi-conformance reproducer")
    if status != "ok":
        print(f"cannot replay: login as {{user!r}} failed with {{value[0]}}", file=sys.stderr)
        sys.exit(2)
    logins.append(value)
    return value


def remember(answer, into):
    status, value = answer
    if status == "ok" and isinstance(value, str) and value.startswith("OpaqueRef:"):
        into.append(value)
        return value
    return "OpaqueRef:NULL"


def norm(value):
    """Compare as the suite does: ints as strings, sets unordered."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, float):
        return float("%.16g" % value)
    if isinstance(value, dict):
        return {{str(k): norm(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return sorted((norm(v) for v in value), key=repr) if UNORDERED else [norm(v) for v in value]
    return str(value)


def matches(answer, expected):
    if answer[0] != expected[0]:
        return False
    if answer[0] == "ok":
        return norm(answer[1]) == norm(expected[1])
    got, want = answer[1], expected[1]
    if STRICTNESS == "code":
        return got[:1] == want[:1]
    if STRICTNESS == "arity":
        return got[:1] == want[:1] and len(got) == len(want)
    return list(got) == list(want)


created, others, logins = [], [], []
session = login(USER, PASSWORD)
diverges = False
try:
'''

_EPILOGUE = """    print("call:    ", {call_text!r})
    print("expected:", " or ".join(repr(e) for e in expected))
    print("actual:  ", repr(answer))
    diverges = not any(matches(answer, e) for e in expected)
    print("DIVERGES: the target did not answer as xapi would" if diverges else "conforms now")
finally:
    for vm in reversed(created):
        call("VM.set_blocked_operations", session, vm, {{}})
        call("VM.remove_from_other_config", session, vm, "default_template")
        call("VM.set_is_a_template", session, vm, False)
        call("VM.hard_shutdown", session, vm)
        call("VM.destroy", session, vm)
    for extra in logins[1:] + logins[:1]:
        call("session.logout", extra)
sys.exit(1 if diverges else 0)
"""


def render_reproducer(
    *,
    title: str,
    steps: Sequence[LoggedCall],
    final: LoggedCall,
    expected: Sequence[Outcome],
    names: Mapping[str, str],
    roles: Sequence[RoleLogin],
    display: str,
    unordered: bool,
    url: str,
    user: str,
    protocol: str,
    strictness: str,
) -> str:
    """The script: log in, replay ``steps``, make ``final`` and compare it with ``expected``.

    ``names`` maps model refs (VMs, tasks, sessions) to the variables that hold the target's.
    """
    prelude = _PRELUDE.format(
        title=title,
        filename="reproducer.py",
        url=url,
        user=user,
        protocol=protocol,
        strictness=strictness,
    ).replace("STRICTNESS = ", f"UNORDERED = {unordered!r}\nSTRICTNESS = ", 1)
    lines = [prelude]
    for role in roles:
        env = "XAPI_PASSWORD_" + role.role.upper().replace("-", "_")
        lines.append(f"    {role.variable} = login({role.user!r}, os.environ.get({env!r}, ''))")
    lines += [f"    {_step_line(step, names)}" for step in steps]
    lines.append(f"    answer = {_call_expr(final, names)}")
    lines.append(f"    expected = [{', '.join(_outcome_source(e, names) for e in expected)}]")
    lines.append(_EPILOGUE.format(call_text=display))
    return "\n".join(lines)
