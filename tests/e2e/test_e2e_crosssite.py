"""End-to-end: what a page on another site makes a tailnet user's browser send is refused.

irisgate knows callers by their network identity, so the browser of a user who opens a
hostile page arrives *as that user*. Each test here sends, from the user's own address, the
exact headers and bodies a browser sends for a cross-site `fetch(..., {mode: "no-cors"})` or
`<form>` (`Origin`, `Sec-Fetch-Site`, `text/plain`), and checks the 403 in the caller's API
format, that nothing reached the fake upstream and that nothing changed; then that the
gateway's own pages (same origin) and non-browser clients (SDKs, no such headers) still work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from conftest import (
    ALICE_IP,
    _socket_of,
    anthropic_client,
    gateway_config,
    http_from,
    openai_client,
)

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

EVIL = "https://evil.example"
BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
BUCKET = "daily:alice@example.com"
USER_MSG = [{"role": "user", "content": "hello"}]

#: what browsers send for a request made by a page of another site
NO_CORS_FETCH = {"origin": EVIL, "sec-fetch-site": "cross-site", "content-type": "text/plain"}
OLD_BROWSER_FORM = {"origin": EVIL, "content-type": "application/x-www-form-urlencoded"}
SANDBOXED = {"origin": "null", "content-type": "text/plain"}
SIBLING = {"origin": "http://wiki.example.ts.net", "sec-fetch-site": "same-site"}
ATTACKS = {
    "no-cors fetch": NO_CORS_FETCH,
    "form without Sec-Fetch": OLD_BROWSER_FORM,
    "sandboxed page": SANDBOXED,
    "same-site page": SIBLING,
}


def crosssite_config(upstream: str) -> str:
    comment, text = gateway_config(upstream).split("\n", 1)
    config = json.loads(text)
    config["providers"]["gemini"] = {
        "baseurl": upstream,
        "apikey": "AIza-upstream-gemini-secret",
        "authorization": "x-goog-api-key",
        "models": ["gemini-2.5-flash"],
        "compatibility": {"gemini_generate_content": True},
    }
    config["providers"]["bedrock"] = {
        "baseurl": upstream,
        "apikey": "ABSK-upstream-bedrock-api-key",
        "models": [BEDROCK_MODEL],
        "compatibility": {"bedrock_converse": True},
    }
    config["quotas"] = {"daily:<user>": {"capacity": "$10.00", "rate": "$0/day"}}
    config["grants"][0]["app"]["tailscale.com/cap/aperture"].append(
        {"quotas": [{"bucket": "daily:<user>"}]}
    )
    return comment + "\n" + json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        crosssite_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("crosssite"),
        identity="tailscale",
        tailscaled_socket=_socket_of(localapi),
    )
    with server:
        yield server


def _openai(resp: httpx2.Response) -> str:
    error = resp.json()["error"]
    assert error["type"] == "permission_error"
    return str(error["message"])


def _anthropic(resp: httpx2.Response) -> str:
    body = resp.json()
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    return str(body["error"]["message"])


def _google(resp: httpx2.Response) -> str:
    error = resp.json()["error"]
    assert error["status"] == "PERMISSION_DENIED" and error["code"] == 403
    return str(error["message"])


def _bedrock(resp: httpx2.Response) -> str:
    assert resp.headers["x-amzn-errortype"].startswith("AccessDeniedException:")
    return str(resp.json()["message"])


#: family → (path, body, how its 403 envelope reads)
FAMILIES: dict[str, tuple[str, dict[str, Any], Callable[[httpx2.Response], str]]] = {
    "openai chat": (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": USER_MSG},
        _openai,
    ),
    "openai responses": ("/v1/responses", {"model": "gpt-4o-mini", "input": "hello"}, _openai),
    "anthropic": (
        "/v1/messages",
        {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": USER_MSG},
        _anthropic,
    ),
    "gemini": (
        "/v1beta/models/gemini-2.5-flash:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]},
        _google,
    ),
    "bedrock": (
        f"/bedrock/model/{BEDROCK_MODEL}/converse",
        {"messages": [{"role": "user", "content": [{"text": "hello"}]}]},
        _bedrock,
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_llm_calls_from_other_sites_are_refused_in_the_callers_format(
    gw: IrisgateServer, fake_llm: FakeLLM, family: str, attack: str
) -> None:
    path, body, message_of = FAMILIES[family]
    headers = ATTACKS[attack]
    with http_from(ALICE_IP, gw.url) as alice:
        resp = alice.post(path, content=json.dumps(body), headers=headers)
    assert resp.status_code == 403, resp.text
    message = message_of(resp)
    assert message.startswith("cross-site request refused: "), message
    assert headers["origin"] in message
    assert "access-control-allow-origin" not in resp.headers
    assert fake_llm.requests == []  # nothing was spent


@pytest.mark.parametrize("family", list(FAMILIES))
def test_the_gateways_own_pages_and_plain_clients_still_call_models(
    gw: IrisgateServer, fake_llm: FakeLLM, family: str
) -> None:
    path, body, _ = FAMILIES[family]
    own = {"origin": gw.url, "content-type": "application/json"}
    with http_from(ALICE_IP, gw.url) as alice:
        same_origin = alice.post(path, json=body, headers={**own, "sec-fetch-site": "same-origin"})
        without_fetch_metadata = alice.post(path, json=body, headers=own)
        plain = alice.post(path, json=body)  # curl, scripts: no browser headers
    for resp in (same_origin, without_fetch_metadata, plain):
        assert resp.status_code == 200, resp.text
    assert len(fake_llm.requests) == 3


def test_sdks_are_unaffected(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    chat = openai_client(gw).chat.completions.create(model="gpt-4o-mini", messages=USER_MSG)  # type: ignore[arg-type]
    assert chat.choices[0].message.content
    message = anthropic_client(gw).messages.create(
        model="claude-haiku-4-5",
        max_tokens=16,
        messages=USER_MSG,  # type: ignore[arg-type]
    )
    assert message.content
    assert len(fake_llm.requests) == 2


def _config(gw: IrisgateServer) -> dict[str, Any]:
    with http_from(ALICE_IP, gw.url) as alice:
        resp = alice.get("/api/config")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def _balance(gw: IrisgateServer) -> int:
    with http_from(ALICE_IP, gw.url) as alice:
        buckets = alice.get("/api/quotas").json()["buckets"]
    by_name = {b["name"]: b for b in buckets}
    balance: int = by_name[BUCKET]["balance_nanodollars"]
    return balance


def _manual_changes(gw: IrisgateServer) -> list[dict[str, Any]]:
    """The bucket's audit log of refills and set-balance calls, newest first."""
    with http_from(ALICE_IP, gw.url) as alice:
        changes = alice.get("/api/quotas/changes", params={"bucket": BUCKET}).json()["changes"]
    assert isinstance(changes, list)
    return changes


