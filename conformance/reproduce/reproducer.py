"""Rendering a call sequence as a standalone Python script that replays it against a target."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from conformance.reproduce.template import HEADER, PLUMBING
from models.outcome import Encoded, Failure, Outcome, Value

__all__ = [
    "CATCH_UP",
    "INJECT",
    "LAST_ID",
    "LAST_TASK",
    "LOGIN",
    "NEXT_CATCH_UP",
    "RECORDS",
    "TASK_DEL",
    "TASK_EVENT",
    "TASK_LISTED",
    "TASK_RECORD",
    "TOKEN",
    "TRACKID",
    "LoggedCall",
    "RoleLogin",
    "render_reproducer",
]

LOGIN = "session.login_with_password"
CATCH_UP = "(event.from catch-up)"
"""A step that is no call of the example: event.from from the script's token with timeout 0,
its events not judged, its token kept (``args``: the subscription)."""
INJECT = "(event.inject, its token kept)"
"""A step: event.inject(class, ref) by ``session`` (``args``), its token kept as the script's
event token."""
TOKEN = "(the event token)"
"""An argument: the token the last catch-up kept."""
RECORDS = "(the records read now)"
"""A value in an expected answer: the VM records the script reads right after its last call
(``read_records``)."""
NEXT_CATCH_UP = "(event.next catch-up)"
"""A step that is no call of the example: event.next by ``session`` where the example called it,
its events not judged, the last id it answered kept (``last_id``)."""
LAST_ID = "(the last event id)"
"""A value in an expected answer: the last id the script's event.next catch-ups answered."""
LAST_TASK = "(the last task)"
"""An argument: the task of the script's last ``Async.`` call (destroyed once it ended)."""
TASK_RECORD = "(the task record of)"
"""A final call ``(method, *args)``: ``Async.<method>``, its ended task's record read, the
span it was sent and ended in, and the pool's hosts (``task_record``)."""
TASK_EVENT = "(the task event of)"
"""A final call ``(method, *args)``: ``Async.<method>``, then, once its task ended,
event.from(["task/<task>"], "", 0) (``task_event``)."""
TRACKID = "(the trackid of)"
"""A value in an expected answer, followed by a session (model ref): xapi's name for that
session in errors (``trackid=`` and the MD5 of its ref), as the script computes it."""
TASK_DEL = "(the task del event of)"
"""A final call ``(method, *args)``: ``Async.<method>``; once its task ended,
event.from(["task/<task>"], "", 0), its token kept; once the task is destroyed,
event.from(["task/<task>"], that token, 0) (``task_del_event``)."""
TASK_LISTED = "(the last task listed)"
"""A final call: whether task.get_all lists the task of the script's last ``Async.`` call,
destroyed once it ended (``task_listed``)."""
_SCRIPT_NAMES = {
    TOKEN: "token",
    RECORDS: "read_records(session)",
    LAST_ID: "last_id",
    LAST_TASK: "tasks[-1]",
}
_HELPERS = {
    TASK_RECORD: "task_record",
    TASK_EVENT: "task_event",
    TASK_DEL: "task_del_event",
    TASK_LISTED: "task_listed",
}


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
    password_env: str = ""
    """The variable its password is read from; empty: ``XAPI_PASSWORD_<ROLE>``."""


def _source(value: Value, names: Mapping[str, str]) -> str:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, str) and value.startswith(TRACKID):
        return f"trackid({_source(value.removeprefix(TRACKID), names)})"
    if isinstance(value, str):
        cls, sep, ref = value.partition("/")
        if sep and ref in names:  # an event subscription to one object: "vm/<ref>"
            return f"{cls + sep!r} + {names[ref]}"
        return names.get(value) or _SCRIPT_NAMES.get(value) or repr(value)
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


