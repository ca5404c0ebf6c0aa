"""pytest11 entry point of xapi-conformance.

Inert until used: at load it only adds options; the harness, the model and the reports are
imported when a suite test first asks for the ``xapi_connection`` fixture. Nothing else in a
test session is touched.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hypothesis import settings

    from conformance.engine.harness import Connection
    from conformance.judge.compare import Strictness
    from conformance.runner.budget import Budget
    from conformance.runner.connect import RoleAccount, RunConfig
    from conformance.runner.progress import LiveProgress
    from conformance.runner.results import Part

__all__ = ["pytest_addoption", "pytest_configure", "run_started"]

PART_KEY: pytest.StashKey[Part] = pytest.StashKey()
TOKEN_KEY = pytest.StashKey[str]()
CONNECTION_KEY: pytest.StashKey[Connection] = pytest.StashKey()
STARTED_KEY = pytest.StashKey[datetime.datetime]()
WRITTEN_KEY = pytest.StashKey[Path]()
BUDGET_KEY: pytest.StashKey[Budget | None] = pytest.StashKey()
LIVE_KEY: pytest.StashKey[LiveProgress] = pytest.StashKey()
SUITE_MODULE = "test_conformance.py"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The --xapi-* options: the twins of ``run``'s (``conformance.runner.options.OPTIONS``)."""
    from conformance.runner.options import add_plugin_options

    group = parser.getgroup("xapi-conformance", "XenAPI conformance suite")
    add_plugin_options(group.addoption)


def pytest_configure(config: pytest.Config) -> None:
    """Remember when the run started and prepare this process's part under one run token.

    Without a seed, one is picked here (xdist workers inherit it); the suite's fixture hands it
    to Hypothesis, so that every run can be repeated with ``--xapi-seed``.
    """
    _settle_seed(config)
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    config.stash[STARTED_KEY] = run_started(workerinput)
    config.stash[TOKEN_KEY] = (
        str(workerinput["xapi_run_token"]) if workerinput else secrets.token_hex(6)
    )
    config.stash[BUDGET_KEY] = None
    if config.getoption("xapi_time_budget", None) is not None:
        from conformance.runner.budget import BUDGET_DIR, session_budget

        config.stash[BUDGET_KEY] = session_budget(
            config.getoption("xapi_time_budget"),
            config.stash[STARTED_KEY],
            workers=int(workerinput["workercount"]) if workerinput else 1,
            board=_report_dir(config) / BUDGET_DIR / config.stash[TOKEN_KEY],
        )
    from conformance.runner.results import Part

    config.stash[PART_KEY] = Part()
    if workerinput is None:
        _baseline(config)
    if workerinput and config.getoption("xapi_run_id"):
        from conformance.runner import interrupts

        # run's workers: a second Ctrl-C exits without a word; the controller's signal stops
        # their judging too (the marker)
        interrupts.install(quiet=True, marker=_report_dir(config) / interrupts.MARKER)


def _settle_seed(config: pytest.Config) -> None:
    """One seed for the summary and for Hypothesis: --xapi-seed, else --hypothesis-seed, else
    one picked at random."""
    option = config.option
    if getattr(option, "xapi_seed", None) is None:
        given = str(getattr(option, "hypothesis_seed", None) or "")
        option.xapi_seed = int(given) if given.isdigit() else secrets.randbelow(2**31)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The suite's pieces in the order that spends the run well: the longest first, so that
    workers end together; with a time budget, the first piece of every sweep and area first,
    each piece's estimated cost its weight in the budget's shares."""
    pieces = {item.name: _piece(item) for item in items if _piece(item) is not None}
    if not pieces:
        return
    from conformance.runner import split

    budget = config.stash.get(BUDGET_KEY, None)
    costs = {name: piece.cost for name, piece in pieces.items()}
    if budget is None:
        order = split.longest_first(costs)
    else:
        order = split.budget_order(pieces)
        budget.weights = costs
    position = {name: index for index, name in enumerate(order)}
    items.sort(key=lambda item: position.get(item.name, len(position)))


def _piece(item: pytest.Item) -> Any:
    """The suite piece (``conformance.runner.split.Piece``) a test runs, if it is one."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("piece") if callspec is not None else None


