"""OAuth dynamic client registration: an MCP server whose authorization server (the `mcp`
SDK's own: RFC 9728 resource metadata, RFC 8414 metadata, RFC 7591 registration, PKCE) wants
clients to register. irisgate discovers it, registers once, stores the client encrypted,
and each user connects with the usual code flow; calls go through the official MCP client."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from conftest import ALICE_IP, BOB_IP, config_text, http_from, mcp_as, start_gateway

from irisgate.testing import FakeLocalAPI, McpToolServer
from irisgate.testing.mcp_oauth_server import McpOAuthServer
from irisgate.testing.server import IrisgateServer

DCR = {"type": "oauth2_dynamic_client_registration"}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Any]]:
    started: dict[str, Any] = {
        "notes": McpOAuthServer("notes"),
        "quick": McpOAuthServer("quick", token_seconds=1),  # refreshed at every call
        "plain": McpToolServer("plain"),  # no authorization server at all
    }
    for server in started.values():
        server.start()
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def gateway(
    servers: dict[str, Any], localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    connectors = {
        name: {"protocol": "mcp", "url": server.url, "auth": DCR}
        for name, server in servers.items()
    }
    text = config_text(connectors, ["notes/*", "quick/*", "plain/*"])
    gw = start_gateway(tmp_path_factory.mktemp("gw"), localapi, text)
    yield gw
    gw.stop()


def status_of(gw: IrisgateServer, ip: str, connector_id: str) -> dict[str, Any]:
    with http_from(ip, gw) as client:
        response = client.get("/api/connectors")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = {c["id"]: c for c in response.json()["connectors"]}[connector_id]
    return found


def connect(gw: IrisgateServer, ip: str, connector_id: str) -> tuple[str, httpx2.Response]:
    """The Connect button: start, consent at the authorization server, come back."""
    with http_from(ip, gw) as client:
        started = client.post(f"/api/connectors/{connector_id}/connect")
        assert started.status_code == 200, started.text
        auth_url = started.json()["auth_url"]
        consent = httpx2.get(auth_url, follow_redirects=False)
        assert consent.status_code == 302, consent.text
        return auth_url, client.get(consent.headers["location"])


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def test_a_user_connects_through_a_registered_client(
    gateway: IrisgateServer, servers: dict[str, Any]
) -> None:
    notes: McpOAuthServer = servers["notes"]
    before = status_of(gateway, BOB_IP, "notes")
    assert before["status"] == "needs_auth"  # not "misconfigured" any more
    assert before["per_user"] is True
    auth_url, page = connect(gateway, BOB_IP, "notes")
    assert page.status_code == 200, page.text
    assert "Connected" in page.text
    # registered once, as a confidential client for irisgate's callback
    assert len(notes.registered) == 1
    client = notes.registered[0]
    assert client["redirect_uris"] == [f"{gateway.url}/aperture/auth/notes/callback"]
    assert client["grant_types"] == ["authorization_code", "refresh_token"]
    assert client["token_endpoint_auth_method"] == "client_secret_basic"
    assert client["client_name"] == "irisgate"
    query = parse_qs(urlsplit(auth_url).query)
    assert auth_url.startswith(notes.origin + "/authorize?")
    assert query["client_id"] == [client["client_id"]]
    assert query["code_challenge_method"] == ["S256"]
    assert query["resource"] == [notes.url]  # RFC 8707, checked on every token by the server
    assert status_of(gateway, BOB_IP, "notes")["status"] == "ready"
    async with mcp_as(gateway, BOB_IP) as session:
        assert "notes_credential" in {t.name for t in (await session.list_tools()).tools}
        token = text_of(await session.call_tool("notes_credential", {}))
        echo = text_of(await session.call_tool("notes_echo", {"text": "hi"}))
    assert token.startswith("Bearer dcr-at-")
    assert echo == "notes: hi"


async def test_the_client_is_reused_and_each_user_has_their_own_token(
    gateway: IrisgateServer, servers: dict[str, Any]
) -> None:
    notes: McpOAuthServer = servers["notes"]
    connect(gateway, BOB_IP, "notes")
    _, page = connect(gateway, ALICE_IP, "notes")
    assert page.status_code == 200, page.text
    assert len(notes.registered) == 1  # one registration for every user
    async with mcp_as(gateway, BOB_IP) as session:
        bob = text_of(await session.call_tool("notes_credential", {}))
    async with mcp_as(gateway, ALICE_IP) as session:
        alice = text_of(await session.call_tool("notes_credential", {}))
    assert bob.startswith("Bearer dcr-at-")
    assert alice.startswith("Bearer dcr-at-")
    assert bob != alice


async def test_an_expiring_token_is_refreshed_with_the_registered_client(
    gateway: IrisgateServer, servers: dict[str, Any]
) -> None:
    quick: McpOAuthServer = servers["quick"]
    _, page = connect(gateway, BOB_IP, "quick")
    assert page.status_code == 200, page.text
    async with mcp_as(gateway, BOB_IP) as session:
        first = text_of(await session.call_tool("quick_credential", {}))
        second = text_of(await session.call_tool("quick_credential", {}))
    assert first.startswith("Bearer dcr-at-")
    assert second.startswith("Bearer dcr-at-")
    assert first != second
    assert quick.tokens_issued.count("refresh_token") >= 2
    assert status_of(gateway, BOB_IP, "quick")["status"] == "ready"


def test_a_server_without_an_authorization_server_is_named(gateway: IrisgateServer) -> None:
    with http_from(BOB_IP, gateway) as client:
        response = client.post("/api/connectors/plain/connect")
    assert response.status_code == 502
    assert "no authorization server metadata found" in response.json()["error"]


def test_the_client_is_stored_encrypted_and_survives_a_restart(
    gateway: IrisgateServer, servers: dict[str, Any], localapi: FakeLocalAPI
) -> None:
    notes: McpOAuthServer = servers["notes"]
    connect(gateway, BOB_IP, "notes")
    registered = notes.registered[0]
    db = sqlite3.connect(gateway.data_dir / "irisgate.db")
    try:
        rows = db.execute(
            "SELECT data FROM connector_tokens WHERE login_name = '' AND connector_id = 'notes'"
        ).fetchall()
    finally:
        db.close()
    assert len(rows) == 1
    data = bytes(rows[0][0])
    assert registered["client_secret"].encode() not in data
    assert registered["client_id"].encode() not in data
    gateway.stop()
    gateway.start()
    assert status_of(gateway, BOB_IP, "notes")["status"] == "ready"
    _, page = connect(gateway, ALICE_IP, "notes")
    assert page.status_code == 200, page.text
    assert len(notes.registered) == 1  # the stored client, not a new registration
    assert registered["client_secret"] not in gateway.logs()
