"""HTTP connectors through a real irisgate: `ANY /v1/connectors/<id>/<path>` to a recording
fake API, with each shared auth type injected, grants enforced, streaming preserved, every
request recorded, and loopback upstreams refused unless the setting allows them."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    ALICE_IP,
    BOB_IP,
    NOBODY_IP,
    config_text,
    connector_records,
    http_from,
    start_gateway,
)

from irisgate.testing import FakeHttpApi, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

BOB = ["open", "bearer/v1/**", "keyq"]


@pytest.fixture(scope="module")
def api() -> Iterator[FakeHttpApi]:
    with FakeHttpApi() as fake:
        yield fake


def connectors(base: str) -> dict[str, Any]:
    return {
        "open": {"protocol": "http", "url": base + "/"},
        "bearer": {
            "protocol": "http",
            "url": base,
            "auth": {"type": "bearer_token", "token": "tok-1"},
        },
        "keyh": {
            "protocol": "http",
            "url": base,
            "auth": {"type": "api_key", "in": "header", "name": "X-Key", "secret": "hdr-2"},
        },
        "keyq": {
            "protocol": "http",
            "url": base + "/base",
            "auth": {"type": "api_key", "in": "query", "name": "apikey", "secret": "q-3"},
        },
        "basic": {
            "protocol": "http",
            "url": base,
            "auth": {"type": "basic", "username": "u", "password": "p-4"},
        },
        "tools": {"protocol": "mcp", "url": base + "/mcp"},
    }


@pytest.fixture(scope="module")
def gateway(
    api: FakeHttpApi, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    gw = start_gateway(
        tmp_path_factory.mktemp("gw"), localapi, config_text(connectors(api.base_url), BOB)
    )
    yield gw
    gw.stop()


@pytest.mark.parametrize(
    ("connector", "header", "value"),
    [
        ("bearer", "authorization", "Bearer tok-1"),
        ("keyh", "x-key", "hdr-2"),
        ("basic", "authorization", "Basic " + base64.b64encode(b"u:p-4").decode()),
    ],
)
def test_header_credentials_replace_the_clients(
    gateway: IrisgateServer, api: FakeHttpApi, connector: str, header: str, value: str
) -> None:
    with http_from(ALICE_IP, gateway) as client:
        response = client.post(
            f"/v1/connectors/{connector}/v1/items?page=2",
            json={"name": "widget"},
            headers={"authorization": "Bearer client-own", "x-custom": "kept"},
        )
    assert response.status_code == 200
    seen = api.requests[-1]
    assert seen.method == "POST"
    assert seen.path == "/v1/items"
    assert seen.query == {"page": "2"}
    assert seen.json == {"name": "widget"}
    assert seen.headers[header] == value
    assert seen.headers["x-custom"] == "kept"
    assert "client-own" not in str(dict(seen.headers))
    assert not any(k.lower().startswith("tailscale-") for k in seen.headers)


def test_query_credential_is_appended_to_the_path_under_the_base(
    gateway: IrisgateServer, api: FakeHttpApi
) -> None:
    with http_from(BOB_IP, gateway) as client:
        response = client.get("/v1/connectors/keyq/search", params={"q": "a b"})
    assert response.status_code == 200
    assert response.json() == {
        "method": "GET",
        "path": "/base/search",
        "query": {"q": "a b", "apikey": "q-3"},
        "body": "",
    }


def test_no_auth_connector_passes_the_clients_own_credential(
    gateway: IrisgateServer, api: FakeHttpApi
) -> None:
    with http_from(BOB_IP, gateway) as client:
        response = client.delete(
            "/v1/connectors/open/things/7", headers={"authorization": "Bearer mine"}
        )
    assert response.status_code == 200
    assert api.requests[-1].method == "DELETE"
    assert api.requests[-1].path == "/things/7"
    assert api.requests[-1].headers["authorization"] == "Bearer mine"


def test_upstream_status_and_body_pass_through(gateway: IrisgateServer) -> None:
    with http_from(ALICE_IP, gateway) as client:
        response = client.get("/v1/connectors/open/status/418")
    assert response.status_code == 418
    assert response.json()["path"] == "/status/418"


def test_streaming_is_preserved(gateway: IrisgateServer, api: FakeHttpApi) -> None:
    with (
        http_from(ALICE_IP, gateway) as client,
        client.stream("GET", "/v1/connectors/open/stream") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        chunks = response.iter_raw()
        # the upstream holds its last event until released: the first must already be here
        assert next(chunks).startswith(b"data: first")
        api.release()
        rest = b"".join(chunks)
    assert rest.endswith(b"data: last\n\n")


def test_grants_decide_which_connectors_and_paths(
    gateway: IrisgateServer, api: FakeHttpApi
) -> None:
    count = len(api.requests)
    with http_from(BOB_IP, gateway) as client:
        denied = client.get("/v1/connectors/keyh/anything")
        wrong_path = client.get("/v1/connectors/bearer/v2/items")
        right_path = client.get("/v1/connectors/bearer/v1/deep/items")
        traversal = client.get("/v1/connectors/bearer/v1/%2e%2e/v2/items")
        unknown = client.get("/v1/connectors/nope/x")
        mcp = client.get("/v1/connectors/tools/x")
    assert denied.status_code == 403
    assert "no connectors grant for keyh/anything" in denied.json()["error"]
    assert wrong_path.status_code == 403
    assert right_path.status_code == 200
    assert traversal.status_code == 400
    assert unknown.status_code == 404
    assert mcp.status_code == 404  # an MCP connector is not an HTTP one
    assert len(api.requests) == count + 1
    with http_from(ALICE_IP, gateway) as client:
        cross_site = client.post("/v1/connectors/open/x", headers={"sec-fetch-site": "cross-site"})
    assert cross_site.status_code == 403
    assert "cross-site" in cross_site.json()["error"]
    assert len(api.requests) == count + 1
    with http_from(NOBODY_IP, gateway) as client:
        nobody = client.get("/v1/connectors/open/x")
    assert nobody.status_code == 403
    assert "no role granted" in nobody.json()["error"]


def test_browsers_on_other_sites_cannot_use_connectors(
    gateway: IrisgateServer, api: FakeHttpApi
) -> None:
    """What another site's page makes a user's browser send never reaches the upstream;
    the same requests from the gateway's own origin (and without browser headers) do."""
    evil = "https://evil.example"
    no_cors = {"origin": evil, "sec-fetch-site": "cross-site", "content-type": "text/plain"}
    count = len(api.requests)
    with http_from(ALICE_IP, gateway) as client:
        refused = [
            client.post(  # fetch(url, {mode: "no-cors", method: "POST", body: "..."})
                "/v1/connectors/open/tickets",
                content=b'{"title": "x"}',
                headers=no_cors,
            ),
            client.post(  # a <form> in a browser without Sec-Fetch-*
                "/v1/connectors/open/tickets",
                content=b"title=x",
                headers={"origin": evil, "content-type": "application/x-www-form-urlencoded"},
            ),
            client.delete("/v1/connectors/open/tickets/1", headers={"origin": "null"}),
            # an <img src> or link: even a GET may do something upstream
            client.get("/v1/connectors/open/tickets", headers={"sec-fetch-site": "cross-site"}),
        ]
    for resp in refused:
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"].startswith("cross-site request refused: ")
        assert "access-control-allow-origin" not in resp.headers
    assert "Origin https://evil.example does not match this gateway" in refused[1].json()["error"]
    assert len(api.requests) == count
    with http_from(ALICE_IP, gateway) as client:
        own = client.post(
            "/v1/connectors/open/tickets",
            json={"title": "x"},
            headers={"origin": gateway.url, "sec-fetch-site": "same-origin"},
        )
        plain = client.get("/v1/connectors/open/tickets")
    assert own.status_code == 200, own.text
    assert plain.status_code == 200, plain.text
    assert len(api.requests) == count + 2