@pytest.fixture(scope="session")
def xapi_budget(request: pytest.FixtureRequest) -> Budget | None:
    """The run's time budget (``--xapi-time-budget``), or None for a run without one."""
    return request.config.stash.get(BUDGET_KEY, None)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker writes its part under the controller's run token."""
    node.workerinput["xapi_run_token"] = node.config.stash[TOKEN_KEY]
    node.workerinput["xapi_started"] = node.config.stash[STARTED_KEY].isoformat()


def run_started(workerinput: dict[str, Any] | None) -> datetime.datetime:
    """When the run started: now in the controller (or a lone process), the controller's start
    in a worker, so that a time budget counts the time workers took to start up."""
    if workerinput and "xapi_started" in workerinput:
        return datetime.datetime.fromisoformat(str(workerinput["xapi_started"]))
    return datetime.datetime.now(datetime.UTC)


def _report_dir(config: pytest.Config) -> Path:
    return Path(config.getoption("xapi_report_dir")).resolve()


def _role(text: str) -> RoleAccount:
    from conformance.errors import UsageError
    from conformance.runner.connect import RoleAccount

    role, sep, rest = text.partition("=")
    user, sep2, env = rest.rpartition(":")
    if not (sep and sep2 and role and user and env):
        raise UsageError(f"--role-account expects ROLE=USER:PASSWORD_ENV, got {text!r}")
    if env not in os.environ:
        raise UsageError(f"--role-account {role}: environment variable {env} is not set")
    return RoleAccount(role, user, os.environ[env], env)


def run_config(config: pytest.Config) -> RunConfig:
    """The run's configuration from the options and the environment."""
    from conformance.errors import UsageError
    from conformance.runner.connect import RunConfig, target_settings

    target = config.getoption("xapi_target")
    env = config.getoption("xapi_password_env")
    if target and env not in os.environ:
        raise UsageError(
            f"set the password of {config.getoption('xapi_user')!r} in ${env} (never on the command line)"
        )
    strictness: Strictness = config.getoption("xapi_strictness")
    waivers = config.getoption("xapi_waivers")
    return RunConfig(
        target=target,
        user=config.getoption("xapi_user"),
        password=os.environ.get(env, ""),
        password_env=env,
        protocol=config.getoption("xapi_protocol"),
        strictness=strictness,
        waivers=Path(waivers) if waivers else None,
        roles=tuple(_role(r) for r in config.getoption("xapi_role_account")),
        settings=target_settings(
            config.getoption("xapi_timeout"),
            config.getoption("xapi_max_response_mb"),
            config.getoption("xapi_ca_bundle"),
            config.getoption("xapi_insecure"),
        ),
        server_faults=tuple(config.getoption("xapi_fault")),
        xapi_version=config.getoption("xapi_version") or "",
        run_id=f"{config.getoption('xapi_run_id') or secrets.token_hex(4)}.{_worker(config)}",
    )


@pytest.fixture(scope="session")
def xapi_connection(request: pytest.FixtureRequest) -> Iterator[Connection]:
    """The logged-in target for this test session (the embedded server unless --xapi-target)."""
    from conformance.runner import interrupts
    from conformance.runner.connect import open_connection
    from conformance.runner.results import target_identity

    connection, close = open_connection(run_config(request.config))
    connection.survey = _surveys(request.config)
    connection.stopping = interrupts.interrupted
    request.config.stash[CONNECTION_KEY] = connection
    part = request.config.stash[PART_KEY]
    if not part.identity:
        part.identity.update(target_identity(connection.target, connection.root.session))
    progress = _Progress(request.config, connection)
    progress.start()
    try:
        yield connection
    finally:
        progress.stop()
        close()


