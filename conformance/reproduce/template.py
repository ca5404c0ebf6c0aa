"""The text of a reproducer script around its call sequence (filled in by conformance.reproduce.reproducer).

``HEADER`` opens the script with its docstring and ``def replay(session):``, whose body (the
call sequence) the renderer writes; ``PLUMBING`` follows with the standard-library client, the
suite's comparison rules and ``main()``. Both are ``str.format`` templates.
"""

from __future__ import annotations

__all__ = ["HEADER", "PLUMBING"]

HEADER = '''#!/usr/bin/env python3
"""xapi-conformance reproducer: {title}

The shortest call sequence the suite found is in replay() just below; the rest is plumbing.
The calls use the standard library only; the verdict imports xapi-conformance's comparison
rules (the suite's own), so install it first. Usage:
    {password_env}=... python3 {filename} [URL] [USER] [xmlrpc|jsonrpc]
Role-limited sessions read their passwords from the variables their login lines name.
Every call is printed with the target's answer as it is made.
Exit status: 1 while the divergence shows, 0 when the target answers as xapi would, 2 when it
cannot replay (target unreachable, login refused, not a XenAPI answer).
The VMs it creates are destroyed before it exits.
"""


def replay(session):
    """The call sequence; returns the target's answer to the last call and xapi's answers."""
'''

