"""Partial XenAPI implementations to survey: nova's fake XenAPI behind a small XML-RPC server.

nova's ``nova/virt/xenapi/fake.py`` (removed from nova after 21.x) is a real partial
implementation: an in-memory database with generic getters, setters, create and destroy, and a
few VM operations. Its code is never part of this repository: it is read from a nova checkout
(``NOVA_FAKE_XENAPI=path/to/fake.py``, or the mirror ``fetch github:openstack/nova`` leaves,
at tag 21.2.4). Its imports of OpenStack libraries are met by small stand-ins here.

Run one for a survey by hand:
``python -m tests.conformance.partial_servers --port 8081`` then
``XAPI_PASSWORD=x xapi-conformance run --target http://127.0.0.1:8081/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import types
import uuid
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

__all__ = ["NovaFake", "find_nova_fake", "serve"]

NOVA_MIRROR = Path("/work/.mirror/openstack+nova/repo")
NOVA_TAG = "21.2.4"
FAKE_PATH = "nova/virt/xenapi/fake.py"


def find_nova_fake() -> str | None:
    """The source of nova's fake.py: ``$NOVA_FAKE_XENAPI``, else the mirror's; None if neither."""
    given = os.environ.get("NOVA_FAKE_XENAPI")
    if given:
        return Path(given).read_text(encoding="utf-8")
    if not NOVA_MIRROR.exists():
        return None
    shown = subprocess.run(
        ["git", f"--git-dir={NOVA_MIRROR}", "show", f"{NOVA_TAG}:{FAKE_PATH}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return shown.stdout if shown.returncode == 0 else None


class _Failure(Exception):
    """os_xenapi's XenAPI.Failure: ``details`` is the ErrorDescription."""

    def __init__(self, details: list[object]) -> None:
        super().__init__(details)
        self.details = details


def _stub(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def _stand_ins() -> None:
    """The OpenStack modules fake.py imports, as far as it uses them."""
    xenapi = _stub("os_xenapi.client.XenAPI", Failure=_Failure)
    session = _stub("os_xenapi.client.session", apply_session_helpers=lambda _s: None)
    _stub("os_xenapi", client=_stub("os_xenapi.client", XenAPI=xenapi, session=session))
    log = _stub("oslo_log.log", getLogger=lambda _n: _Quiet())
    _stub("oslo_log", log=log)
    utils = {
        "jsonutils": _stub("oslo_serialization.jsonutils", dumps=json.dumps, loads=json.loads),
        "timeutils": _stub(
            "oslo_utils.timeutils", utcnow=lambda: datetime.datetime.now(datetime.UTC)
        ),
        "units": _stub("oslo_utils.units", Ki=1024, Mi=1024**2, Gi=1024**3),
        "uuidutils": _stub("oslo_utils.uuidutils", generate_uuid=lambda: str(uuid.uuid4())),
    }
    _stub("oslo_serialization", jsonutils=utils["jsonutils"])
    _stub("oslo_utils", **{k: v for k, v in utils.items() if k != "jsonutils"})
    exception = _stub("nova.exception", NovaException=RuntimeError)
    i18n = _stub("nova.i18n", _=lambda text: text)
    _stub("nova", exception=exception, i18n=i18n)
    _stub("six")


class _Quiet:
    def __getattr__(self, _name: str) -> Callable[..., None]:
        return lambda *_a, **_k: None


def load_fake(source: str) -> types.ModuleType:
    """nova's fake module from its ``source``, with a fresh database."""
    _stand_ins()
    module = types.ModuleType("nova_fake_xenapi")
    exec(compile(source, FAKE_PATH, "exec"), module.__dict__)
    module.reset()
    return module


class NovaFake:
    """XenAPI over XML-RPC in front of nova's fake: one fake session object per login."""

    def __init__(self, fake: types.ModuleType) -> None:
        self.fake = fake
        self.sessions: dict[str, Any] = {}
        self.lock = threading.Lock()

    def dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, object]:
        """One call, answered as xapi's XML-RPC does: ``{Status, Value | ErrorDescription}``."""
        with self.lock:
            try:
                return {"Status": "Success", "Value": _wire(self._call(method, params))}
            except _Failure as failure:
                return {"Status": "Failure", "ErrorDescription": [str(d) for d in failure.details]}
            except NotImplementedError:
                return {"Status": "Failure", "ErrorDescription": ["MESSAGE_METHOD_UNKNOWN", method]}
            except Exception as error:  # the fake's own bugs: xapi would say INTERNAL_ERROR
                return {"Status": "Failure", "ErrorDescription": ["INTERNAL_ERROR", str(error)]}

    def _call(self, method: str, params: tuple[Any, ...]) -> object:
        if method.startswith("session.login"):
            session = self.fake.SessionBase("http://fake")
            session._login(method, params)
            self.sessions[session._session] = session
            return session._session
        session = self.sessions.get(str(params[0])) if params else None
        if session is None:
            raise _Failure(["SESSION_INVALID", str(params[0]) if params else ""])
        if method == "session.logout":
            self.sessions.pop(session._session, None)
            session._logout()
            return ""
        handler = getattr(session, method, None)
        if handler is None:
            raise NotImplementedError(method)
        return handler(*params)


def _wire(value: object) -> object:
    """A fake's value as XML-RPC can carry it (None as "", dict views as lists)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple | type({}.keys())):
        return [_wire(v) for v in value]
    if isinstance(value, datetime.datetime):
        return xmlrpc.client.DateTime(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


class _Server(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


class _Handler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/", "/RPC2")


def serve(port: int = 0, source: str | None = None) -> tuple[_Server, str]:
    """nova's fake served on 127.0.0.1 in a thread; returns the server and its URL."""
    text = source or find_nova_fake()
    if text is None:
        raise FileNotFoundError(
            "nova's fake.py: set NOVA_FAKE_XENAPI or fetch github:openstack/nova"
        )
    app = NovaFake(load_fake(text))
    server = _Server(("127.0.0.1", port), _Handler, logRequests=False, allow_none=False)
    server.register_instance(_Dispatcher(app))
    threading.Thread(target=server.serve_forever, daemon=True, name="nova-fake").start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


class _Dispatcher:
    def __init__(self, app: NovaFake) -> None:
        self.app = app

    def _dispatch(self, method: str, params: tuple[Any, ...]) -> dict[str, object]:
        return self.app.dispatch(method, params)


def main() -> None:
    """Serve nova's fake until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    port = parser.parse_args().port
    server, url = serve(port)
    print(f"nova's fake XenAPI at {url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