def _surveys(config: pytest.Config) -> bool:
    """Whether the run goes on past divergences: unless ``-x`` or ``--max-findings`` asks to
    stop early."""
    return (
        not config.getoption("exitfirst", False) and config.getoption("xapi_max_findings") is None
    )


@pytest.fixture(scope="session")
def xapi_settings(request: pytest.FixtureRequest) -> settings:
    """Hypothesis settings for the area machines, from the profile."""
    from conformance.runner.profiles import hypothesis_settings

    config = request.config
    return hypothesis_settings(
        config.getoption("xapi_profile"), config.getoption("xapi_max_examples")
    )


def _copied(part: Part) -> Part:
    """``part`` with its containers copied; its records are frozen, so they are shared (a deep
    copy of a survey's divergences, whose answers hold whole VM records, took seconds)."""
    return dataclasses.replace(
        part,
        coverage=Counter(part.coverage),
        divergences=list(part.divergences),
        errors=list(part.errors),
        ending=list(part.ending),
        messages=Counter(part.messages),
        areas=set(part.areas),
        identity=dict(part.identity),
        not_run=dict(part.not_run),
        selected=set(part.selected),
    )


_RECORDS: dict[int, tuple[Any, Any]] = {}
"""Each divergence's report record, redacted, by the id of the divergence (kept alive beside
it): made once, not every second."""


def _recorded(divergence: Any, secrets: list[str]) -> Any:
    """``divergence`` (an info of the tally or a record) as a redacted report record."""
    from conformance.judge.divergence import DivergenceInfo
    from conformance.runner.results import divergence_record
    from reports import redact_value

    kept = _RECORDS.get(id(divergence))
    if kept is None or kept[0] is not divergence:
        record = (
            divergence_record(divergence) if isinstance(divergence, DivergenceInfo) else divergence
        )
        kept = (divergence, redact_value(record, secrets))
        _RECORDS[id(divergence)] = kept
    return kept[1]


def _absorb(part: Part, connection: Connection) -> None:
    tally = connection.tally
    counts = tally.counts()
    part.examples += counts.examples
    part.steps += counts.steps
    part.coverage.update(counts.coverage)
    part.messages.update(counts.messages)
    part.divergences.extend(tally.divergences)  # type: ignore[arg-type]  # recorded below


def _snapshot(config: pytest.Config) -> Part:
    """This process's results so far (its tests' records and the connection's tally), with
    every password and session ref masked. Taken every second, so an interrupted or killed
    worker still counts."""
    from reports import redact_value

    part = _copied(config.stash[PART_KEY])
    connection = config.stash.get(CONNECTION_KEY, None)
    if connection is not None:
        _absorb(part, connection)
    known = _secrets(config)
    part.divergences = [_recorded(d, known) for d in part.divergences]
    part.errors = [str(redact_value(e, known)) for e in part.errors]
    part.ending = [str(redact_value(e, known)) for e in part.ending]
    return part


def _secrets(config: pytest.Config) -> list[str]:
    """Every password the run uses, and every session ref its target handed out."""
    known = [os.environ.get(config.getoption("xapi_password_env"), "")]
    known += [
        os.environ.get(r.rpartition(":")[2], "") for r in config.getoption("xapi_role_account")
    ]
    connection = config.stash.get(CONNECTION_KEY, None)
    if connection is not None:
        known += [
            secret
            for login in connection.logins()
            for secret in (login.session, login.account.password)
        ]
        known += sorted(getattr(connection.target, "secrets", ()))
    return [secret for secret in known if secret]