PLUMBING = '''

# ---- plumbing ---------------------------------------------------------------------------------

import datetime
import hashlib
import http.client
import itertools
import json
import os
import sys
import time
import urllib.request
import xml.parsers.expat
import xmlrpc.client

URL = sys.argv[1] if len(sys.argv) > 1 else {url!r}
USER = sys.argv[2] if len(sys.argv) > 2 else {user!r}
PROTOCOL = sys.argv[3] if len(sys.argv) > 3 else {protocol!r}
PASSWORD = os.environ.get({password_env!r}, "")
STRICTNESS = {strictness!r}
EXACT = {exact!r}
CALL_TEXT = {call_text!r}
METHOD = {method!r}
NULL = "OpaqueRef:NULL"
UNREACHABLE = (OSError, http.client.HTTPException, xmlrpc.client.Error,
               xml.parsers.expat.ExpatError, ValueError, AttributeError, KeyError, TypeError)
IDS = itertools.count(1)
TRACE = [True]
created, others, logins, tasks = [], [], [], []


def short(value, limit=160):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


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


def send(method, args):
    if PROTOCOL == "jsonrpc":
        sent = next(IDS)
        body = json.dumps({{"jsonrpc": "2.0", "method": method, "params": args, "id": sent}})
        request = urllib.request.Request(URL.rstrip("/") + "/jsonrpc", body.encode(),
                                         {{"Content-Type": "application/json"}})
        answer = json.load(urllib.request.urlopen(request, timeout=300))
        checked_id(answer, sent)
        if "error" in answer and answer["error"] is not None:
            error = answer["error"]
            return ("error", [error["message"], *error.get("data", [])] if isinstance(error, dict) else error)
        return ("ok", answer.get("result"))
    proxy = xmlrpc.client.ServerProxy(URL, allow_none=True)
    answer = getattr(proxy, method)(*args)
    if answer.get("Status") == "Success":
        return ("ok", answer.get("Value"))
    return ("error", answer.get("ErrorDescription"))


def checked_id(answer, sent):
    """An answer must echo the request's id (the suite's JSON-RPC rule): else it is not one."""
    try:
        from conformance.wire.jsonrpc import id_mismatch
    except ImportError:
        return  # matches() says to install xapi-conformance
    problem = id_mismatch(answer.get("id") if isinstance(answer, dict) else None, sent)
    if problem:
        raise ValueError(problem)


def call(method, *args):
    """One XenAPI call, printed with its answer: ("ok", value) or ("error", [code, *params])."""
    secret = method == "session.login_with_password"
    if TRACE[0]:
        print(">", method + "(" + ("..." if secret else ", ".join(short(a, 60) for a in args)) + ")")
    answer = send(method, [wire(a) for a in args])
    if TRACE[0]:
        print("<", answer[0], "" if secret and answer[0] == "ok" else short(answer[1]))
    return answer


def ended(session, task, before_destroy=None):
    """Poll ``task`` until it ends (unprinted); its record, and what ``before_destroy`` (a
    function of the session and task) answered before the task was destroyed."""
    TRACE[0] = False
    try:
        for _ in range(12000):
            status, state = call("task.get_status", session, task)
            if status != "ok" or state != "pending":
                break
            time.sleep(0.05)
        seen = before_destroy(session, task) if before_destroy else None
        _, record = call("task.get_record", session, task)
        call("task.destroy", session, task)
    finally:
        TRACE[0] = True
    return record, seen


def trackid(session):
    """How xapi names a session in errors (Context.trackid_of_session): the MD5 of its ref."""
    return "trackid=" + hashlib.md5(session.encode()).hexdigest()


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def call_async(method, session, *args):
    """Async.<method>, then poll its task: the task's outcome as ("ok", value) or ("error", info)."""
    status, task = call("Async." + method, session, *args)
    if status != "ok":
        return (status, task)
    tasks.append(task)
    record, _ = ended(session, task)
    if record.get("status") == "success":
        text = record.get("result", "") or "<value></value>"
        document = "<methodResponse><params><param>" + text + "</param></params></methodResponse>"
        answer = ("ok", xmlrpc.client.loads(document)[0][0])
    else:
        answer = ("error", record.get("error_info", []))
    print("< task", answer[0], short(answer[1]))
    return answer


def catch_up(session, classes, token):
    """event.from(classes, token, 0) unprinted: the token of now (its events are not judged)."""
    TRACE[0] = False
    try:
        status, batch = call("event.from", session, classes, token, 0.0)
    finally:
        TRACE[0] = True
    return batch["token"] if status == "ok" and isinstance(batch, dict) else token


def injected(session, cls, ref):
    """event.inject(cls, ref), printed: the token it answers ("" when it fails)."""
    status, token = call("event.inject", session, cls, ref)
    return token if status == "ok" and isinstance(token, str) else ""


def next_catch_up(session, last_id):
    """event.next unprinted (where the example called it): the last id it answered."""
    TRACE[0] = False
    try:
        status, events = call("event.next", session)
    finally:
        TRACE[0] = True
    ids = [int(e["id"]) for e in events if str(e.get("id", "")).isdigit()] if status == "ok" else []
    return max([last_id, *ids])


def task_record(session, method, *args):
    """Async.<method>; once its task ended, its record (task.get_record), with the span the call
    was sent and ended in and the pool's hosts, for the verdict."""
    sent = now()
    status, task = call("Async." + method, session, *args)
    if status != "ok":
        return (status, task)
    tasks.append(task)
    record, _ = ended(session, task)
    hosts = call("host.get_all", session)[1]
    return ("ok", {{"record": record, "sent": sent, "ended": now(), "hosts": hosts, "task": task}})


def task_event(session, method, *args):
    """Async.<method>; once its task ended, event.from(["task/<task>"], "", 0) as a client
    subscribed to it calls it, with the span and the pool's hosts, for the verdict."""
    sent = now()
    status, task = call("Async." + method, session, *args)
    if status != "ok":
        return (status, task)
    tasks.append(task)
    _, batch = ended(session, task, lambda s, t: call("event.from", s, ["task/" + t], "", 0.0))
    hosts = call("host.get_all", session)[1]
    status, value = batch
    answer = {{"batch": value, "sent": sent, "ended": now(), "hosts": hosts, "task": task}}
    return (status, answer if status == "ok" else value)


def task_del_event(session, method, *args):
    """Async.<method>; once its task ended, event.from(["task/<task>"], "", 0), its token kept;
    once the task is destroyed, event.from(["task/<task>"], that token, 0), for the verdict."""
    status, task = call("Async." + method, session, *args)
    if status != "ok":
        return (status, task)
    tasks.append(task)
    _, seen = ended(session, task, lambda s, t: call("event.from", s, ["task/" + t], "", 0.0))
    token = seen[1].get("token", "") if seen[0] == "ok" and isinstance(seen[1], dict) else ""
    status, batch = call("event.from", session, ["task/" + task], token, 0.0)
    return (status, {{"batch": batch, "task": task}} if status == "ok" else batch)


def task_listed(session):
    """Whether task.get_all lists the last Async call's task (destroyed once it ended)."""
    status, listed = call("task.get_all", session)
    return (status, tasks[-1] in listed) if status == "ok" else (status, listed)


def read_records(session):
    """Every VM the replay created, as VM.get_record answers now (unprinted)."""
    TRACE[0] = False
    try:
        return {{vm: call("VM.get_record", session, vm) for vm in created}}
    finally:
        TRACE[0] = True


def own_only(answer, mine):
    """A query's answer over every VM of the pool cut down to the replay's VMs (``mine``): the
    suite judged only its own, since other clients' VMs come and go."""
    status, value = answer
    if status == "ok" and isinstance(value, dict):
        return status, {{ref: record for ref, record in value.items() if ref in mine}}
    if status == "ok" and isinstance(value, list):
        return status, [ref for ref in value if ref in mine]
    return answer


def login(user, password, originator="xapi-conformance reproducer"):
    status, value = call("session.login_with_password", user, password, "2.21", originator)
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
    return NULL


def matches(answer, expected):
    """Whether the target's answer is one xapi gives, by the suite's own comparison rules."""
    try:
        from conformance.reproduce.verdict import conforms
    except ImportError:
        print("cannot judge: the verdict uses xapi-conformance's comparison rules; install it "
              "(pip install xapi-conformance) and run again", file=sys.stderr)
        sys.exit(2)
    return conforms(METHOD, answer, expected, protocol=PROTOCOL, strictness=STRICTNESS,
                    exact=EXACT)


def clean_up():
    TRACE[0] = False
    steps = (("VM.set_blocked_operations", {{}}), ("VM.remove_from_other_config", "default_template"),
             ("VM.set_is_a_template", False), ("VM.hard_shutdown",), ("VM.destroy",))
    for vm in reversed(created):
        for step in steps:
            try:
                call(step[0], logins[0], vm, *step[1:])
            except UNREACHABLE:
                pass
    for extra in logins[1:] + logins[:1]:
        try:
            call("session.logout", extra)
        except UNREACHABLE:
            pass


def unreachable(error):
    print(f"cannot replay: {{URL}} did not answer as a XenAPI server ({{type(error).__name__}}: {{error}})",
          file=sys.stderr)
    return 2


def main():
    try:
        session = login(USER, PASSWORD)
    except UNREACHABLE as error:
        return unreachable(error)
    try:
        answer, expected = replay(session)
    except UNREACHABLE as error:
        return unreachable(error)
    finally:
        clean_up()
    print("call:    ", CALL_TEXT)
    print("expected:", " or ".join(repr(e) for e in expected))
    print("actual:  ", repr(answer))
    diverges = not any(matches(answer, e) for e in expected)
    print("DIVERGES: the target did not answer as xapi would" if diverges else "conforms now")
    return 1 if diverges else 0


if __name__ == "__main__":
    sys.exit(main())
'''
