"""Connector fixtures: identities on 127.0.0.x, a real OAuth server, MCP clients per user.

irisgate runs as a real process in `tailscale` identity mode against the fake LocalAPI (see
tests/e2e/conftest.py); each user connects from its own loopback address. Connector
upstreams run on loopback, so every gateway here starts with
`IRISGATE_ALLOW_LOCAL_CONNECTORS=true` unless a test is about that setting.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from irisgate.testing import FakeLocalAPI
from irisgate.testing.oauth_server import oauth_mock_server
from irisgate.testing.server import IrisgateServer

ALICE_IP = "127.0.0.2"  # admin, every connector
BOB_IP = "127.0.0.3"  # user, some connectors
NOBODY_IP = "127.0.0.5"  # on the tailnet, no grant
CAROL_IP = "127.0.0.7"  # user, connectors only through a group

APERTURE = "tailscale.com/cap/aperture"
OAUTH_CLIENT_ID = "irisgate-test-client"
OAUTH_CLIENT_SECRET = "oauth-client-secret-9f3a"
OAUTH_DIR = Path(__file__).parent.parent / "oauth"


@pytest.fixture(scope="session")
def localapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeLocalAPI]:
    sock = tmp_path_factory.mktemp("ts") / "tailscaled.sock"
    fake = FakeLocalAPI()
    fake.add_user(ALICE_IP, "alice@example.com", "Alice", node_name="alice-laptop")
    fake.add_user(BOB_IP, "bob@example.com", "Bob", node_name="bob-desktop")
    fake.add_user(NOBODY_IP, "nobody@example.com", "Nobody")
    fake.add_user(CAROL_IP, "carol@example.com", "Carol", groups=("group:eng",))
    fake.start(str(sock))
    yield fake
    fake.stop()


def grants(bob_connectors: list[str]) -> list[dict[str, Any]]:
    def grant(src: str, *caps: dict[str, Any]) -> dict[str, Any]:
        return {"src": [src], "app": {APERTURE: list(caps)}}

    return [
        grant("alice@example.com", {"role": "admin", "connectors": ["**"]}),
        grant("bob@example.com", {"role": "user", "connectors": bob_connectors}),
        grant("group:eng", {"role": "user"}, {"connectors": ["plain/*"]}),
    ]


def config_text(connectors: dict[str, Any], bob_connectors: list[str]) -> str:
    config = {
        "providers": {},
        "grants": grants(bob_connectors),
        "connectors": {"servers": connectors},
    }
    return json.dumps(config, indent=2)


def start_gateway(
    tmp: Path, localapi: FakeLocalAPI, text: str, *, allow_local: bool = True
) -> IrisgateServer:
    assert localapi.socket_path
    return IrisgateServer(
        text,
        data_dir=tmp,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true" if allow_local else "false"},
    ).start()


def http_from(ip: str, gw: IrisgateServer) -> httpx2.Client:
    return httpx2.Client(
        base_url=gw.url, transport=httpx2.HTTPTransport(local_address=ip), timeout=30
    )


@asynccontextmanager
async def mcp_as(
    gw: IrisgateServer, ip: str, headers: dict[str, str] | None = None
) -> AsyncIterator[Client]:
    """The official MCP client on irisgate's /v1/mcp, connecting from `ip`."""
    async with httpx2.AsyncClient(
        transport=httpx2.AsyncHTTPTransport(local_address=ip), timeout=60, headers=headers
    ) as http:
        transport = streamable_http_client(gw.url + "/v1/mcp", http_client=http)
        async with Client(transport, cache=None) as client:
            yield client


def wait_until(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def connector_records(gw: IrisgateServer, count: int, **params: str) -> list[dict[str, Any]]:
    """The newest records as the admin sees them, once at least `count` match `params`."""
    with http_from(ALICE_IP, gw) as client:

        def matching() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = client.get(
                "/api/requests", params={"limit": "500"}
            ).json()["requests"]
            found = [r for r in rows if all(str(r.get(k)) == v for k, v in params.items())]
            return found if len(found) >= count else []

        result: list[dict[str, Any]] = wait_until(matching, f"{count} records {params}")
        return result


@dataclass
class OAuthServer:
    issuer: str
    events_path: Path

    @property
    def authorize_url(self) -> str:
        return self.issuer + "/authorize"

    @property
    def token_url(self) -> str:
        return self.issuer + "/token"

    def events(self, **match: Any) -> list[dict[str, Any]]:
        lines = self.events_path.read_text().splitlines() if self.events_path.exists() else []
        events = [json.loads(line) for line in lines]
        return [e for e in events if all(e.get(k) == v for k, v in match.items())]


@pytest.fixture(scope="session")
def oauth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthServer]:
    """oauth2-mock-server (npm, pinned in tests/oauth), made strict by tests/oauth/server.mjs."""
    events = tmp_path_factory.mktemp("oauth") / "events.jsonl"
    with oauth_mock_server(OAUTH_DIR, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, events) as issuer:
        yield OAuthServer(issuer, events)
