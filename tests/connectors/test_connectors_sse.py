"""MCP connectors over the legacy SSE transport (2024-11-05), chosen with `transport: "sse"`:
a real legacy server (the `mcp` SDK's SSE server transport) behind irisgate's /v1/mcp, used
with the official MCP client; the credential reaches the stream and every POST."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ALICE_IP, BOB_IP, config_text, mcp_as
from mcp.shared.exceptions import MCPError

from irisgate.testing import FakeLocalAPI, McpToolServer
from irisgate.testing.server import IrisgateServer

TOKEN = "legacy-token-5521"
LIMIT = str(256 * 1024)  # --max-connector-answer


@pytest.fixture(scope="module")
def legacy() -> Iterator[McpToolServer]:
    server = McpToolServer(
        "legacy", header=("authorization", f"Bearer {TOKEN}"), legacy_sse=True, sized_tool=True
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    legacy: McpToolServer, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    auth = {"type": "bearer_token", "token": TOKEN}
    connectors: dict[str, Any] = {
        "legacy": {"protocol": "mcp", "url": legacy.url, "transport": "sse", "auth": auth},
        # the same server without the setting: Streamable HTTP is what irisgate speaks then
        "guessed": {"protocol": "mcp", "url": legacy.url, "auth": auth},
    }
    assert localapi.socket_path
    gw = IrisgateServer(
        config_text(connectors, ["legacy/*", "guessed/*"]),
        data_dir=tmp_path_factory.mktemp("gw"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true", "IRISGATE_MAX_CONNECTOR_ANSWER": LIMIT},
    ).start()
    yield gw
    gw.stop()


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


async def test_tools_of_a_legacy_sse_server_are_listed_and_called(
    gateway: IrisgateServer, legacy: McpToolServer
) -> None:
    async with mcp_as(gateway, BOB_IP) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"legacy_echo", "legacy_credential", "legacy_fail"} <= names
        echo = await client.call_tool("legacy_echo", {"text": "over sse"})
        credential = await client.call_tool("legacy_credential", {})
        failed = await client.call_tool("legacy_fail", {})
    assert text_of(echo) == "legacy: over sse"
    assert text_of(credential) == f"Bearer {TOKEN}"
    assert failed.is_error
    assert legacy.refused == 0


async def test_the_session_is_reused_across_calls(
    gateway: IrisgateServer, legacy: McpToolServer
) -> None:
    async with mcp_as(gateway, ALICE_IP) as client:
        await client.call_tool("legacy_echo", {"text": "one"})
        before = len(legacy.requests)
        for n in range(3):
            answer = await client.call_tool("legacy_echo", {"text": str(n)})
            assert text_of(answer) == f"legacy: {n}"
    # POSTs on the open stream only: no new GET /sse (and so no new initialize); the POSTs
    # to /sse are the "guessed" connector's Streamable HTTP attempts
    later = legacy.requests[before:]
    assert ("GET", "/sse") not in later
    assert later.count(("POST", "/messages/")) >= 3


async def test_an_event_over_the_answer_limit_fails_the_call(gateway: IrisgateServer) -> None:
    async with mcp_as(gateway, BOB_IP) as client:
        small = await client.call_tool("legacy_sized", {"size": 1000})
        assert len(text_of(small)) == 1000
        with pytest.raises(MCPError) as failed:
            await client.call_tool("legacy_sized", {"size": 400 * 1024})
        # the next call opens a new stream and works
        echo = await client.call_tool("legacy_echo", {"text": "again"})
    assert text_of(echo) == "legacy: again"
    assert "legacy" in str(failed.value)  # the connector is named


async def test_without_the_setting_the_legacy_server_is_not_reached(
    gateway: IrisgateServer,
) -> None:
    async with mcp_as(gateway, BOB_IP) as client:
        with pytest.raises(MCPError, match="guessed"):
            await client.call_tool("guessed_echo", {"text": "x"})
