"""TLS: verification is on by default, a CA bundle makes a private CA work, --insecure is explicit."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from conformance.errors import TargetUnreachable
from conformance.server.app import XenAPIApp
from conformance.server.config import ServerConfig
from conformance.server.state import ServerState
from conformance.targets import TargetSettings, XmlRpcTarget
from models.outcome import Success

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        del args


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The embedded app behind TLS with a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    app = XenAPIApp(ServerState.from_config(ServerConfig(password="pw")))
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}/", cert
    finally:
        server.shutdown()
        server.server_close()


def test_verification_is_on_by_default(https_server: tuple[str, Path]) -> None:
    url, _ = https_server
    with pytest.raises(TargetUnreachable, match="TLS verification") as caught:
        XmlRpcTarget(url).call("session.login_with_password", "root", "pw")
    assert "--ca-bundle" in str(caught.value) and "pw" not in str(caught.value).replace("https", "")


def test_a_ca_bundle_trusts_a_private_ca(https_server: tuple[str, Path]) -> None:
    url, cert = https_server
    target = XmlRpcTarget(url, TargetSettings(verify=str(cert)))
    assert isinstance(target.call("session.login_with_password", "root", "pw"), Success)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_insecure_skips_verification_when_asked(https_server: tuple[str, Path]) -> None:
    url, _ = https_server
    target = XmlRpcTarget(url, TargetSettings(verify=False))
    assert isinstance(target.call("session.login_with_password", "root", "pw"), Success)
