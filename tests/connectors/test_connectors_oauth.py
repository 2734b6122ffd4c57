"""OAuth 2.0 connectors against a real authorization server (oauth2-mock-server, strict:
PKCE S256, client authentication, one-time refresh tokens): client credentials for shared
tokens, the per-user authorization code flow with its callback, refresh, the Misconfigured
state, expired attempts, and tokens encrypted at rest."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from conftest import (
    ALICE_IP,
    BOB_IP,
    NOBODY_IP,
    OAUTH_CLIENT_ID,
    OAUTH_CLIENT_SECRET,
    OAuthServer,
    config_text,
    http_from,
    mcp_as,
    start_gateway,
)
from cryptography.fernet import Fernet
from mcp.shared.exceptions import MCPError

from irisgate.testing import FakeHttpApi, FakeLocalAPI, McpToolServer
from irisgate.testing.server import IrisgateServer

BOB = ["user/*", "offline/*", "short/*", "ccmcp/*", "cchttp", "badcc/*"]


def bearer_from(prefixes: tuple[str, ...]) -> Any:
    def check(headers: dict[str, str], query: dict[str, str]) -> str | None:
        value = headers.get("authorization", "")
        return value if value.startswith(tuple(f"Bearer {p}" for p in prefixes)) else None

    return check


USER_TOKENS = ("at-authorization_code-", "at-refresh_token-")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, McpToolServer]]:
    started = {
        "ccmcp": McpToolServer("ccmcp", check=bearer_from(("at-client_credentials-",))),
        "badcc": McpToolServer("badcc", check=bearer_from(("at-client_credentials-",))),
        "user": McpToolServer("user", check=bearer_from(USER_TOKENS)),
        "offline": McpToolServer("offline", check=bearer_from(USER_TOKENS)),
        "short": McpToolServer("short", check=bearer_from(USER_TOKENS)),
    }
    for server in started.values():
        server.start()
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def api() -> Iterator[FakeHttpApi]:
    with FakeHttpApi() as fake:
        yield fake


def connectors(
    oauth: OAuthServer, servers: dict[str, McpToolServer], api: FakeHttpApi
) -> dict[str, Any]:
    client = {"client_id": OAUTH_CLIENT_ID, "client_secret": OAUTH_CLIENT_SECRET}

    def code(scopes: list[str]) -> dict[str, Any]:
        return {
            "type": "oauth2_authorization_code",
            "auth_url": oauth.authorize_url,
            "token_url": oauth.token_url,
            "scopes": scopes,
            **client,
        }

    cc = {"type": "oauth2_client_credentials", "token_url": oauth.token_url, "scopes": ["read"]}
    return {
        "ccmcp": {"protocol": "mcp", "url": servers["ccmcp"].url, "auth": {**cc, **client}},
        "badcc": {
            "protocol": "mcp",
            "url": servers["badcc"].url,
            "auth": {**cc, **client, "client_secret": "wrong-secret-4411"},
        },
        "cchttp": {"protocol": "http", "url": api.base_url, "auth": {**cc, **client}},
        "user": {"protocol": "mcp", "url": servers["user"].url, "auth": code(["read"])},
        "offline": {"protocol": "mcp", "url": servers["offline"].url, "auth": code(["no-offline"])},
        "short": {"protocol": "mcp", "url": servers["short"].url, "auth": code(["short"])},
    }


@pytest.fixture(scope="module")
def gateway(
    oauth_server: OAuthServer,
    servers: dict[str, McpToolServer],
    api: FakeHttpApi,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IrisgateServer]:
    text = config_text(connectors(oauth_server, servers, api), BOB)
    gw = start_gateway(tmp_path_factory.mktemp("gw"), localapi, text)
    yield gw
    gw.stop()


def statuses(gw: IrisgateServer, ip: str) -> dict[str, dict[str, Any]]:
    with http_from(ip, gw) as client:
        response = client.get("/api/connectors")
    assert response.status_code == 200, response.text
    assert OAUTH_CLIENT_SECRET not in response.text
    return {c["id"]: c for c in response.json()["connectors"]}


def sign_in(gw: IrisgateServer, ip: str, connector_id: str) -> str:
    """What the Connect button does: start, consent at the OAuth server, come back."""
    with http_from(ip, gw) as client:
        started = client.post(f"/api/connectors/{connector_id}/connect")
    assert started.status_code == 200, started.text
    consent = httpx2.get(started.json()["auth_url"], follow_redirects=False)
    assert consent.status_code == 302
    return str(consent.headers["location"])


def finish(gw: IrisgateServer, ip: str, location: str) -> httpx2.Response:
    with http_from(ip, gw) as client:
        return client.get(location)


def connect(gw: IrisgateServer, ip: str, connector_id: str) -> httpx2.Response:
    return finish(gw, ip, sign_in(gw, ip, connector_id))


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def test_statuses_before_anyone_connects(gateway: IrisgateServer) -> None:
    bob = statuses(gateway, BOB_IP)
    assert bob["user"]["status"] == "needs_auth"
    assert bob["user"]["status_label"] == "Needs auth"
    assert bob["user"]["auth_type"] == "oauth2_authorization_code"
    assert bob["ccmcp"]["status"] == "ready"
    assert bob["ccmcp"]["auth_type"] == "oauth2_client_credentials"
    assert "url" not in bob["user"]  # upstream URLs are for admins
    alice = statuses(gateway, ALICE_IP)
    assert alice["user"]["url"].endswith("/mcp")
    with http_from(NOBODY_IP, gateway) as client:
        assert client.get("/api/connectors").status_code == 403


async def test_connect_flow_with_pkce_makes_the_tools_appear(
    gateway: IrisgateServer, oauth_server: OAuthServer, servers: dict[str, McpToolServer]
) -> None:
    async with mcp_as(gateway, BOB_IP) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "user_credential" not in names  # not connected yet
        with pytest.raises(MCPError, match="connect user first"):
            await client.call_tool("user_credential", {})
    page = connect(gateway, BOB_IP, "user")
    assert page.status_code == 200
    assert "Connected" in page.text
    assert page.headers["content-type"].startswith("text/html")
    authorize = oauth_server.events(event="authorize", scope="read")[-1]
    assert authorize["code_challenge_method"] == "S256"
    assert authorize["client_id"] == OAUTH_CLIENT_ID
    assert authorize["redirect_uri"] == f"{gateway.url}/aperture/auth/user/callback"
    exchange = oauth_server.events(event="token", grant_type="authorization_code")[-1]
    assert exchange["code_verifier"] is True
    assert exchange["redirect_uri"] == authorize["redirect_uri"]
    assert statuses(gateway, BOB_IP)["user"]["status"] == "ready"
    async with mcp_as(gateway, BOB_IP) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "user_credential" in names
        result = await client.call_tool("user_credential", {})
    assert text_of(result) == f"Bearer {exchange['access_token']}"
    assert servers["user"].refused == 0


async def test_each_user_gets_their_own_upstream_token(gateway: IrisgateServer) -> None:
    connect(gateway, BOB_IP, "user")
    connect(gateway, ALICE_IP, "user")
    async with mcp_as(gateway, BOB_IP) as client:
        bob = text_of(await client.call_tool("user_credential", {}))
    async with mcp_as(gateway, ALICE_IP) as client:
        alice = text_of(await client.call_tool("user_credential", {}))
    assert bob.startswith("Bearer at-authorization_code-")
    assert alice.startswith("Bearer at-authorization_code-")
    assert bob != alice


async def test_an_expiring_token_is_refreshed(
    gateway: IrisgateServer, oauth_server: OAuthServer
) -> None:
    assert connect(gateway, BOB_IP, "short").status_code == 200
    refreshes = len(oauth_server.events(event="token", grant_type="refresh_token"))
    async with mcp_as(gateway, BOB_IP) as client:
        first = text_of(await client.call_tool("short_credential", {}))
        second = text_of(await client.call_tool("short_credential", {}))
    assert first.startswith("Bearer at-refresh_token-")
    assert second.startswith("Bearer at-refresh_token-")
    assert first != second  # each refresh token worked once, each refresh got a new token
    events = oauth_server.events(event="token", grant_type="refresh_token")
    assert len(events) >= refreshes + 2
    assert all("refused" not in e for e in events[refreshes:])
    assert statuses(gateway, BOB_IP)["short"]["status"] == "ready"


def test_a_token_without_refresh_token_is_misconfigured(gateway: IrisgateServer) -> None:
    page = connect(gateway, BOB_IP, "offline")
    assert page.status_code == 200
    assert "no refresh token" in page.text
    status = statuses(gateway, BOB_IP)["offline"]
    assert status["status"] == "misconfigured"
    assert status["status_label"] == "Misconfigured"
    assert "offline access" in status["status_detail"]


def test_an_attempt_older_than_15_minutes_is_refused(gateway: IrisgateServer) -> None:
    location = sign_in(gateway, BOB_IP, "user")
    code = re.search(r"code=([^&]+)", location)
    assert code
    key = (gateway.data_dir / "connector.key").read_bytes().strip()
    state = {"l": "bob@example.com", "c": "user", "v": "x" * 64, "r": "http://x/cb"}
    import orjson

    old = Fernet(key).encrypt_at_time(orjson.dumps(state), int(time.time()) - 16 * 60).decode()
    page = finish(
        gateway, BOB_IP, f"{gateway.url}/aperture/auth/user/callback?code={code[1]}&state={old}"
    )
    assert page.status_code == 400
    assert "older than 15 minutes" in page.text
    forged = finish(gateway, BOB_IP, f"{gateway.url}/aperture/auth/user/callback?code=a&state=b")
    assert forged.status_code == 400


def test_a_sign_in_finishes_only_for_who_started_it(gateway: IrisgateServer) -> None:
    location = sign_in(gateway, BOB_IP, "user")
    page = finish(gateway, ALICE_IP, location)
    assert page.status_code == 403
    assert "started by someone else" in page.text


def test_connect_is_refused_without_grant_or_for_shared_auth(gateway: IrisgateServer) -> None:
    with http_from(BOB_IP, gateway) as client:
        shared = client.post("/api/connectors/ccmcp/connect")
        unknown = client.post("/api/connectors/nope/connect")
    assert shared.status_code == 400
    assert "nothing to connect" in shared.json()["error"]
    assert unknown.status_code == 404


async def test_client_credentials_are_fetched_once_and_injected(
    gateway: IrisgateServer, oauth_server: OAuthServer, api: FakeHttpApi
) -> None:
    async with mcp_as(gateway, BOB_IP) as client:
        first = text_of(await client.call_tool("ccmcp_credential", {}))
        second = text_of(await client.call_tool("ccmcp_credential", {}))
    assert first.startswith("Bearer at-client_credentials-")
    assert second == first  # cached until it nears expiry
    with http_from(BOB_IP, gateway) as client:
        response = client.get("/v1/connectors/cchttp/items")
    assert response.status_code == 200
    assert api.requests[-1].headers["authorization"].startswith("Bearer at-client_credentials-")


async def test_a_refused_client_is_reported_without_its_secret(gateway: IrisgateServer) -> None:
    async with mcp_as(gateway, BOB_IP) as client:
        with pytest.raises(MCPError, match="invalid_client"):
            await client.call_tool("badcc_credential", {})
    logs = gateway.logs()
    assert "wrong-secret-4411" not in logs
    assert OAUTH_CLIENT_SECRET not in logs


def test_tokens_are_encrypted_at_rest_and_survive_a_restart(
    gateway: IrisgateServer, localapi: FakeLocalAPI
) -> None:
    connect(gateway, BOB_IP, "user")
    db = sqlite3.connect(gateway.data_dir / "irisgate.db")
    try:
        rows = db.execute("SELECT login_name, connector_id, data FROM connector_tokens").fetchall()
    finally:
        db.close()
    assert ("bob@example.com", "user") in {(r[0], r[1]) for r in rows}
    assert all(b"at-" not in bytes(r[2]) for r in rows)
    gateway.stop()
    gateway.start()
    assert statuses(gateway, BOB_IP)["user"]["status"] == "ready"
    assert "at-authorization_code" not in gateway.logs()
