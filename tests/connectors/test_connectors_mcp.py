"""/v1/mcp through a real irisgate: the official MCP client as two users with different
grants, real MCP servers (one per shared auth type) that refuse any other credential."""

from __future__ import annotations

import base64
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator

import httpx2
import pytest
from conftest import (
    ALICE_IP,
    BOB_IP,
    CAROL_IP,
    NOBODY_IP,
    config_text,
    connector_records,
    http_from,
    mcp_as,
    start_gateway,
)
from mcp.shared.exceptions import MCPError

from irisgate.testing import FakeLocalAPI, McpToolServer
from irisgate.testing.server import IrisgateServer

BASIC = "Basic " + base64.b64encode(b"svc-user:basic-pass-77").decode()
SERVERS = {
    "plain": {},
    "bearer": {"header": ("authorization", "Bearer bearer-secret-1")},
    "apikeyh": {"header": ("x-api-key", "header-key-2")},
    "apikeyq": {"query": ("api_key", "query-key-3")},
    "basic": {"header": ("authorization", BASIC)},
    "restarts": {},
}
AUTH = {
    "plain": None,
    "bearer": {"type": "bearer_token", "token": "bearer-secret-1"},
    "apikeyh": {"type": "api_key", "in": "header", "name": "X-Api-Key", "secret": "header-key-2"},
    "apikeyq": {"type": "api_key", "in": "query", "name": "api_key", "key": "query-key-3"},
    "basic": {"type": "basic", "username": "svc-user", "password": "basic-pass-77"},
    "restarts": None,
}
EXPECTED_CREDENTIAL = {
    "plain": "",
    "bearer": "Bearer bearer-secret-1",
    "apikeyh": "header-key-2",
    "apikeyq": "query-key-3",
    "basic": BASIC,
    "restarts": "",
}
BOB = ["plain/echo", "bearer/*", "apikeyq/credential"]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, McpToolServer]]:
    started = {name: McpToolServer(name, **spec).start() for name, spec in SERVERS.items()}  # type: ignore[arg-type]
    yield started
    for server in started.values():
        server.stop()


