"""Ported from xapi's ocaml/quicktest/quicktest_async_calls.ml.

The quicktest copies a VDI with an Async call, waits for the task, reads its status and result
(the new object's ref inside ``<value>``), destroys the result and the task. The same
expectations hold for the VM class's Async calls; VM.clone stands in for VDI.copy.
"""

from __future__ import annotations

import re

from tests.xapi.conftest import Api
from tests.xapi.oracle import missing


def test_async_call_result_is_the_new_ref(api: Api) -> None:
    """async: status success; the result parses to the new object's ref; it can be destroyed."""
    vm = api.new_vm()
    task = api.ok("Async.VM.clone", vm, "async clone")
    assert api.ok("task.get_status", task) == "success"
    result = str(api.ok("task.get_result", task))
    match = re.fullmatch(r"<value>(OpaqueRef:[0-9a-f-]+)</value>", result)
    assert match, result
    clone = match.group(1)
    assert api.get(clone, "name_label") == "async clone"
    assert api.ok("task.get_error_info", task) == ()
    api.ok("VM.destroy", clone)
    api.ok("task.destroy", task)
    assert task not in api.ok("task.get_all")


def test_async_vdi_copy(api: Api) -> None:
    """async: the original's Async.VDI.copy."""
    missing(api, "VDI.get_all", reason="the model has no VDIs")
