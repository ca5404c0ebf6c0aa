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
Standard library only. Usage:
    XAPI_PASSWORD=... python3 {filename} [URL] [USER] [xmlrpc|jsonrpc]
Role-limited sessions read their passwords from XAPI_PASSWORD_<ROLE> (e.g. XAPI_PASSWORD_READ_ONLY).
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

import http.client
import itertools
import json
import os
import re
import sys
import time
import urllib.request
import xml.parsers.expat
import xmlrpc.client

URL = sys.argv[1] if len(sys.argv) > 1 else {url!r}
USER = sys.argv[2] if len(sys.argv) > 2 else {user!r}
PROTOCOL = sys.argv[3] if len(sys.argv) > 3 else {protocol!r}
PASSWORD = os.environ.get("XAPI_PASSWORD", "")
STRICTNESS = {strictness!r}
UNORDERED = {unordered!r}
CALL_TEXT = {call_text!r}
RESULT_SHAPE_ONLY = {result_shape_only!r}
"""The last call's success value is a live figure: only its type is compared (as the suite does)."""
RESULT_FIELD = {result_field!r}
"""The VM field the last call reads, compared with that field's rule."""
RESULT_RECORDS = {result_records!r}
"""'record' or 'records' when the last call returns VM records, compared field by field."""
SHAPE_ONLY_FIELDS = {shape_only_fields!r}
"""VM fields the server chooses (uuids, domids, timestamps...): compared for shape only."""
SHAPE_ONLY_MAP_KEYS = {shape_only_map_keys!r}
TOLERANT_PARAMS = {tolerant_params!r}
"""Error code: (index of a wait read from the host's clock, index of the interval bounding it)."""
UUID = re.compile(r"[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$")
NULL = "OpaqueRef:NULL"
UNREACHABLE = (OSError, http.client.HTTPException, xmlrpc.client.Error,
               xml.parsers.expat.ExpatError, ValueError, AttributeError, KeyError, TypeError)
IDS = itertools.count(1)
TRACE = [True]
VIA_TASK = [False]
created, others, logins = [], [], []


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


def call(method, *args):
    """One XenAPI call, printed with its answer: ("ok", value) or ("error", [code, *params])."""
    secret = method == "session.login_with_password"
    VIA_TASK[0] = False
    if TRACE[0]:
        print(">", method + "(" + ("..." if secret else ", ".join(short(a, 60) for a in args)) + ")")
    answer = send(method, [wire(a) for a in args])
    if TRACE[0]:
        print("<", answer[0], "" if secret and answer[0] == "ok" else short(answer[1]))
    return answer


def call_async(method, session, *args):
    """Async.<method>, then poll its task: the task's outcome as ("ok", value) or ("error", info)."""
    status, task = call("Async." + method, session, *args)
    if status != "ok":
        return (status, task)
    TRACE[0] = False
    try:
        for _ in range(12000):
            status, state = call("task.get_status", session, task)
            if status != "ok" or state != "pending":
                break
            time.sleep(0.05)
        _, record = call("task.get_record", session, task)
        call("task.destroy", session, task)
    finally:
        TRACE[0] = True
    if record.get("status") == "success":
        text = record.get("result", "") or "<value></value>"
        document = "<methodResponse><params><param>" + text + "</param></params></methodResponse>"
        answer = ("ok", xmlrpc.client.loads(document)[0][0])
    else:
        answer = ("error", record.get("error_info", []))
    print("< task", answer[0], short(answer[1]))
    VIA_TASK[0] = True
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


def kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, (list, tuple)):
        return "list"
    return "scalar"


def shape_ok(field, want, got):
    """The suite's shape-only rule for a field the server chooses."""
    if field == "uuid":
        return isinstance(got, str) and bool(UUID.match(got))
    if field == "domid":
        return (norm(got) == "-1") == (norm(want) == "-1")
    if field in ("resident_on", "suspend_VDI"):
        return (got == NULL) == (want == NULL)
    if field == "blobs":
        return isinstance(got, dict) and isinstance(want, dict) and set(got) == set(want)
    return kind(got) == kind(want)


def same_field(field, want, got):
    if field in SHAPE_ONLY_FIELDS:
        return shape_ok(field, want, got)
    loose = SHAPE_ONLY_MAP_KEYS.get(field, ())
    if loose and isinstance(want, dict) and isinstance(got, dict):
        return set(want) == set(got) and all(
            k in loose or norm(v) == norm(got[k]) for k, v in want.items())
    return norm(want) == norm(got)


def same_record(want, got):
    return (isinstance(want, dict) and isinstance(got, dict)
            and all(k in got and same_field(k, v, got[k]) for k, v in want.items()))


def same_value(want, got):
    if RESULT_SHAPE_ONLY:
        return True
    if RESULT_FIELD:
        return same_field(RESULT_FIELD, want, got)
    if RESULT_RECORDS == "record":
        return same_record(want, got)
    if RESULT_RECORDS == "records":
        return (isinstance(want, dict) and isinstance(got, dict) and set(want) == set(got)
                and all(same_record(v, got[k]) for k, v in want.items()))
    return norm(want) == norm(got)


def typed_ok(want, got, protocol):
    """``got`` typed as xapi types ``want`` on the wire: an int64 is a bare string over XML-RPC
    (and in task.result) and a number over JSON-RPC; a bool is never a string."""
    if isinstance(want, bool):
        return isinstance(got, bool)
    if isinstance(want, int):
        if protocol == "xmlrpc":
            return isinstance(got, str)
        return isinstance(got, int) and not isinstance(got, bool)
    if isinstance(want, float):
        return isinstance(got, (int, float)) and not isinstance(got, bool)
    if isinstance(want, str):
        return isinstance(got, (str, xmlrpc.client.DateTime))
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            typed_ok(v, got[k], protocol) for k, v in want.items() if k in got)
    if isinstance(want, (list, tuple)):
        return isinstance(got, (list, tuple)) and (
            not want or all(typed_ok(want[0], g, protocol) for g in got))
    return True


def matches(answer, expected):
    """Whether the target's answer is one xapi gives, by the suite's comparison rules."""
    if answer[0] != expected[0]:
        return False
    if answer[0] == "ok":
        protocol = "xmlrpc" if VIA_TASK[0] else PROTOCOL
        return same_value(expected[1], answer[1]) and typed_ok(expected[1], answer[1], protocol)
    got, want = answer[1], expected[1]
    if STRICTNESS == "code":
        return got[:1] == want[:1]
    if STRICTNESS == "arity":
        return got[:1] == want[:1] and len(got) == len(want)
    if len(got) != len(want) or got[:1] != want[:1]:
        return False
    wait, bound = TOLERANT_PARAMS.get(want[0], (-1, -1))
    return all(within(g, want[bound + 1]) if i == wait else g == w
               for i, (g, w) in enumerate(zip(got[1:], want[1:])))


def within(wait, interval):
    """A wait left of the interval, as the host's clock reads it: 0 < wait <= interval."""
    try:
        return 0 < float(wait) <= float(interval)
    except (TypeError, ValueError):
        return False


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