def test_requests_are_recorded_with_sizes(gateway: IrisgateServer) -> None:
    with http_from(BOB_IP, gateway) as client:
        client.put("/v1/connectors/open/record/me", content=b"x" * 1234)
    row = connector_records(gateway, 1, provider="open", model="record/me")[0]
    assert row["api_format"] == "http_connector"
    assert row["login_name"] == "bob@example.com"
    assert row["method"] == "PUT"
    assert row["path"] == "/v1/connectors/open/record/me"
    assert row["status"] == 200
    assert row["request_bytes"] == 1234
    assert row["response_bytes"] > 0
    with http_from(ALICE_IP, gateway) as admin:
        full = admin.get(f"/api/requests/{row['request_id']}").json()
    assert '"path":"/record/me"' in full["response_body"].replace(" ", "")


def test_secrets_never_reach_responses_or_logs(gateway: IrisgateServer) -> None:
    with http_from(ALICE_IP, gateway) as client:
        listing = client.get("/api/connectors").text
        config = client.get("/api/config").text
    for secret in ("tok-1", "hdr-2", "q-3", "p-4"):
        assert secret not in listing
        assert f'"{secret}"' not in config
        assert secret not in gateway.logs()


def test_loopback_upstreams_are_refused_by_default(
    api: FakeHttpApi, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # the same config, the setting off: every upstream here is on 127.0.0.1
    gw = start_gateway(
        tmp_path_factory.mktemp("strict"),
        localapi,
        config_text(
            {
                **connectors(api.base_url),
                "named": {"protocol": "http", "url": "http://localhost:9"},
            },
            BOB,
        ),
        allow_local=False,
    )
    try:
        count = len(api.requests)
        with http_from(ALICE_IP, gw) as client:
            refused = client.get("/v1/connectors/open/x")
            by_name = client.get("/v1/connectors/named/x")
            listing = {c["id"]: c for c in client.get("/api/connectors").json()["connectors"]}
        assert refused.status_code == 502
        assert "loopback or link-local" in refused.json()["error"]
        assert by_name.status_code == 502
        assert len(api.requests) == count
        assert listing["open"]["status"] == "misconfigured"
        assert "loopback" in listing["open"]["status_detail"]
        # the file loaded with a warning; saving such a connector through the API fails
        with http_from(ALICE_IP, gw) as client:
            current = client.get("/api/config").json()
            same = {"config": current["config"], "hash": current["hash"]}
            refused = client.put("/api/config", json=same)
        assert refused.status_code == 400
        paths = {e["path"] for e in refused.json()["errors"]}
        assert "connectors.servers.named.url" in paths
        assert "connectors.servers.open.url" in paths
    finally:
        gw.stop()


def test_saving_a_connector_without_url_is_refused(gateway: IrisgateServer) -> None:
    with http_from(ALICE_IP, gateway) as client:
        current = client.get("/api/config").json()
        text = current["config"].replace(
            '"servers": {', '"servers": {"nourl": {"protocol": "http"},', 1
        )
        refused = client.put("/api/config", json={"config": text, "hash": current["hash"]})
        # loopback URLs are fine on this gateway: the setting allows them
        same = {"config": current["config"], "hash": current["hash"]}
        accepted = client.put("/api/config", json=same)
    assert refused.status_code == 400
    assert [e["path"] for e in refused.json()["errors"]] == ["connectors.servers.nourl.url"]
    assert "is missing" in refused.json()["errors"][0]["message"]
    assert accepted.status_code == 200, accepted.text


def test_a_client_that_goes_away_cancels_the_upstream(
    gateway: IrisgateServer, api: FakeHttpApi
) -> None:
    with (
        http_from(BOB_IP, gateway) as client,
        client.stream("GET", "/v1/connectors/open/stream?who=leaver") as response,
    ):
        assert next(response.iter_raw()).startswith(b"data: first")
    # the client closed its connection with the stream still open upstream
    try:
        row = connector_records(gateway, 1, provider="open", model="stream", cancelled="True")[0]
    finally:
        api.release()
    assert row["login_name"] == "bob@example.com"
    assert row["status"] == 200


def test_a_timeout_names_the_connector_never_its_url_with_the_credential(
    localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    secret = "appid-secret-0c47"
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        weather = {
            "protocol": "http",
            "url": base + "/data",
            "auth": {"type": "api_key", "in": "query", "name": "appid", "secret": secret},
        }
        with IrisgateServer(
            config_text({"weather": weather}, BOB),
            data_dir=tmp_path_factory.mktemp("silent"),
            identity="tailscale",
            tailscaled_socket=str(localapi.socket_path),
            env={
                "IRISGATE_ALLOW_LOCAL_CONNECTORS": "true",
                "IRISGATE_UPSTREAM_READ_TIMEOUT": "1",
            },
        ) as gw:
            with http_from(ALICE_IP, gw) as client:
                response = client.get("/v1/connectors/weather/forecast", params={"q": "oslo"})
            assert response.status_code == 504
            assert response.json() == {"error": "connector weather did not answer in time"}
            row = connector_records(gw, 1, provider="weather")[0]
            with http_from(ALICE_IP, gw) as admin:
                full = admin.get(f"/api/requests/{row['request_id']}").text
            assert "connector weather did not answer in time" in full
            assert secret not in full
            assert secret not in gw.logs()
