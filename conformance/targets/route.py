"""Reaching the target's origin within a deadline, directly or through an HTTP proxy.

Every step of opening a connection gets only what is left of the call's deadline: resolving the
name (``getaddrinfo`` cannot be interrupted, so it runs in a helper thread that is abandoned when
the deadline passes), connecting, a proxy's CONNECT and the TLS handshake (driven without
blocking, so a peer that drips handshake bytes cannot stretch it).

Proxies come from the environment as curl and requests read them: ``HTTP_PROXY`` for http://
targets, ``HTTPS_PROXY`` for https:// ones (``ALL_PROXY`` for both), lower-case forms too, and
``NO_PROXY`` for the hosts to reach directly. Only ``http://`` proxies are supported; any other
kind is refused with a message, never silently bypassed.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import select
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from conformance.errors import UsageError

__all__ = ["DeadlinePassed", "Route", "handshake", "open_socket", "route_to"]


class DeadlinePassed(TimeoutError):
    """The call's deadline passed while ``stage`` (resolving, connecting, the TLS handshake)."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"deadline passed while {stage}")
        self.stage = stage


@dataclass(frozen=True)
class Route:
    """Where the TCP connection goes: the target's origin itself, or an HTTP proxy.

    ``proxy`` is the proxy's ``http://host:port`` without credentials (safe to print), or "";
    ``proxy_authorization`` the Basic credentials of the proxy URL, sent only to the proxy.
    """

    host: str
    port: int
    proxy: str = ""
    proxy_authorization: str = ""


def _proxy_for(scheme: str, host: str) -> str:
    proxies = urllib.request.getproxies_environment()
    chosen = proxies.get(scheme) or proxies.get("all") or ""
    if not chosen or urllib.request.proxy_bypass(host):
        return ""
    return chosen


def route_to(url: str) -> Route:
    """The route to ``url``'s origin that the proxy settings of the environment ask for."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    chosen = _proxy_for(parts.scheme, host)
    if not chosen:
        return Route(host, port)
    proxy = urlsplit(chosen if "://" in chosen else f"http://{chosen}")
    variable = f"{parts.scheme.upper()}_PROXY"
    if proxy.scheme != "http" or not proxy.hostname:
        raise UsageError(
            f"{variable} (or ALL_PROXY) names a {proxy.scheme or 'malformed'} proxy; only "
            f"http:// proxies are supported. Set NO_PROXY={host} to reach the target directly"
        )
    try:
        proxy_port = proxy.port or 80
    except ValueError:
        raise UsageError(f"the port of the proxy in {variable} is not a number") from None
    authorization = ""
    if proxy.username is not None:
        pair = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode()
    return Route(host, port, f"http://{proxy.hostname}:{proxy_port}", authorization)


_AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]
_AddressInfos = Sequence[_AddressInfo]


def _resolve(host: str, port: int, deadline: float) -> _AddressInfos:
    """The addresses of ``host``, within the deadline (a literal address needs no lookup)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    found: list[_AddressInfos | OSError] = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as error:
            found.append(error)

    helper = threading.Thread(target=lookup, daemon=True, name="xapi-resolve")
    helper.start()
    helper.join(max(deadline - time.monotonic(), 0.0))
    if not found:
        raise DeadlinePassed(f"resolving {host}")
    if isinstance(found[0], OSError):
        raise found[0]
    return found[0]


def open_socket(
    host: str, port: int, deadline: float, connect_s: float = math.inf
) -> socket.socket:
    """A TCP connection to ``host:port``: resolving and connecting end by ``deadline``; each
    address tried gets at most ``connect_s``."""
    last: OSError | None = None
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlinePassed(f"connecting to {host}")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(min(remaining, connect_s))
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            sock.close()
            last = error
            continue
        return sock
    if isinstance(last, TimeoutError):
        raise DeadlinePassed(f"connecting to {host}")
    raise last or OSError(f"{host} has no address")


def handshake(sock: ssl.SSLSocket, deadline: float) -> None:
    """Complete the TLS handshake of ``sock`` (made with ``do_handshake_on_connect=False``)
    by ``deadline``, however slowly the peer sends its part."""
    sock.setblocking(False)
    try:
        while True:
            try:
                sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                readers, writers = [sock], []
            except ssl.SSLWantWriteError:
                readers, writers = [], [sock]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlinePassed("in the TLS handshake")
            select.select(readers, writers, [], remaining)
    finally:
        sock.setblocking(True)
