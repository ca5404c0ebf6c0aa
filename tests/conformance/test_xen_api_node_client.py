"""Xen Orchestra's XenAPI client (npm ``xen-api``, unchanged) against ``xapi-conformance serve``.

The Node script ``tests/node/xen_api_client.mjs`` logs in, lets the client fill its object cache
(``*.get_all_records``, then ``event.from``), lists the VMs, creates one and sees it arrive,
starts and cleanly shuts down the VM made here (plain calls, then ``Async.`` calls followed
through their tasks) and sees ``power_state`` change in the cache, then destroys its own VM and
sees it leave. CI's ``.ci/run`` installs the client (``npm install`` in tests/node) when npm exists.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from models.releases import DATABASE_TABLES
from tests.models.helpers import vm_args

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "xen_api_client.mjs"
PASSWORD = "xen-api-node-pw"
READY_TIMEOUT_S = 30.0
SCRIPT_TIMEOUT_MS = 60_000
RUN_TIMEOUT_S = SCRIPT_TIMEOUT_MS / 1000 + 30
CONNECT_CALLS = ["session.login_with_password", "pool.get_all_records", "system.listMethods"]
EVENTED_TYPES = {"SR", "VM", "host", "pool", "task"}


@pytest.fixture
def node() -> str:
    """The ``node`` executable; skips (before any server starts) when the client cannot run."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: `node` is not on PATH")
    if not (NODE_DIR / "node_modules" / "xen-api" / "package.json").is_file():
        pytest.skip(f"the npm client is not installed: run `npm install` in {NODE_DIR}")
    return node


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("xapi-conformance")
    if script.is_file():
        return [str(script), "serve"]
    return [sys.executable, "-m", "conformance.runner.cli", "serve"]


