"""The official XenAPI Python SDK (PyPI ``XenAPI``, unchanged) as an event-driven client of the
embedded server: a VM cache fed by ``event.from`` alone and one fed by the legacy
``event.register`` / ``event.next`` stay in step with the VM through its lifecycle (plain calls,
then ``Async.`` calls whose tasks are followed through their events), each cached record what
``VM.get_record`` answers after every call, and the VM leaves both caches when destroyed.

The SDK is a dev dependency (``pip install -e '.[dev]'``, as CI's ``.ci/run`` does).
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer, start_in_thread
from tests.conformance.conftest import PASSWORD
from tests.models.helpers import vm_args

XenAPI = pytest.importorskip(
    "XenAPI", reason="the XenAPI SDK is a dev dependency: pip install -e '.[dev]'"
)

TASK_WAIT_S = 30.0
"""event.from's timeout while an Async call's task runs (it answers as soon as the task moves)."""
STEPS = (
    ("start", (False, False)),
    ("pause", ()),
    ("unpause", ()),
    ("suspend", ()),
    ("resume", (False, False)),
    ("clean_shutdown", ()),
)


def _api(server: RunningServer) -> Any:
    session = XenAPI.Session(server.url)
    session.xenapi.login_with_password("root", PASSWORD, "2.21", "xapi-conformance events")
    return session.xenapi


class FromCache:
    """A client's VM cache kept as XenCenter's and the SDK's samples keep one: every add and
    mod event's snapshot stored, every del removing its VM, the token carried on."""

    def __init__(self, api: Any) -> None:
        self.event_from = getattr(api.event, "from")
        self.token = ""
        self.vms: dict[str, dict[str, Any]] = {}

    def catch_up(self) -> None:
        batch = self.event_from(["vm"], self.token, 0.0)
        _apply(self.vms, batch["events"])
        self.token = batch["token"]


class NextCache:
    """The same cache fed by the legacy event.next (registered to ``vm``): called only after a
    call that changed the VM, since event.next waits for an event."""

    def __init__(self, api: Any) -> None:
        api.event.register(["vm"])
        self.next = api.event.next
        self.vms: dict[str, dict[str, Any]] = {}

    def catch_up(self) -> None:
        _apply(self.vms, self.next())


def _apply(vms: dict[str, dict[str, Any]], events: list[dict[str, Any]]) -> None:
    for event in events:
        if event["operation"] == "del":
            vms.pop(event["ref"], None)
        else:
            vms[event["ref"]] = event["snapshot"]


def _await_task(api: Any, task: str) -> dict[str, Any]:
    """The task's record once it has ended, learnt from its events (no polling of getters)."""
    event_from, token = getattr(api.event, "from"), ""
    while True:
        batch = event_from([f"task/{task}"], token, TASK_WAIT_S)
        token = batch["token"]
        records = [e["snapshot"] for e in batch["events"] if e["operation"] != "del"]
        if records and records[-1]["status"] != "pending":
            return dict(records[-1])
        assert batch["events"], f"task {task} did not end within {TASK_WAIT_S}s"


def _lifecycle(server: RunningServer) -> None:
    """Create a VM, take it through ``STEPS`` by plain calls then by Async calls, destroy it:
    both caches must be in step after every call (AssertionError names the first that is not)."""
    api, watcher = _api(server), _api(server)
    by_from, by_next = FromCache(watcher), NextCache(watcher)
    by_from.catch_up()
    vm = api.VM.create(vm_args(name_label="sdk events"))
    _in_step(api, vm, "VM.create", by_from, by_next)
    for is_async in (False, True):
        for name, args in STEPS:
            if is_async:
                _async(api, name, vm, args)
            else:
                getattr(api.VM, name)(vm, *args)
            _in_step(api, vm, f"{'Async.' * is_async}VM.{name}", by_from, by_next)
    api.VM.destroy(vm)
    for cache in (by_from, by_next):
        cache.catch_up()
        assert vm not in cache.vms, f"{type(cache).__name__} after VM.destroy"


def test_event_driven_caches_stay_in_step_through_a_lifecycle(server: RunningServer) -> None:
    _lifecycle(server)


@pytest.mark.parametrize(
    ("fault", "shown"),
    [
        ("event-no-mod-on-power-change", "FromCache after VM.start"),
        ("event-next-stale-snapshot", "NextCache after VM.start"),
    ],
)
def test_a_faulty_servers_events_put_a_cache_out_of_step(fault: str, shown: str) -> None:
    config = ServerConfig(password=PASSWORD, faults=(fault,))
    running = start_in_thread(config)
    try:
        with pytest.raises(AssertionError, match=shown):
            _lifecycle(running)
    finally:
        running.stop()


def _async(api: Any, name: str, vm: str, args: tuple[object, ...]) -> None:
    task = getattr(api.Async.VM, name)(vm, *args)
    record = _await_task(api, task)
    api.task.destroy(task)
    assert record["status"] == "success", (name, record["error_info"])


def _in_step(api: Any, vm: str, after: str, *caches: FromCache | NextCache) -> None:
    record = api.VM.get_record(vm)
    for cache in caches:
        cache.catch_up()
        assert cache.vms.get(vm) == record, f"{type(cache).__name__} after {after}"
