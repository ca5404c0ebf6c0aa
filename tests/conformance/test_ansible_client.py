"""Ansible's community.general XenServer modules, unchanged, against the embedded server.

``tests/ansible/playbook.yml`` reads a template (xenserver_guest_info), deploys it by full copy
and by linked clone (xenserver_guest), reconfigures the clone, powers it through its states
(xenserver_guest_powerstate) and removes both VMs, asserting what each module returns. The
modules need the XenAPI Python module (a dev dependency); CI's ``.ci/run`` installs the
``ansible`` package, which bundles community.general. Disks, networks and IP addresses are
out of scope (the simulator has no VDIs, VIFs or guest agent).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import XenAPI

from conformance.faults import Transition
from conformance.server import state as state_module
from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer, start_in_thread
from models.outcome import Failure
from models.transition import Branch, Call, Result
from models.world import World
from tests.models.helpers import vm_args

PLAYBOOK = Path(__file__).resolve().parents[1] / "ansible" / "playbook.yml"
PASSWORD = "ansible-pw"
RUN_TIMEOUT_S = 240
TEMPLATE_OTHER_CONFIG = {
    "default_template": "true",
    "install-methods": "cdrom",
    "disks": '<provision><disk device="0" size="10737418240" sr="" bootable="true"/></provision>',
}
"""As a built-in template carries them; the module drops ``disks`` before VM.provision."""


def _ansible_playbook() -> str:
    command = Path(sys.executable).with_name("ansible-playbook")
    if not command.is_file():
        pytest.skip("Ansible is not installed in this environment: pip install ansible")
    if importlib.util.find_spec("ansible_collections.community.general") is None:
        pytest.skip("community.general is not installed: pip install ansible")
    return str(command)


@pytest.fixture
def playbook_command() -> str:
    """``ansible-playbook`` beside this Python; skips when Ansible is not installed."""
    return _ansible_playbook()


def _with_template(server: RunningServer) -> RunningServer:
    session = XenAPI.Session(server.url)
    session.xenapi.login_with_password("root", PASSWORD, "2.21", "ansible test")
    try:
        record = vm_args(
            name_label="ansible-template",
            name_description="a template",
            is_a_template=True,
            other_config=TEMPLATE_OTHER_CONFIG,
        )
        session.xenapi.VM.create(record)
    finally:
        session.xenapi.session.logout()
    return server


@pytest.fixture
def server() -> Iterator[RunningServer]:
    """The embedded server with one template, as a client finds a fresh pool."""
    running = start_in_thread(ServerConfig(password=PASSWORD))
    try:
        yield _with_template(running)
    finally:
        running.stop()


def _run(command: str, url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(tmp / "local"),
        "ANSIBLE_HOME": str(tmp / "home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }
    extra = f"xen_url={url} xen_password={PASSWORD}"
    try:
        return subprocess.run(
            [command, str(PLAYBOOK), "-e", extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"ansible-playbook did not finish within {RUN_TIMEOUT_S} s: {expired.stdout!r}")


def _guest_names(server: RunningServer) -> set[str]:
    world = server.state.world
    return {str(vm["name_label"]) for vm in world.vms.values() if not vm["is_control_domain"]}


@pytest.mark.slow
def test_ansible_modules_deploy_reconfigure_power_and_remove_vms(
    playbook_command: str, server: RunningServer, tmp_path: Path
) -> None:
    before = _guest_names(server)
    assert "ansible-template" in before
    completed = _run(playbook_command, server.url, tmp_path)
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-2000:]
    assert "failed=0" in completed.stdout
    assert _guest_names(server) == before  # both deployed VMs removed, nothing else touched


class _NoDefaultSR:
    """A server that does not know pool.get_default_SR, as the simulator once was."""

    def apply(self, world: World, call: Call, honest: Transition) -> Result:
        if call.method == "pool.get_default_SR":
            return (Branch(Failure("MESSAGE_METHOD_UNKNOWN", (call.method,)), world),)
        return honest(world, call)


@pytest.mark.slow
def test_the_playbook_fails_on_a_server_missing_a_call_the_modules_make(
    playbook_command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "lookup", lambda names: (_NoDefaultSR(),))
    running = start_in_thread(ServerConfig(password=PASSWORD, faults=("no-default-sr",)))
    try:
        completed = _run(playbook_command, _with_template(running).url, tmp_path)
    finally:
        running.stop()
    assert completed.returncode != 0
    assert "MESSAGE_METHOD_UNKNOWN', 'pool.get_default_SR'" in completed.stdout
