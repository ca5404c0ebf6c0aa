"""`xapi-conformance run` end to end: usage errors, dead targets, the reference server, safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.areas.sweeps import CELLS, LIFECYCLE_MESSAGES
from conformance.runner.cli import main
from conformance.server.config import ServerConfig
from conformance.server.process import RunningServer, start_in_thread
from conformance.targets import XmlRpcTarget
from models.coverage import coverage_cells
from models.outcome import Success
from tests.conformance import hostile
from tests.models.helpers import vm_args

pytestmark = pytest.mark.slow

WAIT_S = 120.0
"""The longest a test waits for what follows from what it did (a run's calls, its end)."""


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``xapi-conformance`` as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "conformance.runner.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )


def summary(report_dir: Path) -> dict[str, object]:
    data = json.loads((report_dir / "summary.json").read_text())
    assert isinstance(data, dict)
    return data


USAGE_ERRORS = [
    ("run", "--max-examples", "0"),
    ("run", "--profile", "weekly"),
    ("run", "-n", "-1"),
    ("run", "--waivers", "/nonexistent/waivers.toml"),
    ("run", "--frobnicate"),
    ("serve", "--account", "nocolons"),
    ("serve", "--hosts", "0"),
]


@pytest.mark.parametrize("args", USAGE_ERRORS)
def test_usage_errors_exit_2_with_one_line(
    args: tuple[str, ...],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``main`` as the console script calls it, in-process: a usage error is found before any
    run or server starts (one that starts fails the test instead of running)."""
    for module, name in (
        ("conformance.runner.command", "_run"),
        ("conformance.server.process", "serve_forever"),
    ):
        monkeypatch.setattr(f"{module}.{name}", _must_not_start)
    argv = [*args, "--report-dir", str(tmp_path)] if args[0] == "run" else list(args)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("xapi-conformance: ") and err.count("\n") == 1, err


def _must_not_start(*_args: object) -> int:
    raise AssertionError("a usage error started a run or a server")


@pytest.mark.parametrize("args", [USAGE_ERRORS[4], USAGE_ERRORS[5]], ids=["run", "serve"])
def test_usage_errors_exit_2_without_traceback(args: tuple[str, ...], tmp_path: Path) -> None:
    """The same through the console script's process (its exit status and stderr)."""
    result = run(*args, "--report-dir", str(tmp_path)) if args[0] == "run" else run(*args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("xapi-conformance: ")


def test_password_is_never_taken_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XAPI_PASSWORD", raising=False)
    assert main(["run", "--target", "http://127.0.0.1:9/", "--report-dir", str(tmp_path)]) == 2
    assert "XAPI_PASSWORD" in capsys.readouterr().err


def test_dead_target_exits_3_with_an_error_summary(tmp_path: Path) -> None:
    result = run(
        "run",
        "--target",
        "http://127.0.0.1:9/",
        "--report-dir",
        str(tmp_path),
        env={"XAPI_PASSWORD": "pw-not-shown"},
    )
    assert result.returncode == 3
    assert "cannot reach" in result.stderr
    data = summary(tmp_path)
    assert data["verdict"] == "error"
    assert "pw-not-shown" not in (tmp_path / "summary.json").read_text()


def test_wrong_password_exits_3(tmp_path: Path) -> None:
    server = start_in_thread(ServerConfig(password="right"))
    try:
        result = run(
            "run",
            "--target",
            server.url,
            "--report-dir",
            str(tmp_path),
            env={"XAPI_PASSWORD": "wrong"},
        )
    finally:
        server.stop()
    assert result.returncode == 3
    assert "SESSION_AUTHENTICATION_FAILED" in result.stderr
    assert "wrong" not in result.stderr


AREA_EXAMPLES = "3"
"""Examples an area machine runs in the whole runs below (``dev`` runs 10): every area and every
sweep cell still runs, and the seed-7 run judges every cell of the matrix (the test asks 95 %),
but each area's machine runs 3 examples, a third of its CPU. What the areas' machines find with
more examples is the areas' own tests (test_harness.py, test_fault_detection.py)."""


def test_reference_server_conforms_over_json_rpc_and_every_lifecycle_cell_is_exercised(
    tmp_path: Path,
) -> None:
    """A whole ``dev`` run of the embedded server over JSON-RPC (the external runs below speak
    XML-RPC), with ``AREA_EXAMPLES`` examples an area."""
    result = run(
        "run", "--profile", "dev", "--protocol", "jsonrpc", "--seed", "7", "-n", "2",
        "--max-examples", AREA_EXAMPLES, "--report-dir", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    data = summary(tmp_path)
    assert data["verdict"] == "conforms" and data["protocol"] == "jsonrpc"
    assert data["seed"] == 7
    assert data["examples"] > 100 and data["steps"] > 1000  # type: ignore[operator]
    cells = data["coverage"]["cells"]  # type: ignore[index]
    lifecycle = [
        c for c in cells if c["method"] in ("VM.start", "VM.suspend", "VM.clone", "VM.destroy")
    ]
    assert lifecycle and all(c["count"] > 0 for c in lifecycle)
    swept = {(f"VM.{m}", s, k) for m in LIFECYCLE_MESSAGES for s, k in CELLS}
    counts = {(c["method"], c["power_state"], c["vm_kind"]): c["count"] for c in cells}
    assert all(counts[cell] > 0 for cell in swept)
    assert len(cells) == len(coverage_cells())
    judged = [c for c in cells if c["count"] > 0]
    assert len(judged) >= 0.95 * len(cells)
    assert all(c["status"] == "ok" for c in judged)
    messages = data["coverage"]["messages"]  # type: ignore[index]
    assert len(messages) == 219
    assert next(m for m in messages if m["method"] == "VM.create")["count"] > 0
    for name in ("report.html", "junit.xml"):
        assert (tmp_path / name).stat().st_size > 0
    assert any((tmp_path / "allure-results").iterdir())


@pytest.fixture
def populated_server() -> Iterator[tuple[RunningServer, dict[str, object]]]:
    """An embedded server with one host and DMC licensed off, whose guests have no PV drivers
    (facts the suite must discover), holding VMs the suite did not create, in several states."""
    server = start_in_thread(
        ServerConfig(password="owner-pw", guest_agent=False, restrict_dmc=True, hosts=1)
    )
    target = XmlRpcTarget(server.url)
    session = target.call("session.login_with_password", "root", "owner-pw")
    assert isinstance(session, Success)
    s = session.value
    running = target.call("VM.create", s, vm_args(name_label="production db"))
    template = target.call("VM.create", s, vm_args(name_label="golden", is_a_template=True))
    target.call("VM.start", s, running.value, False, False)  # type: ignore[union-attr]
    target.call("VM.snapshot", s, running.value, "nightly")  # type: ignore[union-attr]
    del template
    before = target.call("VM.get_all_records", s)
    assert isinstance(before, Success) and isinstance(before.value, dict)
    try:
        yield server, dict(before.value)
    finally:
        server.stop()


def test_a_run_conforms_on_one_host_without_dmc_nor_pv_drivers_and_leaves_existing_vms_alone(
    populated_server: tuple[RunningServer, dict[str, object]], tmp_path: Path
) -> None:
    server, before = populated_server
    result = _run_on(server, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    target = XmlRpcTarget(server.url)
    session = target.call("session.login_with_password", "root", "owner-pw")
    after = target.call("VM.get_all_records", session.value)  # type: ignore[union-attr]
    assert isinstance(after, Success) and isinstance(after.value, dict)
    assert set(after.value) == set(before), "the run left VMs behind or removed some"
    for ref, record in before.items():
        assert after.value[ref] == record, f"{record['name_label']} was changed"  # type: ignore[index]


def _run_on(server: RunningServer, report_dir: Path) -> subprocess.CompletedProcess[str]:
    """A whole ``dev`` run against ``server`` as an external target, ``AREA_EXAMPLES`` examples
    an area: the facts the suite discovers (one host, no DMC, no PV drivers) change what every
    sweep cell and area step expects, whatever the number of examples."""
    return run(
        "run",
        "--target",
        server.url,
        "--profile",
        "dev",
        "--seed",
        "2",
        "-n",
        "2",
        "--max-examples",
        AREA_EXAMPLES,
        "--report-dir",
        str(report_dir),
        env={"XAPI_PASSWORD": "owner-pw"},
    )


CREATES_BEFORE_SIGTERM = 3
"""The run's VM.create calls the server has answered when the test sends SIGTERM."""


def test_sigterm_mid_run_removes_every_suite_vm(tmp_path: Path) -> None:
    """SIGTERM once the run has made VMs (its calls go through a proxy that counts them):
    every VM it made is gone, and the reports say "error"."""
    server = start_in_thread(ServerConfig(password="owner-pw"))
    created = threading.Semaphore(0)

    def count_creates(request: hostile.Request, body: bytes) -> bytes:
        if hostile.method_of(request) == "VM.create":
            created.release()
        return body

    try:
        target = XmlRpcTarget(server.url)
        session = target.call("session.login_with_password", "root", "owner-pw")
        assert isinstance(session, Success)
        before = target.call("VM.get_all", session.value)
        with hostile.proxy(server.url, rewrite=count_creates) as (front, _relay):
            process = subprocess.Popen(
                [
                    sys.executable, "-m", "conformance.runner.cli", "run", "--target", front.url,
                    "--profile", "thorough", "-n", "2", "--report-dir", str(tmp_path),
                ],
                env={**os.environ, "XAPI_PASSWORD": "owner-pw"},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            try:
                for _ in range(CREATES_BEFORE_SIGTERM):
                    assert created.acquire(timeout=WAIT_S), "the run made no VM"
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=WAIT_S)
            finally:
                process.kill()
        stdout, _stderr = process.communicate()
        assert code == 3, stdout[-3000:] + str(summary(tmp_path)["findings"])[:3000]
        after = target.call("VM.get_all", session.value)
        assert isinstance(after, Success) and isinstance(before, Success)
        assert sorted(after.value) == sorted(before.value)  # type: ignore[arg-type]
        assert summary(tmp_path)["verdict"] == "error"
    finally:
        server.stop()


def test_report_builds_a_matrix_across_runs(tmp_path: Path) -> None:
    honest, faulty, out = tmp_path / "honest", tmp_path / "faulty", tmp_path / "matrix"
    assert (
        run("run", "--profile", "dev", "-k", "memory_sweep", "--report-dir", str(honest)).returncode
        == 0
    )
    result = run(
        "run",
        "--profile",
        "dev",
        "-k",
        "memory_sweep",
        "--fault",
        "memory-order-unchecked",
        "--report-dir",
        str(faulty),
    )
    assert result.returncode == 1
    assert main(["report", str(honest), str(faulty), "--out", str(out)]) == 0
    matrix = (out / "matrix.md").read_text()
    row = next(line for line in matrix.splitlines() if "VM.set_memory_dynamic_range" in line)
    assert "ok" in row and "diverges" in row
    assert (out / "matrix.html").stat().st_size > 0
    assert main(["report", str(tmp_path / "nowhere")]) == 2


def test_a_run_leaves_nothing_in_the_directory_it_starts_from(tmp_path: Path) -> None:
    """Hypothesis keeps its cache in the user's cache directory, not in a ``.hypothesis/`` in
    the working directory; the reports go where ``--report-dir`` says."""
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    work = tmp_path / "work"
    work.mkdir()
    report = tmp_path / "report"
    args = ("run", "--profile", "dev", "-k", "test_area and fields", "--max-examples", "3")
    result = run(*args, "--report-dir", str(report), env=env, cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(work.iterdir()) == []
    assert (cache / "xapi-conformance" / "hypothesis").is_dir()


def test_fault_option_is_for_the_embedded_server_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XAPI_PASSWORD", "x")
    target = ["--target", "http://127.0.0.1:9/", "--fault", "stale-record"]
    assert main(["run", *target, "--report-dir", str(tmp_path)]) == 2
    assert "--fault seeds the embedded server" in capsys.readouterr().err
