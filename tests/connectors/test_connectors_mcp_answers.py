"""MCP connector answers are read under `--max-connector-answer`, through a real irisgate
and real MCP servers: one answering calls with a JSON body, one with an SSE stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from conftest import ALICE_IP, config_text
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from irisgate.testing import FakeLocalAPI, McpToolServer
from irisgate.testing.server import IrisgateServer

MIB = 1024 * 1024
LIMIT = 4 * MIB


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, McpToolServer]]:
    started = {
        "jsonish": McpToolServer("jsonish", json_response=True, sized_tool=True).start(),
        "streamy": McpToolServer("streamy", sized_tool=True).start(),
        "packed": McpToolServer("packed", json_response=True, gzip_always=True).start(),
    }
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="module")
def gateway(
    servers: dict[str, McpToolServer],
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IrisgateServer]:
    connectors = {n: {"protocol": "mcp", "url": s.url} for n, s in servers.items()}
    text = config_text(connectors, [])
    data_dir = Path(tmp_path_factory.mktemp("mcp-answers"))
    gw = IrisgateServer(
        text,
        data_dir=data_dir,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true", "IRISGATE_MAX_CONNECTOR_ANSWER": "4MiB"},
    ).start()
    yield gw
    gw.stop()


@asynccontextmanager
async def mcp_client(gw: IrisgateServer) -> AsyncIterator[Client]:
    """The official MCP client on /v1/mcp as alice, taking events of any size."""
    transport = httpx2.AsyncHTTPTransport(local_address=ALICE_IP)
    async with httpx2.AsyncClient(transport=transport, timeout=60) as http:
        url = gw.url + "/v1/mcp"
        mcp = streamable_http_client(url, http_client=http, max_sse_event_size=None)
        async with Client(mcp, cache=None) as client:
            yield client


def _text(result: object) -> str:
    return "".join(getattr(c, "text", "") for c in getattr(result, "content", []))


async def test_answers_within_the_limit_pass_json_or_streamed(gateway: IrisgateServer) -> None:
    """A 1 MiB text (over 2 MiB of JSON-RPC: text and structured content) passes either
    way."""
    async with mcp_client(gateway) as client:
        for connector in ("jsonish", "streamy"):
            result = await client.call_tool(f"{connector}_sized", {"size": MIB})
            assert not result.is_error, connector
            assert len(_text(result)) == MIB, connector


@pytest.mark.parametrize("connector", ["jsonish", "streamy"])
async def test_an_answer_over_the_limit_fails_the_call_naming_the_connector(
    gateway: IrisgateServer, connector: str
) -> None:
    async with mcp_client(gateway) as client:
        with pytest.raises(MCPError) as failed:
            await client.call_tool(f"{connector}_sized", {"size": 24 * MIB})
        message = failed.value.error.message
        assert message.startswith(f"{connector}: "), message
        assert str(LIMIT) in message, message
        # the session still serves the next call
        small = await client.call_tool(f"{connector}_sized", {"size": 10})
        assert _text(small) == "x" * 10
    assert json.dumps(message)  # a plain, safe message


async def test_a_compressed_json_answer_is_refused_unread(gateway: IrisgateServer) -> None:
    """irisgate asks for uncompressed answers: a JSON answer compressed anyway could inflate
    past any limit, so it is not read."""
    async with mcp_client(gateway) as client:
        with pytest.raises(MCPError) as failed:
            await client.call_tool("packed_echo", {"text": "hi"})
    message = failed.value.error.message
    assert message.startswith("packed: "), message
    assert "answer compressed (gzip) although irisgate asked for none" in message
