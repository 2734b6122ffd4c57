"""tailscaled LocalAPI client: WhoIs over the unix socket, with a short cache.

Wire format per reference/tailscale-identity.md: `GET /localapi/v0/whois?addr=IP:PORT` with
`Host: local-tailscaled.sock`. A tagged node's `UserProfile.LoginName` is `tagged-devices`; its
identity is the node's tags, sorted and comma-joined.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

from irisgate.identity import Identity, IdentityRefused, canonical_capmap

WHOIS_HOST = "local-tailscaled.sock"


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


class WhoIsClient:
    """Asks tailscaled who a peer is. Answers are cached per peer IP for `ttl` seconds.

    Failures are never cached and never produce an anonymous identity: they raise
    IdentityRefused with a message saying what went wrong.
    """

    def __init__(self, socket_path: str, ttl: float = 10.0) -> None:
        self._socket_path = socket_path
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Identity]] = {}
        self._inflight: dict[str, asyncio.Future[Identity]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def whois(self, ip: str, port: int) -> Identity:
        now = time.monotonic()
        hit = self._cache.get(ip)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._inflight.get(ip)
        if pending is not None:  # many connections from one node at once: ask once
            return await asyncio.shield(pending)
        future: asyncio.Future[Identity] = asyncio.get_running_loop().create_future()
        self._inflight[ip] = future
        try:
            identity = await self._ask(ip, port)
        except IdentityRefused as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[ip]
        future.set_result(identity)
        self._cache[ip] = (now + self._ttl, identity)
        if len(self._cache) > 4096:
            self._evict(now)
        return identity

    def _evict(self, now: float) -> None:
        for key in [k for k, (expiry, _) in self._cache.items() if expiry <= now]:
            del self._cache[key]

    async def _ask(self, ip: str, port: int) -> Identity:
        addr = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.UnixConnector(path=self._socket_path)
            timeout = aiohttp.ClientTimeout(total=5)
            session = self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        try:
            async with session.get(
                f"http://{WHOIS_HOST}/localapi/v0/whois",
                params={"addr": addr},
                headers={"Host": WHOIS_HOST},
            ) as resp:
                body = await resp.read()
                status = resp.status
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
