"""Network targets: XML-RPC and JSON-RPC over one bounded, keep-alive HTTP connection.

Every failure of the exchange becomes a ``TargetError`` naming what happened and what to do;
messages quote at most a short excerpt of the target's text, with the password and the session
refs the target was given masked.
"""

from __future__ import annotations

import itertools
import re
import ssl
from collections.abc import Callable
from functools import partial
from urllib.parse import urlsplit

from conformance.errors import (
    MalformedAnswer,
    ProtocolError,
    TargetStalled,
    TargetTimeout,
    TargetUnreachable,
    UsageError,
)
from conformance.targets.base import Protocol_, Target, TargetSettings
from conformance.targets.route import DeadlinePassed
from conformance.targets.transport import (
    HttpAnswer,
    HttpTransport,
    NotHttp,
    RemoteClosed,
    ResponseTooLarge,
    excerpt,
)
from conformance.wire import WireFormatError, jsonrpc, xmlrpc
from models.outcome import Outcome, Success, Value

__all__ = ["JsonRpcTarget", "XmlRpcTarget", "give_up", "open_target"]

SECRET_PARAMS = {
    "session.login_with_password": (1,),
    "session.slave_local_login_with_password": (1,),
    "session.slave_login": (1,),
    "session.change_password": (1, 2),
}
"""Messages that carry passwords, and where: these values are masked in every message."""

_LOGINS = frozenset(SECRET_PARAMS) - {"session.change_password"}
_REF = re.compile(r"OpaqueRef:[0-9A-Za-z-]+")
"""A ref in a login's answer that did not read: the session, a secret not yet known as one."""


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"target URL must be http(s)://HOST[:PORT]/, got {url!r}")
    if parts.username or parts.password:
        raise UsageError(
            "put credentials in --user and the password environment variable, not the URL"
        )
    try:
        _ = parts.port
    except ValueError:
        raise UsageError(f"the port of the target URL {url!r} is not a number 0..65535") from None
    return url


class _HttpTarget:
    """Shared exchange logic; subclasses encode and decode.

    ``secrets`` collects the passwords sent and the session refs received, for masking.
    After ``settings.stall_after`` missed deadlines in a row the target is stalled: every
    later call raises ``TargetStalled`` at once, so clean-up never waits on a dead server.
    """

    protocol: Protocol_
    content_type = "text/xml"

    def __init__(self, url: str, settings: TargetSettings | None = None) -> None:
        self.url = _checked_url(url)
        self.settings = settings or TargetSettings()
        self.secrets: set[str] = set()
        self.stalled: str = ""
        self._missed = 0
        self._transport = HttpTransport(self.url, self.settings)

    def call(self, method: str, *params: Value) -> Outcome:
        """Send one call; return what the target answered."""
        for index in SECRET_PARAMS.get(method, ()):
            if index < len(params) and isinstance(params[index], str):
                self.secrets.add(str(params[index]))
        outcome = self._call(method, params)
        if method in _LOGINS and isinstance(outcome, Success) and isinstance(outcome.value, str):
            self.secrets.add(outcome.value)
        return outcome

    def _call(self, method: str, params: tuple[Value, ...]) -> Outcome:
        raise NotImplementedError

    def _decoded(self, method: str, decode: Callable[[bytes], Outcome], body: bytes) -> Outcome:
        try:
            outcome = decode(body)
        except WireFormatError as error:
            text = _REF.sub("OpaqueRef:***", str(error)) if method in _LOGINS else str(error)
            raise MalformedAnswer(
                f"{self.url} answered {method} with a malformed body: {excerpt(text, self.secrets)}"
            ) from None
        return outcome

    def _post(self, endpoint_path: str, body: bytes, method: str) -> bytes:
        if self.stalled:
            raise TargetStalled(self.stalled)
        answer = self._exchange(endpoint_path, body, method)
        self._missed = 0
        if 300 <= answer.status < 400:
            where = excerpt(answer.location, self.secrets) or "nowhere (no Location header)"
            raise ProtocolError(
                f"{self.url} answered {method} with HTTP {answer.status}, a redirect to {where}; "
                "redirects are never followed (the login would carry the password there): "
                "if you trust that address, pass it as --target"
            )
        if answer.status != 200:
            raise ProtocolError(
                f"{self.url} answered {method} with HTTP {answer.status}, not a XenAPI response: "
                f"{excerpt(answer.body.decode('utf-8', 'replace'), self.secrets) or '(empty body)'}"
            )
        return answer.body

    def _exchange(self, path: str, body: bytes, method: str) -> HttpAnswer:
        try:
            return self._transport.post(path, body, self.content_type)
        except TimeoutError as error:
            raise self._missed_deadline(method, error) from None
        except ResponseTooLarge as error:
            size = f"{error.length:,} bytes" if error.length is not None else "more than that"
            raise ProtocolError(
                f"{self.url} answered {method} with {size}, over the {error.limit // 2**20} MB "
                "bound; raise --max-response-mb if that answer is genuine"
            ) from None
        except (ssl.SSLError, ssl.CertificateError) as error:
            raise TargetUnreachable(
                f"TLS verification of {self.url} failed during {method} ({type(error).__name__}); "
                "pass --ca-bundle FILE for a private CA, or --insecure to skip verification"
            ) from None
        except RemoteClosed:
            raise TargetUnreachable(
                f"{self.url} closed the connection without answering {method}; is it restarting?"
            ) from None
        except NotHttp as error:
            raise ProtocolError(
                f"{self.url} answered {method} with something that is not HTTP "
                f"({excerpt(str(error), self.secrets)})"
            ) from None
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            proxy = self._transport.route.proxy
            via = f" through the proxy {proxy} (from the *_PROXY variables)" if proxy else ""
            raise TargetUnreachable(
                f"cannot reach {self.url}{via} ({reason}); is the server running and the URL "
                f"right?{' Set NO_PROXY to bypass the proxy.' if proxy else ''}"
            ) from None

    def _missed_deadline(self, method: str, error: TimeoutError) -> TargetTimeout | TargetStalled:
        self._missed += 1
        limit = self.settings.timeout
        stage = f" ({error.stage})" if isinstance(error, DeadlinePassed) else ""
        if self._missed < self.settings.stall_after:
            return TargetTimeout(
                f"{self.url} did not answer {method} completely within {limit:g}s{stage} "
                "(the per-call deadline, --timeout)"
            )
        self.stalled = (
            f"{self.url} stalled: {self._missed} calls in a row (the last {method}) got no "
            f"complete answer within {limit:g}s each; the run stops. Check the server, or "
            "raise --timeout if it is only slow"
        )
        return TargetStalled(self.stalled)

    def give_up(self, reason: str) -> None:
        """Treat the target as stalled for ``reason``: every later call fails at once."""
        self.stalled = reason

    def with_protocol(self, protocol: Protocol_) -> Target:
        """The same target over ``protocol`` (xapi serves both on one port, and a session of
        one is a session of the other); what either learns is masked alike."""
        twin = open_target(self.url, protocol, self.settings)
        if isinstance(twin, _HttpTarget):
            twin.secrets = self.secrets
        return twin

    def close(self) -> None:
        """Close the keep-alive connection."""
        self._transport.close()


