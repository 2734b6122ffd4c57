"""Refusing requests addressed to a name that is not this gateway's (DNS rebinding).

irisgate knows its callers by their network address. A web page a tailnet user opens could
point its own name at the gateway's address (DNS rebinding): the browser then treats the
gateway as that page's origin and lets the page send requests *and read the answers*, as the
user, and the cross-site guard cannot tell (to the browser nothing is cross-site). What
gives it away is the `Host` header, which carries the page's name. `HostGuard` lets a request
through only when its `Host` is:

- an IP address, `localhost` or a `*.localhost` name (no DNS answer can move those);
- one of the node's own names: in identity mode `tailscale` the short and the full MagicDNS
  name WhoIs gives for the address the request arrived on; in mode `serve` the names
  tailscaled's status gives (when its socket is there); learned once per address;
- listed in `--allowed-hosts` (`IRISGATE_ALLOWED_HOSTS`): exact names, `*.domain`, or `*`
  to turn the check off.

Every identity mode is checked. Behind `tailscale serve` the name the browser used arrives
as `Host` and as `X-Forwarded-Host`; both are checked (trusting neither alone), so a
rebinding page cannot read `/api/config` as the admin whose browser it runs in. A request
without `Host` (HTTP/1.0) passes. The refusal is a 403 in the caller's API format naming the
host and the setting.

What a `Host` value decides by itself (its name; IP, localhost or listed) is remembered per
value, for the first 1024 values of up to 300 bytes (then forgotten and learned again), so
the request path parses it once; whether it is a MagicDNS name of the node is looked up on
each request (in the names learned per address), as those can change.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from irisgate.identity.resolver import IdentityResolver
from irisgate.settings import Settings

#: how long a failed WhoIs of the gateway's own address is remembered
_RETRY_SECONDS = 10.0
#: `Host` values whose verdict is remembered (all forgotten when full) and the longest one
_MEMO_ENTRIES = 1024
_MEMO_LONGEST = 300


def host_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's host name (lower case, no port, no trailing dot), None without one."""
    value = _header(headers, b"host")
    return None if value is None else _host_name(value)


def _header(headers: list[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    """The first `wanted` header's raw value, None without one."""
    for name, value in headers:
        if name == wanted:
            return value
    return None


def _host_name(value: bytes) -> str:
    """A `Host` header value's host name: lower case, no port, no trailing dot."""
    host = value.decode("latin-1").strip().lower()
    if host.startswith("["):  # [v6] or [v6]:port
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def listed(host: str, allowed: tuple[str, ...]) -> bool:
    return any(
        pattern in ("*", host) or (pattern.startswith("*.") and host.endswith(pattern[1:]))
        for pattern in allowed
    )


class HostGuard:
    def __init__(self, settings: Settings, resolver: IdentityResolver) -> None:
        self._mode = settings.identity
        self._allowed = settings.allowed_hosts
        self._resolver = resolver
        self._names: dict[str, tuple[float, frozenset[str]]] = {}  # address -> (until, names)
        #: raw `Host` value -> (host name, passes whatever the address): pure, so remembered
        self._verdicts: dict[bytes, tuple[str, bool]] = {}

    async def refusal(self, scope: dict[str, Any]) -> str | None:
        """Why this request's Host (and, behind `tailscale serve`, X-Forwarded-Host) is
        refused, or None."""
        headers = scope["headers"]
        if self._mode == "serve":
            forwarded = _header(headers, b"x-forwarded-host")
            if forwarded is not None and (reason := await self._refusal(scope, forwarded)):
                return reason
        value = _header(headers, b"host")
        return None if value is None else await self._refusal(scope, value)

    async def _refusal(self, scope: dict[str, Any], value: bytes) -> str | None:
        verdict = self._verdicts.get(value)
        if verdict is None:
            verdict = self._verdict(value)
            if len(value) <= _MEMO_LONGEST:
                if len(self._verdicts) >= _MEMO_ENTRIES:
                    self._verdicts.clear()
                self._verdicts[value] = verdict
        host, passes = verdict
        if passes:
            return None
        server = scope.get("server")
        if server and host in await self._own_names(server):
            return None
        shown = host if len(host) <= 200 else host[:200] + "…"
        return (
            f"host {shown!r} is not a name of this gateway; if clients reach it by that name,"
            " add it to --allowed-hosts (IRISGATE_ALLOWED_HOSTS)"
        )

    def _verdict(self, value: bytes) -> tuple[str, bool]:
        """The host name of a `Host` value, and whether it passes without asking WhoIs (no
        name, an IP address, localhost, or listed in --allowed-hosts)."""
        host = _host_name(value)
        local = host == "localhost" or host.endswith(".localhost")
        return host, not host or local or _is_ip(host) or listed(host, self._allowed)

    async def _own_names(self, server: tuple[str, int]) -> frozenset[str]:
        """The node's own names for requests arriving on `server`'s address (see the identity
        resolver), remembered; when none are known, asked again after a few seconds."""
        address = server[0]
        cached = self._names.get(address)
        if cached is not None and (cached[0] == 0.0 or cached[0] > time.monotonic()):
            return cached[1]
        names = await self._resolver.own_names((address, server[1]))
        self._names[address] = (0.0 if names else time.monotonic() + _RETRY_SECONDS, names)
        return names
