"""Refuse server-side requests to loopback and link-local addresses (SSRF).

Connector URLs and OAuth endpoints come from the config, which admins edit from a browser:
without this check a connector could reach irisgate's own admin API, tailscaled or a cloud
metadata service. The check resolves the host and looks at every address it resolves to (a
hostname may point anywhere), unless the `allow_local_connectors` setting says otherwise.
RFC 1918, ULA and Tailscale CGNAT addresses are allowed: connectors on the tailnet are the
point. Results are cached briefly so the request path pays for DNS once per host and minute.

A name can resolve differently a moment later (DNS rebinding), so the check of the URL is
not the last word: the clients that reach connectors resolve through `netguard`, which
applies the same rule to the very addresses they connect to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

_CACHE_SECONDS = 60.0


class UnsafeURL(Exception):
    """The URL may not be reached from irisgate; `str(exc)` says why and is safe to show."""


class UnsafeAddress(OSError):
    """A name resolved, at connect time, to an address connectors may not reach."""


def _local(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_loopback or address.is_link_local or address.is_unspecified


def address_refusal(host: str, address: str) -> str:
    """Why `host`, resolved to `address`, may not be reached ("" when it may)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if _local(ip):
        return (
            f"{host} resolves to {ip}, a loopback or link-local address;"
            " connectors may not reach it"
        )
    return ""


class UrlGuard:
    """Checks URLs before irisgate connects to them."""

    def __init__(self, *, allow_local: bool) -> None:
        self.allow_local = allow_local
        self._verdicts: dict[str, tuple[float, str]] = {}  # host -> (expires, refusal or "")

    async def check(self, url: str) -> None:
        """Raise UnsafeURL when `url` is not http(s) or its host resolves to a local address."""
        parts = urlsplit(url)
        # the message never shows the URL: its query may carry the connector's credential
        if parts.scheme not in ("http", "https"):
            raise UnsafeURL(f"the URL's scheme {parts.scheme!r} is not http or https")
        if not parts.hostname:
            raise UnsafeURL("the URL has no host")
        if self.allow_local:
            return
        host = parts.hostname.rstrip(".").lower()
        cached = self._verdicts.get(host)
        now = time.monotonic()
        if cached is None or cached[0] < now:
            cached = (now + _CACHE_SECONDS, await _refusal(host, parts.port))
            self._verdicts[host] = cached
        if cached[1]:
            raise UnsafeURL(cached[1])


async def _refusal(host: str, port: int | None) -> str:
    """Why `host` may not be reached ("" when it may)."""
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is a loopback or link-local address; connectors may not reach it"
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port or 443, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            return f"{host} cannot be resolved: {exc.strerror or exc}"
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        refusal = address_refusal(host, str(address))
        if refusal:
            return refusal
    return ""