class _Progress:
    """Writes this process's counters to the report directory every second, for ``run``."""

    def __init__(self, config: pytest.Config, connection: Connection) -> None:
        del connection
        self._path = _report_dir(config) / ".progress" / f"{_worker(config)}.txt"
        self._config = config
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="xapi-progress")

    def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._write(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self._write()

    def _write(self, *, final: bool = False) -> None:
        from conformance.runner.results import write_part

        try:
            snapshot = _snapshot(self._config)
        except RuntimeError:  # the tally changed while it was copied: next second
            return
        found = _FINDINGS.ids(snapshot, now=None if final else time.monotonic())
        counts = f"{snapshot.examples} {snapshot.steps} {len(found)}\n{' '.join(found)}\n"
        write_part(_parts_dir(self._config), _worker(self._config), snapshot)  # first: counts
        self._path.write_text(counts, encoding="utf-8")  # shown are never ahead of those saved


class _FindingIds:
    """The ids of the findings a process's divergences make, grouped as the verdict groups
    them (``reports.group_findings``): worked out again only when a divergence was added, at
    most every ``EVERY`` seconds while the run goes on (a survey's thousands of divergences)."""

    EVERY = 5.0

    def __init__(self) -> None:
        self._counted = -1
        self._at = -math.inf
        self._ids: tuple[str, ...] = ()

    def ids(self, part: Part, now: float | None = None) -> tuple[str, ...]:
        """The finding ids of ``part``'s divergences, sorted (``now``: the clock, None for the
        last figures, which are always exact)."""
        changed = len(part.divergences) != self._counted
        if now is None or (changed and now - self._at >= self.EVERY):
            from reports import group_findings

            self._ids = tuple(sorted(f.id for f in group_findings(part.divergences)))
            self._counted = len(part.divergences)
            self._at = now if now is not None else self._at
        return self._ids


_FINDINGS = _FindingIds()
"""This process's findings so far, for the progress line."""


def _show_live_progress(config: pytest.Config) -> None:
    """The plugin used directly (not through ``run``, which shows its own): plain progress
    lines on the terminal from the first suite test on. Called where pytest's capture is
    suspended, so that the terminal duplicated here is the real one."""
    if LIVE_KEY in config.stash or config.getoption("xapi_run_id"):
        return
    if getattr(config, "workerinput", None) is not None:
        return
    from conformance.runner.progress import PROGRESS_DIR, LiveProgress, terminal

    live = LiveProgress(
        _report_dir(config) / PROGRESS_DIR, terminal(), False, "\nxapi-conformance: "
    )
    config.stash[LIVE_KEY] = live
    live.start()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """A lone process starts showing progress at its first suite test."""
    del nextitem
    if "xapi_connection" in getattr(item, "fixturenames", ()):
        _show_live_progress(item.config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """xdist's controller starts showing progress once a worker has collected suite tests."""
    if any(i.partition("::")[0].endswith(SUITE_MODULE) for i in ids):
        _show_live_progress(node.config)


def _worker(config: pytest.Config) -> str:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Record divergences and tool errors of the suite's tests; attach the reproducer.

    Before any report is made (terminal, JUnit, Allure), the error's text loses every password
    and session ref of the run.
    """
    if call.excinfo is not None and CONNECTION_KEY in item.config.stash:
        _redact_error(call.excinfo.value, _secrets(item.config))
    report = yield
    if "xapi_connection" not in getattr(item, "fixturenames", ()):
        return report
    part = item.config.stash[PART_KEY]
    if call.when == "call":
        skipped = _budget_left_out(item)
        if skipped:
            part.not_run.setdefault(item_area(item), skipped)
            report.outcome = "skipped"
            report.longrepr = (str(item.path), 0, f"Skipped: {skipped}")
        else:
            part.areas.add(item_area(item))
    if call.excinfo is None:
        return report
    from conformance.judge.divergence import Divergence
    from conformance.runner.results import divergence_record

    error = call.excinfo.value
    if isinstance(error, Divergence):
        part.divergences.append(divergence_record(error.info))
        item.user_properties.append(("reproducer", error.info.reproducer))
        _stop_at_max_findings(item)
    elif not isinstance(error, AssertionError):
        cause, fatal = _real_cause(item.config, error)
        if fatal:
            part.ending.append(cause)  # the target's problem, said once: not the test's name
        else:
            part.errors.append(f"{item.name}: {cause}")
        report.longrepr = f"{item.nodeid}: {cause}"
        if fatal and not item.session.shouldstop:
            item.session.shouldstop = cause
    return report


def _budget_left_out(item: pytest.Item) -> str:
    """Why the time budget kept ``item`` from running at all, or ""."""
    budget = item.config.stash.get(BUDGET_KEY, None)
    if budget is None or f"{item.name}: not run" not in budget.left_out:
        return ""
    return "time budget: not run (its share was spent)"


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Areas left out by ``-k`` are reported as not run (unless another of their tests runs)."""
    if not items or PART_KEY not in items[0].config.stash:
        return
    from conformance.runner.results import NOT_SELECTED

    part = items[0].config.stash[PART_KEY]
    for item in items:
        if "xapi_connection" in getattr(item, "fixturenames", ()):
            part.not_run.setdefault(item_area(item), NOT_SELECTED)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The areas selected to run: one of them not run was stopped, not left out by ``-k``."""
    if PART_KEY not in session.config.stash:
        return
    part = session.config.stash[PART_KEY]
    for item in session.items:
        if "xapi_connection" in getattr(item, "fixturenames", ()):
            part.selected.add(item_area(item))


def item_area(item: pytest.Item) -> str:
    """The area a suite test exercises (its piece's area, or its sweep's area)."""
    from conformance.areas.registry import SWEEP_AREAS

    piece = _piece(item)
    if piece is not None and piece.is_area:
        return str(piece.family)
    return SWEEP_AREAS.get(getattr(item, "originalname", item.name), item.name)


def _stop_at_max_findings(item: pytest.Item) -> None:
    limit = item.config.getoption("xapi_max_findings")
    if limit is None:
        return
    from reports import group_findings

    found = len(group_findings(item.config.stash[PART_KEY].divergences))
    if found >= limit:
        item.session.shouldfail = f"--max-findings {limit}: {found} finding(s) seen"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else ""


def _real_cause(config: pytest.Config, error: BaseException) -> tuple[str, bool]:
    """What went wrong, named by its root (a stalled or unreachable target, not Hypothesis'
    Flaky* that a failing target provokes), and whether it ends the run."""
    from conformance.errors import (
        ConformanceError,
        ProtocolError,
        TargetStalled,
        TargetTimeout,
        TargetUnreachable,
    )

    connection = config.stash.get(CONNECTION_KEY, None)
    stalled = str(getattr(connection.target, "stalled", "")) if connection else ""
    if stalled:
        return f"TargetStalled: {stalled}", True
    root = _find(error, ConformanceError) or error
    fatal = isinstance(root, TargetStalled | TargetUnreachable | ProtocolError) and not isinstance(
        root, TargetTimeout
    )
    return f"{type(root).__name__}: {_first_line(root)}", fatal


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, then its causes, contexts and grouped exceptions, each once."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += list(getattr(current, "exceptions", ()))


def _redact_error(error: BaseException, secrets: list[str]) -> None:
    """Mask ``secrets`` in the messages and notes of ``error`` and of what it wraps."""
    from reports import redact

    for current in _chain(error):
        current.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in current.args)
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            notes[:] = [redact(n, secrets) if isinstance(n, str) else n for n in notes]


def _find(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` in ``error``, its causes, contexts and grouped exceptions."""
    return next((e for e in _chain(error) if isinstance(e, kind)), None)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    """An interrupt of the suite reaches pytest as a fresh ``KeyboardInterrupt`` raised here.

    A signal can land on an instruction that has no line number (Python 3.11 and later);
    pytest's report of the interrupt then fails on that traceback entry with a TypeError that
    escapes as an internal error, with the run taken for finished. The interrupt raised here
    carries only frames that have lines. Other test sessions keep their interrupts as they were.
    """
    try:
        return (yield)
    except KeyboardInterrupt as interrupt:
        if not (session.config.getoption("xapi_run_id") or CONNECTION_KEY in session.config.stash):
            raise
        raise KeyboardInterrupt(*interrupt.args) from None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Workers save their part; the controller (or a lone process) writes the reports.

    Last of its kind: the session's fixtures are torn down (an interrupted run's too) and
    junit.xml is written, so the reports see every count and every file can be redacted.
    """
    config = session.config
    if PART_KEY not in config.stash or not _used(session):
        return
    from conformance.runner.results import write_part

    parts_dir = _parts_dir(config)
    if CONNECTION_KEY in config.stash:
        write_part(parts_dir, _worker(config), _snapshot(config))
        budget = config.stash.get(BUDGET_KEY, None)
        if budget is not None:
            from conformance.runner.budget import write_record

            write_record(budget, _report_dir(config), _worker(config))
    if getattr(config, "workerinput", None) is not None:
        return
    from conformance.runner import interrupts

    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or interrupts.received() > 0
    _write_reports(config, parts_dir, interrupted=interrupted)
    if LIVE_KEY in config.stash:
        config.stash[LIVE_KEY].stop()
    shutil.rmtree(parts_dir.parent, ignore_errors=True)
    if not config.getoption("xapi_run_id"):  # ``run`` reads the last figures, then removes it
        shutil.rmtree(_report_dir(config) / ".progress", ignore_errors=True)


def _parts_dir(config: pytest.Config) -> Path:
    return _report_dir(config) / ".parts" / config.stash[TOKEN_KEY]


def _used(session: pytest.Session) -> bool:
    """Whether this process, or one of its workers, ran a suite test."""
    return CONNECTION_KEY in session.config.stash or _parts_dir(session.config).exists()


def _baseline(config: pytest.Config) -> Any:
    """The baseline run's summary, or None; a clear usage error when it cannot be read."""
    from reports import read_summary

    path = config.getoption("xapi_baseline")
    if not path:
        return None
    try:
        return read_summary(Path(path))
    except (OSError, ValueError) as error:
        raise pytest.UsageError(
            f"--baseline {path}: not a summary.json this tool wrote ({error})"
        ) from None


def _write_reports(config: pytest.Config, parts_dir: Path, interrupted: bool) -> None:
    from conformance.runner.results import RunFacts, merge_parts, read_parts, tool_version
    from reports import redact_files, write_reports

    report_dir = _report_dir(config)
    facts = RunFacts(
        target=config.getoption("xapi_target") or "embedded",
        protocol=config.getoption("xapi_protocol"),
        profile=config.getoption("xapi_profile"),
        seed=config.getoption("xapi_seed"),
        strictness=config.getoption("xapi_strictness"),
        started=config.stash[STARTED_KEY],
        tool_version=tool_version(),
        baseline=_baseline(config),
        baseline_path=config.getoption("xapi_baseline") or "",
        xapi_version=config.getoption("xapi_version") or "",
    )
    summary = merge_parts(read_parts(parts_dir), facts, interrupted=interrupted)
    if config.stash.get(BUDGET_KEY, None) is not None:
        from conformance.runner.budget import BUDGET_DIR, merged_record

        summary = dataclasses.replace(summary, budget=merged_record(report_dir))
        shutil.rmtree(report_dir / BUDGET_DIR, ignore_errors=True)
    secrets = _secrets(config)
    config.stash[WRITTEN_KEY] = write_reports(report_dir, summary, secrets=secrets)
    outputs = [
        report_dir,
        config.getoption("xmlpath", None),
        config.getoption("allure_report_dir", None),
    ]
    # pytest.log is still open for pytest's last lines: ``run`` redacts it once closed
    redact_files([Path(p) for p in outputs if p], secrets, skip={"pytest.log"})


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Used as a plugin directly (not through ``run``): say where the reports went."""
    if WRITTEN_KEY in config.stash and not config.getoption("xapi_run_id"):
        terminalreporter.write_line(
            f"xapi-conformance: reports in {config.stash[WRITTEN_KEY].parent}"
        )