class DropNextConnection:
    """A TCP relay to an MCP server that, when armed, resets the connection carrying the
    next `tools/call` instead of relaying it (a connection error for the client)."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/mcp"
        self.armed = False
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while data := source.recv(65536):
                if requests and self.armed and b"tools/call" in data:
                    self.armed = False
                    self.dropped += 1
                    source.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break  # reset the client's connection, the call never reaches the server
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._listener.close()


@pytest.fixture(scope="module")
def flaky(servers: dict[str, McpToolServer]) -> Iterator[DropNextConnection]:
    relay = DropNextConnection(servers["plain"].port)
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def gateway(
    servers: dict[str, McpToolServer],
    flaky: DropNextConnection,
    localapi: FakeLocalAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IrisgateServer]:
    connectors = {
        name: {
            "protocol": "mcp",
            "url": server.url,
            "description": f"{name} test server",
            **({"auth": AUTH[name]} if AUTH[name] else {}),
        }
        for name, server in servers.items()
    }
    connectors["flaky"] = {"protocol": "mcp", "url": flaky.url}
    gw = start_gateway(tmp_path_factory.mktemp("gw"), localapi, config_text(connectors, BOB))
    yield gw
    gw.stop()


def text_of(result: object) -> str:
    content = result.content
    return "".join(getattr(c, "text", "") for c in content)


async def test_admin_sees_every_tool_prefixed(gateway: IrisgateServer) -> None:
    async with mcp_as(gateway, ALICE_IP) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    for connector in SERVERS:
        assert {f"{connector}_echo", f"{connector}_credential", f"{connector}_fail"} <= names


async def test_each_auth_type_delivers_its_credential(
    gateway: IrisgateServer, servers: dict[str, McpToolServer]
) -> None:
    async with mcp_as(gateway, ALICE_IP) as client:
        for connector, expected in EXPECTED_CREDENTIAL.items():
            result = await client.call_tool(f"{connector}_credential", {})
            assert not result.is_error, connector
            assert text_of(result) == expected, connector
            echo = await client.call_tool(f"{connector}_echo", {"text": "hi"})
            assert text_of(echo) == f"{connector}: hi"
    assert all(server.refused == 0 for server in servers.values())


async def test_grants_filter_the_listing_and_every_call(
    gateway: IrisgateServer, servers: dict[str, McpToolServer]
) -> None:
    async with mcp_as(gateway, BOB_IP) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {
            "plain_echo",
            "bearer_echo",
            "bearer_credential",
            "bearer_fail",
            "apikeyq_credential",
        }
        calls_before = len(servers["basic"].seen)
        with pytest.raises(MCPError, match="not a connector tool you are granted"):
            await client.call_tool("basic_credential", {})
        with pytest.raises(MCPError, match="not a connector tool you are granted"):
            await client.call_tool("plain_credential", {})  # listed connector, other tool
        assert len(servers["basic"].seen) == calls_before  # never reached the upstream
        assert text_of(await client.call_tool("plain_echo", {"text": "x"})) == "plain: x"
    async with mcp_as(gateway, CAROL_IP) as client:  # granted through group:eng
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"plain_echo", "plain_credential", "plain_fail"}


async def test_callers_without_a_role_and_cross_site_pages_are_refused(
    gateway: IrisgateServer,
) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.AsyncHTTPTransport(local_address=NOBODY_IP)
    ) as http:
        response = await http.post(
            gateway.url + "/v1/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 403
    assert "no role granted" in response.json()["error"]["message"]
    async with httpx2.AsyncClient(
        transport=httpx2.AsyncHTTPTransport(local_address=ALICE_IP)
    ) as http:
        response = await http.post(
            gateway.url + "/v1/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "accept": "application/json, text/event-stream",
                "sec-fetch-site": "cross-site",  # what a browser sends from another site
            },
        )
        assert response.status_code == 403
        assert "cross-site" in response.json()["error"]["message"]
        # a browser without Sec-Fetch-*, posting text/plain (no CORS preflight)
        response = await http.post(
            gateway.url + "/v1/mcp",
            content=b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}',
            headers={"origin": "https://evil.example", "content-type": "text/plain"},
        )
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == -32001
        assert error["message"] == (
            "cross-site request refused: Origin https://evil.example does not match "
            f"this gateway ({gateway.url})"
        )
    # the gateway's own pages still may
    own = {"origin": gateway.url, "sec-fetch-site": "same-origin"}
    async with mcp_as(gateway, ALICE_IP, headers=own) as client:
        assert (await client.list_tools()).tools


async def test_resources_and_templates_are_prefixed_and_read_through(
    gateway: IrisgateServer,
) -> None:
    async with mcp_as(gateway, BOB_IP) as client:
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = {
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        }
        read = await client.read_resource("bearer-notes://abc")
    # bob is granted plain, bearer and apikeyq, but nothing of basic or apikeyh
    assert resources == {"plain-notes://readme", "bearer-notes://readme", "apikeyq-notes://readme"}
    assert "bearer-notes://{note}" in templates
    assert "basic-notes://{note}" not in templates
    assert read.contents[0].uri == "bearer-notes://abc"
    assert read.contents[0].text == "note abc of bearer"
    async with mcp_as(gateway, BOB_IP) as client:
        with pytest.raises(MCPError, match="not a connector tool you are granted"):
            await client.read_resource("basic-notes://readme")


async def test_a_tool_error_comes_back_as_a_tool_error(gateway: IrisgateServer) -> None:
    async with mcp_as(gateway, ALICE_IP) as client:
        result = await client.call_tool("plain_fail", {})
    assert result.is_error
    assert "fail" in text_of(result)


async def test_tool_calls_are_recorded(gateway: IrisgateServer) -> None:
    async with mcp_as(gateway, BOB_IP, headers={"x-session-id": "agent-run-7"}) as client:
        await client.call_tool("bearer_echo", {"text": "record me"})
        with pytest.raises(MCPError):
            await client.call_tool("basic_echo", {"text": "denied"})
    ok = connector_records(
        gateway, 1, provider="bearer", model="echo", login_name="bob@example.com"
    )
    row = ok[0]
    assert row["api_format"] == "mcp"
    assert row["status"] == 200
    assert row["path"] == "/v1/mcp"
    assert row["request_bytes"] > 0 and row["response_bytes"] > 0
    assert row["duration_ms"] > 0
    assert row["session_id"] == "agent-run-7"  # in the agent's session log
    with http_from(ALICE_IP, gateway) as admin:
        full = admin.get(f"/api/requests/{row['request_id']}").json()
    assert "record me" in full["request_body"]
    assert "bearer: record me" in full["response_body"]
    denied = connector_records(gateway, 1, provider="basic", login_name="bob@example.com")
    assert denied[0]["status"] == 403
    assert "not a connector tool you are granted" in denied[0]["error"]
    logs = gateway.logs()
    for secret in ("bearer-secret-1", "header-key-2", "query-key-3", "basic-pass-77", BASIC):
        assert secret not in logs


async def test_an_unavailable_upstream_disappears_until_it_recovers(
    gateway: IrisgateServer, servers: dict[str, McpToolServer]
) -> None:
    import asyncio

    async def names() -> set[str]:
        async with mcp_as(gateway, ALICE_IP) as client:
            return {t.name for t in (await client.list_tools()).tools}

    async def wait_for(predicate: object, what: str) -> set[str]:
        for _ in range(600):
            current = await names()
            if predicate(current):  # type: ignore[operator]
                return current
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting until {what}")

    server = servers["apikeyh"]
    server.stop()
    try:
        current = await wait_for(lambda n: "apikeyh_echo" not in n, "apikeyh's tools are gone")
        assert "plain_echo" in current  # the others stay
        async with mcp_as(gateway, ALICE_IP) as client:
            with pytest.raises(MCPError, match="unreachable"):
                await client.call_tool("apikeyh_echo", {"text": "x"})
    finally:
        server.start()
    await wait_for(lambda n: "apikeyh_echo" in n, "apikeyh's tools are back")


async def test_a_connection_error_is_retried_once(
    gateway: IrisgateServer, flaky: DropNextConnection
) -> None:
    async with mcp_as(gateway, ALICE_IP) as client:
        flaky.armed = True
        result = await client.call_tool("flaky_echo", {"text": "again"})
    assert flaky.dropped == 1  # the first connection broke...
    assert text_of(result) == "plain: again"  # ...and the call went through on the retry


async def test_calls_reuse_one_upstream_session(
    gateway: IrisgateServer, servers: dict[str, McpToolServer]
) -> None:
    server = servers["plain"]
    async with mcp_as(gateway, ALICE_IP) as client:
        await client.call_tool("plain_echo", {"text": "warm"})  # the session is open now
        before = len(server.seen)
        for i in range(5):
            assert text_of(await client.call_tool("plain_echo", {"text": str(i)})) == f"plain: {i}"
    # one HTTP request a call: no initialize / initialized round trips for each call
    assert len(server.seen) - before == 5


async def test_an_upstream_restart_between_calls_is_invisible_to_the_caller(
    gateway: IrisgateServer, servers: dict[str, McpToolServer]
) -> None:
    server = servers["restarts"]
    async with mcp_as(gateway, ALICE_IP) as client:
        assert text_of(await client.call_tool("restarts_echo", {"text": "a"})) == "restarts: a"
        server.stop()
        server.start()  # the kept session's connection is gone; irisgate must not fail
        assert text_of(await client.call_tool("restarts_echo", {"text": "b"})) == "restarts: b"
    records = connector_records(gateway, 2, provider="restarts", model="echo")
    assert [r["status"] for r in records[:2]] == [200, 200]  # the user saw no failure
