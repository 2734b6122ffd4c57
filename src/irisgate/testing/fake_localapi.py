"""`FakeLocalAPI`: tailscaled's LocalAPI WhoIs on a unix socket, as tailscaled answers it.

Behaviour follows ``ipn/localapi/localapi.go`` (see shared/reference/tailscale-identity.md):

- Every request first passes the LocalAPI guard: a ``Referer`` or ``Origin`` header, or a
  ``Host`` other than ``local-tailscaled.sock`` or empty, gets ``403 invalid localapi request``.
- ``GET /localapi/v0/whois?addr=ADDR`` where ADDR is ``ip``, ``ip:port``, ``[ipv6]:port`` or
  ``nodekey:<hex>``: 403 ``whois access denied`` (knob `deny_whois`), 400 ``missing 'addr'
  parameter`` / ``invalid 'addr' parameter`` / ``invalid nodekey in 'addr' parameter``, 404
  ``no match for IP:port``. Errors are Go's ``http.Error``: text/plain, message and a newline.
- Success is ``apitype.WhoIsResponse`` encoded like Go's ``json.MarshalIndent(res, "", "\\t")``
  (tab indents, no trailing newline, ``<``/``>``/``&`` escaped): ``Node`` (ID int, StableID,
  Name with trailing dot, User, keys, Addresses, AllowedIPs, Hostinfo, Created, Cap, Tags only
  for tagged nodes, Online, ComputedName…), ``UserProfile`` (ID, LoginName, DisplayName,
  ProfilePicURL only when set, Groups only when non-empty) and ``CapMap`` (``{cap: [values]}``,
  null when the node has none) — the caps of the node's first address, as tailscaled does.
- ``GET /localapi/v0/serve-config``: the ``ipn.ServeConfig`` that ``tailscale serve`` set
  (`serve_config`, ``{}`` when none; `set_serve` sets it as ``tailscale serve --bg`` does),
  with its ``Etag``.
- ``GET /localapi/v0/status`` (``?peers=false``): ``ipnstate.Status`` of this node, named
  `self_name` in the tailnet (``Self.DNSName`` with its trailing dot, ``CertDomains``,
  ``MagicDNSSuffix``, ``CurrentTailnet``; ``Peer`` null as with ``peers=false``).
  ``Self.KeyExpiry`` (Go's RFC 3339 time) only when `key_expiry` is set, as tailscaled leaves
  it out for a node whose key expiry is disabled; ``Self.Expired`` once that time is past.
- A peer matches on any of its addresses, whatever the port. A connection tailscaled itself
  relays to this machine (userspace networking, `tailscale serve` TCP forwarding) comes from a
  local address such as ``127.0.0.1``, told apart only by port: WhoIs of that ``ip:port``
  names the peer tailscaled relayed (`forward`), and any other port of it is ``no match``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from irisgate.testing.fake_server import RecordedRequest, ServerThread, start_runner
from irisgate.testing.lifecycle import StartStop

LOCALAPI_HOST = "local-tailscaled.sock"
TAGGED_LOGIN = "tagged-devices"
TAGGED_USER_ID = 2147455555
TAILSCALE_VERSION = "1.103.0-tfa4e1c0de-g0123456789a"
CAPABILITY_VERSION = 131

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_GUARD_HEADERS = {
    "Tailscale-Version": TAILSCALE_VERSION,
    "Tailscale-Cap": str(CAPABILITY_VERSION),
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; script-src 'none'; "
    "script-src-elem 'none'; script-src-attr 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def go_json(value: Any) -> bytes:
    """`value` encoded as Go's ``json.MarshalIndent(v, "", "\\t")`` writes it."""
    text = json.dumps(value, indent="\t", ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.encode()


def parse_addr(value: str) -> IPAddress | None:
    """The IP of ``ip``, ``ip:port`` or ``[ipv6]:port`` (netip's rules), else None."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        want: type[IPAddress] = ipaddress.IPv6Address
    else:
        host, sep, port = value.rpartition(":")
        want = ipaddress.IPv4Address
    if not sep or not port.isdigit() or not port.isascii() or int(port) > 65535:
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return ip if isinstance(ip, want) else None


def _port_of(addr: str) -> int | None:
    """The port of an ``ip:port`` or ``[ipv6]:port`` that `parse_addr` accepted, else None."""
    if addr.startswith("[") or addr.count(":") == 1:
        return int(addr.rpartition(":")[2])
    return None


def _hex_key(prefix: str, seed: str) -> str:
    return f"{prefix}:{hashlib.sha256(f'{prefix}/{seed}'.encode()).hexdigest()}"


def _http_error(status: int, message: str) -> web.Response:
    """Go's ``http.Error``: plain text with a newline."""
    return web.Response(
        status=status,
        body=(message + "\n").encode(),
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )


@dataclass(slots=True)
class _Peer:
    addresses: tuple[IPAddress, ...]
    node_key: str
    response: dict[str, Any]


class FakeLocalAPI(StartStop):
    """A stand-in for tailscaled's LocalAPI WhoIs, serving on a unix socket.

    Register peers with `add_user` / `add_tagged`; each returns the WhoIs response it will
    serve. Knobs: ``deny_whois`` (answer 403 ``whois access denied``), ``delay`` (seconds before
    answering), ``serve_config`` (what ``tailscale serve`` configured). Observations:
    ``whois_calls`` (requests to the whois endpoint that passed the guard), ``requests``
    (every request, as `RecordedRequest`).
    """

    def __init__(
        self, socket_path: str | os.PathLike[str] | None = None, *, tailnet: str = "example.ts.net"
    ) -> None:
        self.socket_path = str(socket_path) if socket_path is not None else ""
        self.tailnet = tailnet.strip(".")
        #: this node's own name in the tailnet, as `status` reports it
        self.self_name = "ai"
        self.deny_whois = False
        self.serve_config: dict[str, Any] = {}
        #: when this node's key expires (`Self.KeyExpiry`); None: key expiry disabled
        self.key_expiry: datetime | None = None
        self.delay = 0.0
        self.whois_calls = 0
        self.requests: list[RecordedRequest] = []
        self._peers: list[_Peer] = []
        self._forwards: dict[tuple[IPAddress, int], IPAddress] = {}
        self._user_ids: dict[str, int] = {}
        self._next_node_id = 101
        self._server = ServerThread("FakeLocalAPI")
        self._tmpdir: str | None = None

    # -- identities -----------------------------------------------------------------------

    def add_user(
        self,
        ip: str,
        login: str,
        display_name: str,
        *,
        node_name: str | None = None,
        stable_id: str | None = None,
        groups: Iterable[str] = (),
        capmap: Mapping[str, list[Any]] | None = None,
        profile_pic: str = "",
    ) -> dict[str, Any]:
        """Register a user-owned node at `ip`; the same login keeps one user ID across nodes."""
        user_id = self._user_ids.setdefault(login, 1001 + len(self._user_ids))
        profile: dict[str, Any] = {"ID": user_id, "LoginName": login, "DisplayName": display_name}
        if profile_pic:
            profile["ProfilePicURL"] = profile_pic
        group_list = list(groups)
        if group_list:
            profile["Groups"] = group_list
        name = node_name or f"{login.partition('@')[0]}-device"
        return self._add(
            ip, name, stable_id=stable_id, user_id=user_id, profile=profile, tags=[], capmap=capmap
        )

    def add_tagged(
        self,
        ip: str,
        tags: Iterable[str],
        *,
        node_name: str | None = None,
        stable_id: str | None = None,
        capmap: Mapping[str, list[Any]] | None = None,
    ) -> dict[str, Any]:
        """Register a tagged node at `ip` (UserProfile is the ``tagged-devices`` pseudo-user)."""
        tag_list = list(tags)
        if not tag_list:
            raise ValueError("a tagged node needs at least one tag")
        profile = {"ID": TAGGED_USER_ID, "LoginName": TAGGED_LOGIN, "DisplayName": "Tagged Devices"}
        name = node_name or f"{tag_list[0].removeprefix('tag:')}-{self._next_node_id}"
        return self._add(
            ip,
            name,
            stable_id=stable_id,
            user_id=TAGGED_USER_ID,
            profile=profile,
            tags=tag_list,
            capmap=capmap,
        )

    def set_serve(self, proxy: str, https_port: int = 443, path: str = "/") -> None:
        """Configure what `tailscale serve --bg --https=PORT --set-path=PATH PROXY` does:
        HTTPS on the node's name, `path` proxied to `proxy` (e.g. `http://127.0.0.1:8080`)."""
        host = f"{self.self_name}.{self.tailnet}:{https_port}"
        self.serve_config = {
            "TCP": {str(https_port): {"HTTPS": True}},
            "Web": {host: {"Handlers": {path: {"Proxy": proxy}}}},
        }

    def remove(self, ip: str) -> None:
        """Forget the node that has `ip` among its addresses (no error when there is none)."""
        addr = ipaddress.ip_address(ip)
        self._peers = [p for p in self._peers if addr not in p.addresses]

    def forward(self, local: str, peer_ip: str) -> None:
        """A connection tailscaled relays from the node at `peer_ip` arrives from `local`
        (``ip:port``, e.g. ``127.0.0.1:53122``); WhoIs of exactly that ``ip:port`` names it."""
        host, _, port = local.rpartition(":")
        local_ip = ipaddress.ip_address(host.strip("[]"))
        self._forwards[(local_ip, int(port))] = ipaddress.ip_address(peer_ip)

    def whois(self, addr: str) -> dict[str, Any] | None:
        """The response a WhoIs of `addr` gets (None for no match), without counting a call."""
        ip = parse_addr(addr)
        peer = self._find(ip, _port_of(addr)) if ip is not None else None
        return peer.response if peer is not None else None

    def _add(
        self,
        ip: str,
        node_name: str,
        *,
        stable_id: str | None,
        user_id: int,
        profile: dict[str, Any],
        tags: list[str],
        capmap: Mapping[str, list[Any]] | None,
    ) -> dict[str, Any]:
        node_id = self._next_node_id
        self._next_node_id += 1
        addresses = self._addresses(ipaddress.ip_address(ip), node_id)
        fqdn = node_name.rstrip(".") + "." if "." in node_name else f"{node_name}.{self.tailnet}."
        short = fqdn.split(".", 1)[0]
        prefixes = [f"{a}/{a.max_prefixlen}" for a in addresses]
        node: dict[str, Any] = {
            "ID": node_id,
            "StableID": stable_id or f"n{node_id:07X}CNTRL",
            "Name": fqdn,
            "User": user_id,
            "Key": _hex_key("nodekey", str(node_id)),
            "KeyExpiry": "0001-01-01T00:00:00Z" if tags else "2026-12-31T00:00:00Z",
            "Machine": _hex_key("mkey", str(node_id)),
            "DiscoKey": _hex_key("discokey", str(node_id)),
            "Addresses": prefixes,
            "AllowedIPs": list(prefixes),
            "HomeDERP": 1,
            "Hostinfo": {"OS": "linux", "Hostname": short},
            "Created": "2025-06-01T12:00:00Z",
            "Cap": CAPABILITY_VERSION,
        }
        if tags:
            node["Tags"] = tags
        node.update(
            {
                "Online": True,
                "MachineAuthorized": True,
                "ComputedName": short,
                "ComputedNameWithHost": short,
            }
        )
        response = {
            "Node": node,
            "UserProfile": profile,
            "CapMap": {k: list(v) for k, v in capmap.items()} if capmap is not None else None,
        }
        self._peers.append(_Peer(addresses, node["Key"], response))
        return response

    def _addresses(self, ip: IPAddress, node_id: int) -> tuple[IPAddress, ...]:
        """`ip` plus a tailnet address of the other family (v4 first, as tailscaled lists)."""
        taken = {a for p in self._peers for a in p.addresses}
        if isinstance(ip, ipaddress.IPv4Address):
            other: IPAddress = ipaddress.IPv6Address(f"fd7a:115c:a1e0::{node_id:x}")
            pair = (ip, other)
        else:
            other = ipaddress.IPv4Address(f"100.100.{node_id // 256 % 256}.{node_id % 256}")
            pair = (other, ip)
        return pair if other not in taken else (ip,)

    def _find(self, ip: IPAddress, port: int | None = None) -> _Peer | None:
        relayed = self._forwards.get((ip, port)) if port is not None else None
        if relayed is not None:
            ip = relayed
        for peer in reversed(self._peers):
            if ip in peer.addresses:
                return peer
        return None

    # -- HTTP -----------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application answering every path like tailscaled's LocalAPI."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), request.headers, raw, None
            )
        )
        headers = request.headers
        host_ok = headers.get("Host", "") in ("", LOCALAPI_HOST)
        if "Referer" in headers or "Origin" in headers or not host_ok:
            return _http_error(403, "invalid localapi request")
        response = await self._route(request)
        response.headers.update(
            {k: v for k, v in _GUARD_HEADERS.items() if k not in response.headers}
        )
        return response

    async def _route(self, request: web.Request) -> web.Response:
        if request.path == "/":
            return web.Response(body=b"tailscaled\n", content_type="text/plain")
        if request.path == "/localapi/v0/serve-config" and request.method == "GET":
            body = go_json(self.serve_config)
            etag = hashlib.sha256(body).hexdigest()
            return web.Response(
                body=body, content_type="application/json", headers={"Etag": f'"{etag}"'}
            )
        if request.path == "/localapi/v0/status":
            return web.Response(body=go_json(self._status()), content_type="application/json")
        if request.path != "/localapi/v0/whois":
            return _http_error(404, "404 page not found")
        self.whois_calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.deny_whois:
            return _http_error(403, "whois access denied")
        addr = request.query.get("addr", "")
        if not addr:
            return _http_error(400, "missing 'addr' parameter")
        if addr.startswith("nodekey:"):
            key_hex = addr.removeprefix("nodekey:")
            if len(key_hex) != 64 or not all(c in "0123456789abcdefABCDEF" for c in key_hex):
                return _http_error(400, "invalid nodekey in 'addr' parameter")
            peer = next((p for p in self._peers if p.node_key == addr.lower()), None)
        else:
            ip = parse_addr(addr)
            if ip is None:
                return _http_error(400, "invalid 'addr' parameter")
            peer = self._find(ip, _port_of(addr))
        if peer is None:
            return _http_error(404, "no match for IP:port")
        return web.Response(body=go_json(peer.response), content_type="application/json")

    def _status(self) -> dict[str, Any]:
        fqdn = f"{self.self_name}.{self.tailnet}."
        ips = ["100.64.0.1", "fd7a:115c:a1e0::1"]
        me = {
            "ID": "nSELF0CNTRL",
            "PublicKey": _hex_key("nodekey", "self"),
            "HostName": self.self_name,
            "DNSName": fqdn,
            "OS": "linux",
            "UserID": TAGGED_USER_ID,
            "TailscaleIPs": ips,
            "AllowedIPs": [f"{ips[0]}/32", f"{ips[1]}/128"],
            "Tags": ["tag:gateway"],
            "Online": True,
            "InNetworkMap": True,
        }
        if self.key_expiry is not None:
            expiry = self.key_expiry.astimezone(UTC)
            if expiry <= datetime.now(UTC):
                me["Expired"] = True
            me["KeyExpiry"] = expiry.isoformat().replace("+00:00", "Z")
        return {
            "Version": TAILSCALE_VERSION,
            "TUN": False,
            "BackendState": "Running",
            "HaveNodeKey": True,
            "AuthURL": "",
            "TailscaleIPs": ips,
            "Self": me,
            "Health": None,
            "MagicDNSSuffix": self.tailnet,
            "CurrentTailnet": {
                "Name": self.tailnet,
                "MagicDNSSuffix": self.tailnet,
                "MagicDNSEnabled": True,
            },
            "CertDomains": [fqdn.rstrip(".")],
            "Peer": None,
            "User": None,
            "ClientVersion": None,
        }

    # -- lifecycle ------------------------------------------------------------------------

    def _resolve_path(self, socket_path: str | os.PathLike[str] | None) -> str:
        if socket_path is not None:
            self.socket_path = str(socket_path)
        if not self.socket_path:
            self._tmpdir = tempfile.mkdtemp(prefix="fake-tailscaled-")
            self.socket_path = str(Path(self._tmpdir) / "tailscaled.sock")
        Path(self.socket_path).unlink(missing_ok=True)
        return self.socket_path

    def start(self, socket_path: str | os.PathLike[str] | None = None) -> str:
        """Serve on the unix socket from a background thread; returns the socket path.

        Without a path (here or at construction) a fresh temporary directory holds it.
        """
        if self._server.running:
            return self.socket_path
        path = self._resolve_path(socket_path)
        self._server.start(self.make_app(), lambda r: web.UnixSite(r, path))
        return path

    async def serve(self, socket_path: str | os.PathLike[str] | None = None) -> None:
        """Serve on the unix socket in the running event loop until cancelled."""
        path = self._resolve_path(socket_path)
        runner = await start_runner(self.make_app(), lambda r: web.UnixSite(r, path))
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
            self._cleanup_files()

    def stop(self) -> None:
        """Stop serving and remove the socket file (and its temporary directory)."""
        self._server.stop()
        self._cleanup_files()

    def _cleanup_files(self) -> None:
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
            self.socket_path = ""
