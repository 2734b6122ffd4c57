"""FakeLocalAPI answers WhoIs over a unix socket exactly as tailscaled does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from irisgate.testing import FakeLocalAPI

URL = "http://local-tailscaled.sock/localapi/v0/whois"
GRANTS = {"tailscale.com/cap/aperture": [{"role": "user"}, {"models": "anthropic/**"}]}


@pytest.fixture
def localapi(tmp_path: Path) -> Iterator[FakeLocalAPI]:
    with FakeLocalAPI(tmp_path / "tailscaled.sock") as api:
        yield api


@pytest.fixture
async def session(localapi: FakeLocalAPI) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.UnixConnector(path=localapi.socket_path)
    async with aiohttp.ClientSession(connector=connector) as client:
        yield client


async def whois(
    session: aiohttp.ClientSession, addr: str | None, **headers: str
) -> tuple[int, str, str]:
    params = {"addr": addr} if addr is not None else {}
    async with session.get(URL, params=params, headers=headers) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def test_user_node(localapi: FakeLocalAPI, session: aiohttp.ClientSession) -> None:
    localapi.add_user("100.64.0.5", "alice@example.com", "Alice", node_name="laptop", capmap=GRANTS)

    status, content_type, text = await whois(session, "100.64.0.5:41234")

    assert (status, content_type) == (200, "application/json")
    assert text.startswith('{\n\t"Node": {\n\t\t"ID": ')  # Go's MarshalIndent with tabs
    assert not text.endswith("\n")
    body = json.loads(text)
    assert list(body) == ["Node", "UserProfile", "CapMap"]
    node = body["Node"]
    assert isinstance(node["ID"], int)
    assert node["StableID"].endswith("CNTRL")
    assert node["Name"] == "laptop.example.ts.net."
    assert node["Addresses"][0] == "100.64.0.5/32"
    assert node["Addresses"][1].startswith("fd7a:115c:a1e0::")
    assert node["ComputedName"] == "laptop"
    assert node["Online"] is True
    assert node["Key"].startswith("nodekey:")
    assert "Tags" not in node
    assert body["UserProfile"] == {
        "ID": body["UserProfile"]["ID"],
        "LoginName": "alice@example.com",
        "DisplayName": "Alice",
    }  # no ProfilePicURL, no Groups when empty
    assert body["CapMap"] == GRANTS


async def test_relayed_connections_are_named_by_local_port(
    localapi: FakeLocalAPI, session: aiohttp.ClientSession
) -> None:
    localapi.add_user("100.64.0.5", "alice@example.com", "Alice")
    localapi.forward("127.0.0.1:41000", "100.64.0.5")

    status, _, text = await whois(session, "127.0.0.1:41000")
    assert status == 200
    assert json.loads(text)["UserProfile"]["LoginName"] == "alice@example.com"
    assert (await whois(session, "127.0.0.1:41001"))[0:3:2] == (404, "no match for IP:port\n")
    assert (await whois(session, "127.0.0.1"))[0] == 404


async def test_tagged_node(localapi: FakeLocalAPI, session: aiohttp.ClientSession) -> None:
    localapi.add_tagged("100.64.0.9", ["tag:prod", "tag:api"], node_name="ci-runner")

    status, _, text = await whois(session, "100.64.0.9")

    assert status == 200
    body = json.loads(text)
    assert body["Node"]["Tags"] == ["tag:prod", "tag:api"]
    assert body["UserProfile"]["LoginName"] == "tagged-devices"
    assert body["UserProfile"]["DisplayName"] == "Tagged Devices"
    assert body["CapMap"] is None


async def test_profile_picture_and_groups_only_when_set(
    localapi: FakeLocalAPI, session: aiohttp.ClientSession
) -> None:
    localapi.add_user(
        "fd7a:115c:a1e0::7",
        "bob@example.com",
        "Bob",
        stable_id="nBOB1CNTRL",
        groups=["group:eng"],
        profile_pic="https://pics.example/bob?s=64&v=2",
    )

    status, _, text = await whois(session, "[fd7a:115c:a1e0::7]:443")

    assert status == 200
    assert "\\u0026" in text  # Go escapes & in JSON strings
    body = json.loads(text)
    assert body["Node"]["StableID"] == "nBOB1CNTRL"
    assert body["Node"]["Addresses"][1] == "fd7a:115c:a1e0::7/128"
    assert body["UserProfile"]["ProfilePicURL"] == "https://pics.example/bob?s=64&v=2"
    assert body["UserProfile"]["Groups"] == ["group:eng"]
    # the same node answers on its other address and by node key
    assert (await whois(session, body["Node"]["Addresses"][0].split("/")[0]))[0] == 200
    assert (await whois(session, body["Node"]["Key"]))[0] == 200


async def test_same_login_keeps_its_user_id(localapi: FakeLocalAPI) -> None:
    first = localapi.add_user("100.64.0.1", "carol@example.com", "Carol")
    second = localapi.add_user("100.64.0.2", "carol@example.com", "Carol")

    assert first["UserProfile"]["ID"] == second["UserProfile"]["ID"]
    assert first["Node"]["ID"] != second["Node"]["ID"]


@pytest.mark.parametrize(
    ("addr", "status", "text"),
    [
        (None, 400, "missing 'addr' parameter\n"),
        ("", 400, "missing 'addr' parameter\n"),
        ("not-an-ip", 400, "invalid 'addr' parameter\n"),
        ("100.64.0.5:99999", 400, "invalid 'addr' parameter\n"),
        ("[100.64.0.5]:80", 400, "invalid 'addr' parameter\n"),
        ("fd7a::1:80", 404, "no match for IP:port\n"),  # a bare IPv6 address, not ip:port
        ("nodekey:abc", 400, "invalid nodekey in 'addr' parameter\n"),
        ("100.64.9.9", 404, "no match for IP:port\n"),
        ("100.64.9.9:80", 404, "no match for IP:port\n"),
    ],
)
async def test_whois_errors(
    session: aiohttp.ClientSession, addr: str | None, status: int, text: str
) -> None:
    got = await whois(session, addr)

    assert got == (status, "text/plain; charset=utf-8", text)


async def test_whois_access_denied(localapi: FakeLocalAPI, session: aiohttp.ClientSession) -> None:
    localapi.add_user("100.64.0.5", "alice@example.com", "Alice")
    localapi.deny_whois = True

    assert await whois(session, "100.64.0.5") == (
        403,
        "text/plain; charset=utf-8",
        "whois access denied\n",
    )


@pytest.mark.parametrize(
    "headers",
    [{"Referer": "http://evil.example/"}, {"Origin": "http://evil.example"}, {"Host": "evil"}],
)
async def test_browser_like_requests_are_refused(
    localapi: FakeLocalAPI, session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    localapi.add_user("100.64.0.5", "alice@example.com", "Alice")

    got = await whois(session, "100.64.0.5", **headers)

    assert got == (403, "text/plain; charset=utf-8", "invalid localapi request\n")
    assert localapi.whois_calls == 0


async def test_empty_host_is_accepted(localapi: FakeLocalAPI) -> None:
    localapi.add_user("100.64.0.5", "alice@example.com", "Alice")
    reader, writer = await asyncio.open_unix_connection(localapi.socket_path)
    writer.write(b"GET /localapi/v0/whois?addr=100.64.0.5 HTTP/1.0\r\n\r\n")
    raw = await reader.read()
    writer.close()

    assert raw.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    assert b'"LoginName": "alice@example.com"' in raw


async def test_calls_are_counted_and_peers_removable(
    localapi: FakeLocalAPI, session: aiohttp.ClientSession
) -> None:
    localapi.add_user("100.64.0.5", "alice@example.com", "Alice")
    for _ in range(3):
        assert (await whois(session, "100.64.0.5"))[0] == 200
    localapi.remove("100.64.0.5")

    assert (await whois(session, "100.64.0.5"))[0] == 404
    assert localapi.whois_calls == 4
    assert localapi.requests[-1].query == {"addr": "100.64.0.5"}


async def test_status_names_this_node(
    localapi: FakeLocalAPI, session: aiohttp.ClientSession
) -> None:
    localapi.self_name = "gateway"
    url = "http://local-tailscaled.sock/localapi/v0/status?peers=false"
    async with session.get(url) as response:
        assert response.status == 200
        status = json.loads(await response.text())
    assert status["BackendState"] == "Running"
    assert status["Self"]["DNSName"] == "gateway.example.ts.net."
    assert status["CertDomains"] == ["gateway.example.ts.net"]
    assert status["Peer"] is None


async def test_other_paths(session: aiohttp.ClientSession) -> None:
    async with session.get("http://local-tailscaled.sock/localapi/v0/prefs") as response:
        assert response.status == 404
        assert await response.text() == "404 page not found\n"
    async with session.get("http://local-tailscaled.sock/") as response:
        assert await response.text() == "tailscaled\n"
        assert response.headers["Tailscale-Version"]


def test_temporary_socket_when_no_path_given() -> None:
    api = FakeLocalAPI()
    path = api.start()
    try:
        assert Path(path).is_socket()
        assert api.whois("100.64.0.1") is None
    finally:
        api.stop()
    assert not Path(path).exists()
