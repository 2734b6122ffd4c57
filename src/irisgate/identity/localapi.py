"""tailscaled LocalAPI client: WhoIs of a TCP peer over the unix socket, answers reused briefly.

Wire format per reference/tailscale-identity.md: `GET /localapi/v0/whois?addr=IP:PORT` with
`Host: local-tailscaled.sock`. A tagged node's `UserProfile.LoginName` is `tagged-devices`; its
identity is the node's tags, sorted and comma-joined.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

import aiohttp
import orjson
import structlog

from irisgate.identity import Identity, IdentityRefused, canonical_capmap

WHOIS_HOST = "local-tailscaled.sock"
log = structlog.get_logger("irisgate.identity")


def identity_from_whois(answer: dict[str, Any]) -> Identity:
    """Build an Identity from a WhoIsResponse; refuse nodes with neither user nor tags."""
    node = answer.get("Node") or {}
    profile = answer.get("UserProfile") or {}
    tags = tuple(sorted(str(t) for t in node.get("Tags") or ()))
    login = str(profile.get("LoginName") or "")
    if tags:
        login = ",".join(tags)
    elif not login or login == "tagged-devices":
        raise IdentityRefused("tailscale identity has neither a user nor tags")
    name = str(node.get("Name") or "")
    capmap_raw = answer.get("CapMap") or {}
    capmap = {str(k): tuple(v or ()) for k, v in capmap_raw.items() if isinstance(v, list)}
    return Identity(
        login_name=login,
        display_name=str(profile.get("DisplayName") or "") if not tags else login,
        node_id=str(node.get("StableID") or ""),
        node_name=str(node.get("ComputedName") or name.split(".", 1)[0]),
        tags=tags,
        groups=tuple(str(g) for g in profile.get("Groups") or ()),
        tailnet=_tailnet_of(name),
        profile_pic=str(profile.get("ProfilePicURL") or ""),
        capmap=capmap,
        capmap_key=canonical_capmap(capmap),
    )


def _tailnet_of(node_name: str) -> str:
    """`laptop.example.ts.net.` -> `example.ts.net`."""
    parts = node_name.rstrip(".").split(".", 1)
    return parts[1] if len(parts) == 2 else ""


#: the address ranges tailscaled gives tailnet nodes: a peer there is one node, whatever port
_TAILNET_RANGES = (
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("fd7a:115c:a1e0::/48"),
)
#: cached answers kept before the expired ones are swept out (all of them, when none has
#: expired yet: a sweep per new connection would cost more than asking again)
_SWEEP_AT = 4096

Client = tuple[str, int]
_K = TypeVar("_K")
_V = TypeVar("_V", bound=tuple[Any, ...])  # (expiry, ...)


@lru_cache(maxsize=1024)
def is_tailnet_address(ip: str) -> bool:
    """Whether `ip` is in the ranges tailscaled assigns to nodes (CGNAT v4, ULA v6)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in _TAILNET_RANGES if net.version == addr.version)


def _unexpired(cache: dict[_K, _V], now: float) -> dict[_K, _V]:
    """The entries of `cache` still valid at `now`; none when that is still too many to keep
    (half the limit: so the next sweep is thousands of new connections away)."""
    kept = {k: v for k, v in cache.items() if v[0] > now}
    return kept if len(kept) < _SWEEP_AT // 2 else {}