def _assert_not_refilled(gw: IrisgateServer, balance: int, changes: list[dict[str, Any]]) -> None:
    """No manual change was made. Spending by earlier tests' requests may still be reported
    to the bucket in the background, so the balance may drop, never rise."""
    assert _manual_changes(gw) == changes
    assert _balance(gw) <= balance


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_admin_api_changes_from_other_sites_are_refused_and_change_nothing(
    gw: IrisgateServer, attack: str
) -> None:
    before = _config(gw)
    changed = before["config"].replace("written by the test suite", "changed by evil.example")
    balance, changes = _balance(gw), _manual_changes(gw)
    headers = ATTACKS[attack]
    with http_from(ALICE_IP, gw.url) as alice:  # alice is an admin
        put = alice.put(
            "/api/config",
            content=json.dumps({"config": changed, "hash": before["hash"]}),
            headers=headers,
        )
        refill = alice.post(
            "/api/quotas/refill",
            content=json.dumps({"bucket": BUCKET, "amount": "5"}),
            headers=headers,
        )
        connect = alice.post("/api/connectors/jira/connect", headers=headers)
    for resp in (put, refill, connect):
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"].startswith("cross-site request refused: ")
        assert headers["origin"] in resp.json()["error"]
        assert "access-control-allow-origin" not in resp.headers
    after = _config(gw)
    assert (after["version"], after["hash"]) == (before["version"], before["hash"])
    _assert_not_refilled(gw, balance, changes)