def give_up(target: Target, reason: str) -> None:
    """After a stall found above the transport (an Async task pending past the task timeout),
    an HTTP target fails every later call at once, as after missed deadlines: clean-up never
    waits on it, and the run's closing sweep makes the one short try."""
    if isinstance(target, _HttpTarget):
        target.give_up(reason)


class XmlRpcTarget(_HttpTarget):
    """XML-RPC on the URL's path (``/`` by default), as xapi and its SDK speak it."""

    protocol: Protocol_ = "xmlrpc"

    def _call(self, method: str, params: tuple[Value, ...]) -> Outcome:
        """POST one methodCall; decode the Status/Value/ErrorDescription envelope."""
        path = urlsplit(self.url).path or "/"
        body = self._post(path, xmlrpc.encode_request(method, params), method)
        return self._decoded(method, xmlrpc.decode_response, body)


class JsonRpcTarget(_HttpTarget):
    """JSON-RPC v2 (or v1) on ``/jsonrpc``."""

    protocol: Protocol_ = "jsonrpc"
    content_type = "application/json"

    def __init__(
        self, url: str, settings: TargetSettings | None = None, version: jsonrpc.Version = "2.0"
    ) -> None:
        super().__init__(url, settings)
        self.version: jsonrpc.Version = version
        self._ids = itertools.count(1)

    def _call(self, method: str, params: tuple[Value, ...]) -> Outcome:
        """POST one JSON-RPC request; decode either error shape."""
        request_id = next(self._ids)
        body = jsonrpc.encode_request(method, params, request_id, self.version)
        answer = self._post("/jsonrpc", body, method)
        return self._decoded(
            method, partial(jsonrpc.decode_response, request_id=request_id), answer
        )


def open_target(url: str, protocol: str, settings: TargetSettings | None = None) -> Target:
    """The network target for ``url`` speaking ``protocol`` (xmlrpc or jsonrpc)."""
    if protocol == "xmlrpc":
        return XmlRpcTarget(url, settings)
    if protocol == "jsonrpc":
        return JsonRpcTarget(url, settings)
    raise UsageError(f"--protocol must be xmlrpc or jsonrpc, got {protocol!r}")
