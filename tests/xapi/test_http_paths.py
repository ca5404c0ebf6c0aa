"""Which protocol a POST path gets, as xapi's HTTP server decides it, model and embedded server.

http_svr.ml ``handle_one`` runs the handler registered at the longest prefix of the request's
path (``Radix_tree.longest_prefix``); xapi.ml registers ``post_root`` ("/"), ``post_RPC2`` and
``post_json`` (Api_server.callback: XML-RPC bodies) and ``post_jsonrpc`` (jsoncallback), besides
handlers that are not XenAPI (/cli, /services, /remote_db_access). So /xmlrpc, where Xen
Orchestra's xen-api posts XML-RPC, is XML-RPC; /jsonrpc/anything is JSON-RPC.
"""

from __future__ import annotations

import io
import json
import xmlrpc.client

import pytest

from conformance.server.app import XenAPIApp, endpoint
from conformance.server.config import ServerConfig
from conformance.server.state import ServerState

PASSWORD = "paths-pw"

PATHS = [  # (path, the protocol xapi answers it with, None: a handler that is not XenAPI)
    ("/", "xmlrpc"),
    ("/xmlrpc", "xmlrpc"),
    ("/RPC2", "xmlrpc"),
    ("/RPC2/deeper", "xmlrpc"),
    ("/json", "xmlrpc"),
    ("/jsonx", "xmlrpc"),
    ("/any/other/path", "xmlrpc"),
    ("/jsonrpc", "jsonrpc"),
    ("/jsonrpc/v2", "jsonrpc"),
    ("/cli", None),
    ("/services/plugin", None),
    ("/remote_db_access", None),
]


@pytest.mark.parametrize(("path", "protocol"), PATHS)
def test_the_longest_registered_prefix_decides(path: str, protocol: str | None) -> None:
    assert endpoint(path) == protocol


def _post(app: XenAPIApp, path: str, body: bytes) -> tuple[str, str, bytes]:
    answer: list[tuple[str, dict[str, str]]] = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    chunks = app(environ, lambda status, headers: answer.append((status, dict(headers))))
    status, headers = answer[0]
    return status, headers["Content-Type"], b"".join(chunks)


def _login(protocol: str) -> bytes:
    params = ("root", PASSWORD, "2.21", "paths-test")
    if protocol == "jsonrpc":
        call = {"jsonrpc": "2.0", "method": "session.login_with_password", "params": params}
        return json.dumps({**call, "id": 1}).encode()
    return xmlrpc.client.dumps(params, "session.login_with_password").encode()


def _logged_in(protocol: str, content_type: str, body: bytes) -> bool:
    if protocol == "jsonrpc":
        return content_type == "application/json" and "result" in json.loads(body)
    (answer,), _ = xmlrpc.client.loads(body)
    return content_type == "text/xml" and answer["Status"] == "Success"


@pytest.mark.parametrize(("path", "protocol"), PATHS)
def test_the_server_answers_each_path_as_xapi_does(path: str, protocol: str | None) -> None:
    app = XenAPIApp(ServerState.from_config(ServerConfig(password=PASSWORD)))
    for sent in ("xmlrpc", "jsonrpc"):
        status, content_type, body = _post(app, path, _login(sent))
        if protocol is None:
            assert status.startswith("404"), (path, status)
        elif sent == protocol:
            assert status.startswith("200") and _logged_in(sent, content_type, body), path
        else:  # the other protocol's body is unreadable there: xapi's 500 page
            assert status.startswith("500") and content_type == "text/html", (path, sent)