def _call_expr(call: LoggedCall, names: Mapping[str, str], *, refused: bool = False) -> str:
    """The call's source; a login as the suite's user, with its originator, unless the login
    is one xapi refuses (a wrong password or user): that one is sent as it was."""
    if call.method == LOGIN and not refused:
        originator = f", {_source(call.args[3], names)}" if len(call.args) > 3 else ""
        return f"login(USER, PASSWORD{originator})"
    session = [names.get(call.session, repr(call.session))] if call.session else []
    rendered = ", ".join([*session, *(_source(a, names) for a in call.args)])
    if call.method in _HELPERS:
        return f"{_HELPERS[call.method]}({rendered})"
    if call.method.startswith("Async.") and call.session:
        return f"call_async({call.method.removeprefix('Async.')!r}, {rendered})"
    return f"call({call.method!r}, {rendered})"


def _step_line(call: LoggedCall, names: Mapping[str, str], assigned: set[str]) -> str:
    """The step's source; a ref it answers is kept in its variable the first time only (a
    later lookup, such as VM.get_by_uuid with the uuid the suite saw, must not overwrite the
    replay's own ref with what a replay's server answers to it)."""
    if call.method == CATCH_UP:
        session = names.get(call.session, repr(call.session))
        return f"token = catch_up({session}, {_source(call.args[0], names)}, token)"
    if call.method == NEXT_CATCH_UP:
        return f"last_id = next_catch_up({names.get(call.session, repr(call.session))}, last_id)"
    if call.method == INJECT:
        rendered = ", ".join(_source(a, names) for a in (call.session, *call.args))
        return f"token = injected({rendered})"
    expression = _call_expr(call, names, refused=isinstance(call.answer, Failure))
    variable = names.get(call.result_ref or "")
    if variable is None or variable in assigned:
        return expression
    assigned.add(variable)
    if call.method == LOGIN:
        return f"{variable} = {expression}"
    into = (
        "created"
        if call.method.removeprefix("Async.").startswith("VM.")
        and not call.method.startswith("Async.")
        else "others"
    )
    return f"{variable} = remember({expression}, {into})"


def render_reproducer(
    *,
    title: str,
    steps: Sequence[LoggedCall],
    final: LoggedCall,
    expected: Sequence[Outcome],
    names: Mapping[str, str],
    roles: Sequence[RoleLogin],
    display: str,
    url: str,
    user: str,
    protocol: str,
    strictness: str,
    exact: bool = False,
    password_env: str = "XAPI_PASSWORD",
    own_vms: Sequence[str] | None = None,
) -> str:
    """The script: the call sequence first (log in, replay ``steps``, make ``final``), then the
    plumbing that judges the answer against ``expected`` with the suite's rules
    (``conformance.reproduce.verdict``).

    ``names`` maps model refs (VMs, tasks, sessions) to the variables that hold the target's;
    root's password is read from ``password_env``, each role's from its own variable.
    With ``own_vms`` (the variables of the example's VMs) ``final`` is a query over every VM of
    the pool: its answer is cut down to those VMs, as the suite judged it, since the VMs other
    clients hold when the script replays are not the ones they held during the run.
    """
    lines = [HEADER.format(title=title, filename="reproducer.py", password_env=password_env)]
    for role in roles:
        env = role.password_env or "XAPI_PASSWORD_" + role.role.upper().replace("-", "_")
        lines.append(f"    {role.variable} = login({role.user!r}, os.environ.get({env!r}, ''))")
    if any(step.method in (CATCH_UP, INJECT) for step in steps):
        lines.append('    token = ""')
    if any(step.method == NEXT_CATCH_UP for step in steps) or final.method == "event.next":
        lines.append("    last_id = -1")
    assigned: set[str] = set()
    lines += [f"    {_step_line(step, names, assigned)}" for step in steps]
    refused = bool(expected) and all(isinstance(e, Failure) for e in expected)
    answer = _call_expr(final, names, refused=refused)
    if own_vms is not None:
        answer = f"own_only({answer}, [{', '.join(own_vms)}])"
    lines.append(f"    answer = {answer}")
    lines.append(f"    expected = [{', '.join(_outcome_source(e, names) for e in expected)}]")
    lines.append("    return answer, expected")
    plumbing = PLUMBING.format(
        url=url,
        user=user,
        protocol=protocol,
        strictness=strictness,
        exact=exact,
        call_text=display,
        method=final.method,
        password_env=password_env,
    )
    return "\n".join(lines) + plumbing
