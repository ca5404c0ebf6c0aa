"""Values at the edges of their types over both protocols, whichever the run speaks, and text
no UTF-8 holds over JSON-RPC: both ways, in-process (the edges sweep against the reference
server and against one that takes such text with U+FFFD in place of each lone half)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.areas import sweeps
from conformance.engine.harness import Connection
from conformance.errors import ProtocolError
from conformance.faults import lookup
from conformance.judge.compare import outcome_mismatch
from conformance.judge.divergence import Divergence
from conformance.targets import InProcessTarget, JsonRpcTarget, XmlRpcTarget, other_protocol
from conformance.targets.base import Protocol_
from models.coverage import EDGE_CELLS
from models.outcome import Failure
from reports import atomic_write_text
from tests.conformance.test_harness import _server, connect

INVALID = "Invalid UTF-8 string in parameter"


def _connection(protocol: Protocol_, *faults: str) -> Connection:
    if not faults:
        return connect(protocol=protocol)
    return connect(_server(faults=lookup(faults)), protocol=protocol)  # type: ignore[arg-type]


def _edges(connection: Connection) -> None:
    for case in sweeps.edges_sweep():
        case(connection, "fields")


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_the_reference_server_conforms_over_both_protocols(protocol: Protocol_) -> None:
    connection = _connection(protocol)
    _edges(connection)
    assert connection.tally.divergences == []
    assert [cell for cell in EDGE_CELLS if not connection.tally.coverage[cell]] == []


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_text_not_utf8_taken_is_a_divergence_whichever_the_run_speaks(
    protocol: Protocol_,
) -> None:
    with pytest.raises(Divergence) as raised:
        _edges(_connection(protocol, "not-utf8-replaced"))
    assert "INVALID_VALUE" in str(raised.value)
    assert "\\ud800" in str(raised.value)


class _OneProtocolOnly(InProcessTarget):
    """The embedded server where the other protocol's path answers HTTP 404 (as a server that
    speaks XML-RPC only does at /jsonrpc)."""

    def with_protocol(self, protocol: Protocol_) -> InProcessTarget:
        return _NotServed(self.app, protocol)


class _NotServed(InProcessTarget):
    def call(self, method: str, *params: object) -> Failure:  # type: ignore[override]
        raise ProtocolError(f"the target answered {method} with HTTP 404, not a XenAPI response")


@pytest.mark.parametrize("protocol", ["xmlrpc", "jsonrpc"])
def test_a_target_serving_one_protocol_leaves_the_others_edges_unjudged(
    protocol: Protocol_,
) -> None:
    connection = connect(
        protocol=protocol, wrap=lambda inner: _OneProtocolOnly(inner.app, protocol)
    )
    _edges(connection)
    assert connection.tally.divergences == []
    other = "jsonrpc" if protocol == "xmlrpc" else "xmlrpc"
    judged = {cell[1] for cell in EDGE_CELLS if connection.tally.coverage[cell]}
    assert judged == {protocol}
    assert [cell for cell in EDGE_CELLS if cell[1] == other] != []


def test_the_other_protocol_is_the_same_target() -> None:
    xml = XmlRpcTarget("http://127.0.0.1:9/")
    xml.secrets.add("a-session")
    json_twin = other_protocol(xml)
    assert isinstance(json_twin, JsonRpcTarget)
    assert json_twin.url == xml.url and "a-session" in json_twin.secrets
    assert isinstance(other_protocol(json_twin), XmlRpcTarget)
    inner = connect().target
    assert isinstance(inner, InProcessTarget)
    twin = other_protocol(inner)
    assert isinstance(twin, InProcessTarget) and twin.protocol == "jsonrpc"


def test_an_echoed_parameter_no_utf8_holds_is_judged_by_its_presence() -> None:
    sent = Failure("INVALID_VALUE", (INVALID, "\ud800"))
    echoed = Failure("INVALID_VALUE", (INVALID, "\ufffd\ufffd\ufffd"))
    assert outcome_mismatch(sent, echoed, returns=None) is None
    dropped = Failure("INVALID_VALUE", (INVALID,))
    assert outcome_mismatch(sent, dropped, returns=None) is not None
    swapped = Failure("INVALID_VALUE", ("\ud800", INVALID))
    assert outcome_mismatch(sent, swapped, returns=None) is not None


def test_a_report_quoting_such_text_is_written(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    atomic_write_text(path, '{"label": "\ud800"}')
    assert path.read_text(encoding="utf-8") == '{"label": "\\ud800"}'