class WhoIsClient:
    """Asks tailscaled who a TCP peer is: WhoIs of the full `ip:port`, never of the IP alone.

    Which answer is reused for which request (each for `ttl` seconds at most):

    - A peer on a tailnet address (100.64.0.0/10, fd7a:115c:a1e0::/48) is one node whatever
      its port, so its answer is reused for that IP.
    - Any other address, loopback above all, may be shared by several peers told apart only by
      port: with userspace networking or `tailscale serve` TCP forwarding, tailscaled connects
      every tailnet peer from 127.0.0.1. There an answer is reused for the same TCP connection
      only. The ASGI server builds the scope's `client` tuple once per connection and hands
      that same object to every request on it, so the cache keeps the object and reuses the
      answer only for a request whose `client` *is* it. A later connection that gets the same
      port (ports are reused as soon as the previous connection is gone) brings a new tuple and
      is asked about afresh; a cache keyed by the `(ip, port)` value alone would give it the
      previous peer's identity. Were a server to build a new tuple per request, each request
      would cost one WhoIs, never a wrong identity.

    Failures are never cached and never produce an anonymous identity: they raise
    IdentityRefused with a message saying what went wrong.
    """

    def __init__(self, socket_path: str, ttl: float = 10.0) -> None:
        self._socket_path = socket_path
        self._ttl = ttl
        self._by_ip: dict[str, tuple[float, Identity]] = {}
        #: (ip, port) -> (expiry, the connection's own `client` tuple, identity)
        self._by_connection: dict[Client, tuple[float, Client, Identity]] = {}
        self._inflight: dict[str, asyncio.Future[Identity]] = {}
        self._session: aiohttp.ClientSession | None = None
        #: (when asked, the answer) of the last `key_expiry`
        self._expiry: tuple[float, datetime | None] | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def whois(self, client: Client) -> Identity:
        """The identity of the peer of the connection whose ASGI `client` this is."""
        ip = client[0]
        if is_tailnet_address(ip):
            return await self._whois_node(client)
        now = time.monotonic()
        hit = self._by_connection.get(client)
        if hit is not None and hit[1] is client and hit[0] > now:
            return hit[2]
        identity = await self._ask(ip, client[1])
        if len(self._by_connection) >= _SWEEP_AT:
            self._by_connection = _unexpired(self._by_connection, now)
        self._by_connection[client] = (now + self._ttl, client, identity)
        return identity

    async def _whois_node(self, client: Client) -> Identity:
        """A tailnet address is one node: its answer serves every connection from it."""
        ip = client[0]
        now = time.monotonic()
        hit = self._by_ip.get(ip)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._inflight.get(ip)
        if pending is not None:  # many connections from one node at once: ask once
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._inflight[ip] = future
        try:
            identity = await self._ask(ip, client[1])
        except IdentityRefused as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[ip]
        future.set_result(identity)
        if len(self._by_ip) >= _SWEEP_AT:
            self._by_ip = _unexpired(self._by_ip, now)
        self._by_ip[ip] = (now + self._ttl, identity)
        return identity

    async def node_names(self) -> frozenset[str]:
        """This node's own names (LocalAPI status: its MagicDNS name, short and full, and the
        names it has certificates for), lower case; empty when tailscaled cannot say."""
        try:
            status, body = await self._get("/localapi/v0/status", {"peers": "false"})
            answer = orjson.loads(body) if status == 200 else f"HTTP {status}"
        except (aiohttp.ClientError, OSError, TimeoutError, orjson.JSONDecodeError) as exc:
            answer = str(exc) or type(exc).__name__
        if not isinstance(answer, dict):
            log.warning(
                "cannot learn this node's names from tailscaled",
                socket=self._socket_path,
                reason=str(answer)[:200],
            )
            return frozenset()
        me = answer.get("Self")
        full = str(me.get("DNSName") or "") if isinstance(me, dict) else ""
        certs = answer.get("CertDomains")
        names = {str(n) for n in certs if isinstance(n, str)} if isinstance(certs, list) else set()
        if full:
            names |= {full, full.split(".", 1)[0]}
        return frozenset(n.rstrip(".").lower() for n in names if n.rstrip("."))

    async def key_expiry(self, ttl: float = 60.0) -> datetime | None:
        """When this node's key expires (LocalAPI status: `Self.KeyExpiry`, RFC 3339, left
        out when key expiry is disabled for the node); None when it never does or tailscaled
        cannot say. The answer is reused for `ttl` seconds."""
        now = time.monotonic()
        if self._expiry is not None and now - self._expiry[0] < ttl:
            return self._expiry[1]
        expiry: datetime | None = None
        try:
            status, body = await self._get("/localapi/v0/status", {"peers": "false"})
            answer = orjson.loads(body) if status == 200 else None
        except (aiohttp.ClientError, OSError, TimeoutError, orjson.JSONDecodeError):
            answer = None  # no tailscaled to ask (serve mode without one): nothing to warn of
        me = answer.get("Self") if isinstance(answer, dict) else None
        value = me.get("KeyExpiry") if isinstance(me, dict) else None
        if isinstance(value, str):
            try:
                expiry = datetime.fromisoformat(value)
            except ValueError:
                log.warning("tailscaled's KeyExpiry is not a time", value=value[:64])
        self._expiry = (now, expiry)
        return expiry

    async def ask(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        """One GET to the LocalAPI as irisgate makes it: (HTTP status, body). Raises
        `aiohttp.ClientError`, `OSError` or `TimeoutError` when tailscaled cannot be reached
        (`irisgate doctor` reports those)."""
        return await self._get(path, params)

    async def _get(self, path: str, params: dict[str, str]) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.UnixConnector(path=self._socket_path)
            timeout = aiohttp.ClientTimeout(total=5)
            session = self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        async with session.get(
            f"http://{WHOIS_HOST}{path}", params=params, headers={"Host": WHOIS_HOST}
        ) as resp:
            return resp.status, await resp.read()

    async def _ask(self, ip: str, port: int) -> Identity:
        addr = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        try:
            status, body = await self._get("/localapi/v0/whois", {"addr": addr})
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise IdentityRefused(
                f"cannot ask tailscaled who {ip} is ({self._socket_path}): {exc}"
            ) from exc
        if status == 404:
            raise IdentityRefused(f"tailscale does not know peer {ip}: not a tailnet node")
        if status != 200:
            text = body.decode("utf-8", "replace").strip()[:200]
            raise IdentityRefused(f"tailscale whois for {ip} failed: HTTP {status} {text}")
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise IdentityRefused(f"tailscale whois for {ip} returned invalid JSON") from exc
        return identity_from_whois(answer)