def _ready_line(stdout: IO[str], timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


@pytest.fixture
def served_url() -> Iterator[str]:
    """``xapi-conformance serve`` as a subprocess; its URL; always terminated."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            [*_serve_command(), "--password", PASSWORD],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = _ready_line(process.stdout, READY_TIMEOUT_S)
            if not (line.startswith("listening on http://") and line.endswith("/\n")):
                stderr.seek(0)
                pytest.fail(f"no ready line from the server: {line!r}; stderr: {stderr.read()}")
            yield line.removeprefix("listening on ").strip()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _value(answer: Any) -> Any:
    assert answer["Status"] == "Success", answer
    return answer["Value"]


def _run_client(node: str, url: str, vm: str, transport: str) -> subprocess.CompletedProcess[str]:
    timeout = str(SCRIPT_TIMEOUT_MS)
    try:
        return subprocess.run(
            [
                node,
                str(SCRIPT),
                "--url",
                url,
                "--vm",
                vm,
                "--timeout-ms",
                timeout,
                "--transport",
                transport,
            ],
            cwd=NODE_DIR,
            env={**os.environ, "XAPI_USER": "root", "XAPI_PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"xen_api_client.mjs did not exit within {RUN_TIMEOUT_S} s: {expired.stdout!r}")


def _jsonrpc(url: str, method: str, *params: object) -> Any:
    """One JSON-RPC v2 call, as xen-api makes it (its default transport)."""
    body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 0}
    answer = requests.post(url + "jsonrpc", json=body, timeout=30).json()
    assert "error" not in answer, answer
    return answer["result"]


def test_valid_ref_counts_cover_every_class_whatever_the_subscription(served_url: str) -> None:
    """What xen-api relies on, checked without Node: it refetches every task whenever
    ``valid_ref_counts.task`` differs from its cache (index.mjs ``_watchEvents``); xapi counts the
    rows of every table, zeros included, as numbers (``Xapi_event.from_inner``)."""
    session = _jsonrpc(served_url, "session.login_with_password", "root", PASSWORD)
    first = _jsonrpc(served_url, "event.from", session, ["vm"], "", 0.1)
    assert set(first["valid_ref_counts"]) == set(DATABASE_TABLES)
    assert _evented(first) == {"vm": 4, "host": 2, "pool": 1, "sr": 1, "task": 0}  # 2 templates
    pool = _jsonrpc(served_url, "pool.get_all", session)[0]
    token = _jsonrpc(served_url, "event.inject", session, "pool", pool)
    _jsonrpc(served_url, "Async.VM.create", session, vm_args())
    later = _jsonrpc(served_url, "event.from", session, ["task"], token, 5.0)
    assert [event["class"] for event in later["events"]] == ["task"]
    assert _evented(later) == {"vm": 5, "host": 2, "pool": 1, "sr": 1, "task": 1}


def _evented(batch: dict[str, Any]) -> dict[str, int]:
    """The counts of the classes the server has objects of (the other tables count 0)."""
    return {cls: batch["valid_ref_counts"][cls] for cls in ("vm", "host", "pool", "sr", "task")}


@pytest.mark.node
@pytest.mark.parametrize("transport", ["json-rpc", "xml-rpc"])
def test_xen_api_client_follows_vm_power_state_through_its_cache(
    node: str, served_url: str, transport: str
) -> None:
    """Over JSON-RPC (/jsonrpc) and XML-RPC: xen-api's XML-RPC transport posts to /xmlrpc,
    which xapi serves as XML-RPC (its ``/`` handler takes every path no other claims)."""
    api = xmlrpc.client.ServerProxy(served_url, allow_none=False)
    session = _value(api.session.login_with_password("root", PASSWORD, "2.21", "node test"))
    vm = _value(api.VM.create(session, vm_args(name_label="made-by-python")))

    completed = _run_client(node, served_url, vm, transport)
    report = (
        f"exit {completed.returncode}\nstdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    )
    assert completed.returncode == 0, report
    steps = {record["step"]: record for record in map(json.loads, completed.stdout.splitlines())}
    assert all(record["ok"] for record in steps.values()), report

    connect = steps["connect"]
    assert connect["status"] == "connected"
    assert set(connect["types"]) == EVENTED_TYPES  # every X.get_all_records in system.listMethods
    assert connect["pool"] == next(iter(_value(api.pool.get_all(session))))

    listed = {summary["ref"]: summary for summary in steps["list_vms"]["vms"]}
    assert listed[vm]["name_label"] == "made-by-python"
    assert listed[vm]["power_state"] == "Halted"
    assert sum(summary["is_control_domain"] for summary in listed.values()) == 2  # one per host

    created = steps["create_vm"]["vm"]  # made after the initial fetch: seen through event.from
    assert created["name_label"] == "xen-api-node-client" and created["power_state"] == "Halted"

    transitions = [
        "initial_state",
        "start",
        "clean_shutdown",
        "async_start",
        "async_clean_shutdown",
    ]
    assert [steps[name]["vm"]["ref"] for name in transitions] == [vm] * len(transitions)
    seen = [steps[name]["vm"]["power_state"] for name in transitions]
    assert seen == ["Halted", "Running", "Halted", "Running", "Halted"], report
    assert [steps[name]["tasks_in_cache"] for name in transitions[1:]] == [0] * 4  # del events
    assert _value(api.VM.get_power_state(session, vm)) == "Halted"

    destroyed = steps["destroy_vm"]
    assert destroyed["ref"] == created["ref"]
    assert created["ref"] not in {summary["ref"] for summary in destroyed["vms"]}
    assert created["ref"] not in _value(api.VM.get_all(session))

    done = steps["done"]
    assert done["warnings"] == [], report  # the client's event loop never failed
    calls: list[str] = done["calls"]
    assert calls[: len(CONNECT_CALLS)] == CONNECT_CALLS, calls
    assert calls[len(CONNECT_CALLS)] == "event.inject", calls  # the event loop's first token
    initial_fetch = calls[len(CONNECT_CALLS) + 1 : len(CONNECT_CALLS) + 1 + len(EVENTED_TYPES)]
    assert sorted(initial_fetch) == sorted(f"{t}.get_all_records" for t in EVENTED_TYPES), calls
    assert "event.from" in calls
    # valid_ref_counts["task"] always matches the cache, so the client never refetches tasks
    assert calls.count("task.get_all_records") == 1, calls
    assert calls[-1] == "session.logout", calls
    _value(api.session.logout(session))