def test_admin_api_bodies_must_be_json(gw: IrisgateServer) -> None:
    """A browser that sends no Origin at all still cannot post a form or text here."""
    before = _config(gw)
    body = json.dumps({"config": before["config"], "hash": before["hash"]})
    balance, changes = _balance(gw), _manual_changes(gw)
    with http_from(ALICE_IP, gw.url) as alice:
        text = alice.put("/api/config", content=body, headers={"content-type": "text/plain"})
        bare = alice.put("/api/config", content=body)
        form = alice.post(
            "/api/quotas/refill",
            content=json.dumps({"bucket": BUCKET, "amount": "5"}),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert text.status_code == 415
    assert text.json()["error"] == (
        "body must be JSON, sent with Content-Type: application/json "
        "(this request had Content-Type 'text/plain')"
    )
    assert bare.status_code == 415 and "no Content-Type" in bare.json()["error"]
    assert form.status_code == 415
    assert "'application/x-www-form-urlencoded'" in form.json()["error"]
    assert _config(gw)["version"] == before["version"]
    _assert_not_refilled(gw, balance, changes)


def test_admin_api_changes_from_the_dashboard_itself_work(gw: IrisgateServer) -> None:
    before = _config(gw)
    changed = before["config"].replace("written by the test suite", "saved in the dashboard")
    own = {"origin": gw.url, "sec-fetch-site": "same-origin"}
    with http_from(ALICE_IP, gw.url) as alice:
        put = alice.put(
            "/api/config", json={"config": changed, "hash": before["hash"]}, headers=own
        )
        balance = alice.post(
            "/api/quotas/set", json={"bucket": BUCKET, "balance": "2"}, headers=own
        )
        refill = alice.post(
            "/api/quotas/refill",
            json={"bucket": BUCKET, "amount": "1"},
            headers={"origin": gw.url},  # a browser without Sec-Fetch-*
        )
    assert put.status_code == 200, put.text
    assert _config(gw)["version"] == put.json()["version"] > before["version"]
    assert balance.status_code == 200, balance.text
    assert refill.status_code == 200, refill.text
    latest = _manual_changes(gw)[0]  # set to $2, then $1 added; later spending may lower it
    assert (latest["action"], latest["balance_after_nanodollars"]) == ("refill", 3_000_000_000)
    assert latest["changed_by"] == "alice@example.com"
    assert _balance(gw) <= 3_000_000_000


def test_reads_carry_no_cors_headers(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    """Other sites may make a browser *send* a GET, never read the answer: no CORS grant."""
    evil = {"origin": EVIL, "sec-fetch-site": "cross-site"}
    preflight = {
        "origin": EVIL,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
    }
    with http_from(ALICE_IP, gw.url) as alice:
        answers = [
            alice.get("/api/whoami", headers=evil),
            alice.get("/api/config", headers=evil),
            alice.get("/v1/models", headers=evil),
            alice.options("/v1/chat/completions", headers=preflight),
            alice.options("/api/config", headers=preflight),
        ]
    assert answers[0].status_code == 200  # reading is not acting: same-site rules for reads
    assert answers[0].json()["login_name"] == "alice@example.com"
    for resp in answers:
        assert not [h for h in resp.headers if h.startswith("access-control-")], resp.headers
    assert fake_llm.requests == []


def test_serve_mode_takes_the_gateway_origin_from_tailscale_serve(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Behind `tailscale serve`, the browser's origin is the tailnet name serve answered on."""
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("crosssite-serve"),
        identity="serve",
        env={"IRISGATE_ALLOWED_HOSTS": "ai.example.ts.net"},  # serve's name (no tailscaled here)
    )
    public = "ai.example.ts.net"
    serve = {  # what tailscale serve adds in front of irisgate
        "tailscale-user-login": "alice@example.com",
        "x-forwarded-host": public,
        "x-forwarded-proto": "https",
        "content-type": "application/json",
    }
    body = {"model": "gpt-4o-mini", "messages": USER_MSG}
    with server, httpx2.Client(base_url=server.url, timeout=30) as client:
        ok = client.post(
            "/v1/chat/completions", json=body, headers={**serve, "origin": f"https://{public}"}
        )
        direct = client.post(
            "/v1/chat/completions", json=body, headers={**serve, "origin": server.url}
        )
    assert ok.status_code == 200, ok.text
    assert direct.status_code == 403
    assert f"does not match this gateway (https://{public})" in _openai(direct)
    assert len(fake_llm.requests) == 1


def test_forwarded_host_is_not_trusted_outside_serve_mode(
    gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    headers = {"origin": EVIL, "x-forwarded-host": "evil.example", "x-forwarded-proto": "https"}
    body = {"model": "gpt-4o-mini", "messages": USER_MSG}
    with http_from(ALICE_IP, gw.url) as alice:
        resp = alice.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 403
    assert f"does not match this gateway ({gw.url})" in _openai(resp)
    assert fake_llm.requests == []
