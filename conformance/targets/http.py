"""Network targets over ``requests``: one keep-alive session, timeouts, TLS verification."""

from __future__ import annotations

import itertools
from urllib.parse import urlsplit, urlunsplit

import requests

from conformance.errors import ProtocolError, TargetUnreachable, UsageError
from conformance.targets.base import Protocol_, Target, TargetSettings
from conformance.wire import WireFormatError, jsonrpc, xmlrpc
from models.outcome import Outcome, Value

__all__ = ["JsonRpcTarget", "XmlRpcTarget", "open_target"]


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"target URL must be http(s)://HOST[:PORT]/, got {url!r}")
    if parts.username or parts.password:
        raise UsageError(
            "put credentials in --user and the password environment variable, not the URL"
        )
    return url


def _endpoint(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


class _HttpTarget:
    """Shared POST logic; subclasses encode and decode."""

    protocol: Protocol_
    content_type = "text/xml"

    def __init__(self, url: str, settings: TargetSettings | None = None) -> None:
        self.url = _checked_url(url)
        self.settings = settings or TargetSettings()
        self._session = requests.Session()
        self._session.verify = self.settings.verify
        self._session.headers["Content-Type"] = self.content_type
        self._session.headers["User-Agent"] = "xapi-conformance"

    def _post(self, endpoint: str, body: bytes, method: str) -> bytes:
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        try:
            # verify per request: a session-level setting loses to REQUESTS_CA_BUNDLE (requests#3829)
            response = self._session.post(
                endpoint, data=body, timeout=timeout, verify=self.settings.verify
            )
        except requests.exceptions.SSLError as error:
            raise TargetUnreachable(
                f"TLS verification of {self.url} failed during {method} ({type(error).__name__}); "
                "pass --ca-bundle FILE for a private CA, or --insecure to skip verification"
            ) from None
        except requests.exceptions.Timeout:
            raise TargetUnreachable(
                f"{self.url} did not answer {method} within {timeout[1]:g}s (connect {timeout[0]:g}s)"
            ) from None
        except requests.exceptions.RequestException as error:
            raise TargetUnreachable(
                f"cannot reach {self.url} ({type(error).__name__}); is the server running and the URL right?"
            ) from None
        if response.status_code != 200:
            raise ProtocolError(
                f"{self.url} answered {method} with HTTP {response.status_code}, not a XenAPI response"
            )
        return response.content

    def close(self) -> None:
        """Close the keep-alive connections."""
        self._session.close()


class XmlRpcTarget(_HttpTarget):
    """XML-RPC on the URL's path (``/`` by default), as xapi and its SDK speak it."""

    protocol: Protocol_ = "xmlrpc"

    def call(self, method: str, *params: Value) -> Outcome:
        """POST one methodCall; decode the Status/Value/ErrorDescription envelope."""
        endpoint = self.url if urlsplit(self.url).path else _endpoint(self.url, "/")
        body = self._post(endpoint, xmlrpc.encode_request(method, params), method)
        try:
            return xmlrpc.decode_response(body)
        except WireFormatError as error:
            raise ProtocolError(
                f"{self.url} answered {method} with a malformed body: {error}"
            ) from None


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

    def call(self, method: str, *params: Value) -> Outcome:
        """POST one JSON-RPC request; decode either error shape."""
        body = jsonrpc.encode_request(method, params, next(self._ids), self.version)
        answer = self._post(_endpoint(self.url, "/jsonrpc"), body, method)
        try:
            return jsonrpc.decode_response(answer)
        except WireFormatError as error:
            raise ProtocolError(
                f"{self.url} answered {method} with a malformed body: {error}"
            ) from None


def open_target(url: str, protocol: str, settings: TargetSettings | None = None) -> Target:
    """The network target for ``url`` speaking ``protocol`` (xmlrpc or jsonrpc)."""
    if protocol == "xmlrpc":
        return XmlRpcTarget(url, settings)
    if protocol == "jsonrpc":
        return JsonRpcTarget(url, settings)
    raise UsageError(f"--protocol must be xmlrpc or jsonrpc, got {protocol!r}")
