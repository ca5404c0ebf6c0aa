"""What a run learns from an external target: memory is judged exactly where every host's free
memory, as the target computes it, is the model's."""

from __future__ import annotations

from conformance.engine.harness import Harness
from conformance.engine.importer import memory_accounted
from conformance.faults import lookup
from conformance.judge.divergence import Divergence
from conformance.runner.connect import RunConfig, open_connection
from conformance.server.config import ServerConfig
from conformance.server.process import start_in_thread
from conformance.targets.inprocess import InProcessTarget
from models.outcome import Failure, Outcome, Success, Value
from models.world import Facts
from tests.conformance.test_harness import PASSWORD, _server, connect, new_vm

IN_DOUBT = Facts(guest_has_pv_drivers=None, host_memory_sufficient=None)


class _FreeMemoryAs:
    """A target answering ``host.compute_free_memory`` with ``answer`` (else as ``inner``)."""

    def __init__(self, inner: InProcessTarget, answer: Outcome) -> None:
        self._inner, self._answer = inner, answer

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def call(self, method: str, *args: Value) -> Outcome:
        if method == "host.compute_free_memory":
            return self._answer
        return self._inner.call(method, *args)


def _accounted(answer: Outcome | None = None) -> bool:
    connection = connect(wrap=(lambda inner: _FreeMemoryAs(inner, answer)) if answer else None)
    return memory_accounted(connection.target, connection.logins())


def test_the_reference_accounts_memory_as_the_model() -> None:
    assert _accounted()


def test_a_target_without_the_call_or_with_another_figure_keeps_memory_in_doubt() -> None:
    assert not _accounted(Failure("MESSAGE_METHOD_UNKNOWN", ("host.compute_free_memory",)))
    assert not _accounted(Success("1024"))
    assert not _accounted(Success(True))


def test_a_run_against_a_served_reference_judges_memory_exactly() -> None:
    server = start_in_thread(ServerConfig(password=PASSWORD))
    try:
        connection, close = open_connection(RunConfig(target=server.url, password=PASSWORD))
        try:
            assert connection.facts.host_memory_sufficient is True
        finally:
            close()
    finally:
        server.stop()


def _start_a_new_vm(facts: Facts) -> None:
    harness = Harness(connect(_server(faults=lookup(["start-fails"])), facts=facts), "lifecycle")
    try:
        harness.call("VM.start", new_vm(harness), False, False)
    finally:
        harness.teardown()


def test_a_start_refused_for_want_of_memory_diverges_only_where_memory_is_known() -> None:
    _start_a_new_vm(IN_DOUBT)  # NO_HOSTS_AVAILABLE is an answer when the memory is unknown
    try:
        _start_a_new_vm(Facts())
    except Divergence as divergence:
        assert "NO_HOSTS_AVAILABLE" in divergence.info.message
    else:
        raise AssertionError("a start refused with room on every host was not a divergence")
