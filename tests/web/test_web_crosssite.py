"""A hostile page on another origin, opened in the browser of a tailnet admin, tries to spend
money and refill a quota through irisgate as that admin: Chromium really sends the requests
(`fetch(..., {mode: "no-cors"})` and a `<form enctype="text/plain">`), irisgate refuses
them, and the fake upstream never sees one. The same fetch from irisgate's own page works.

irisgate runs in `tailscale` identity mode here: the fake tailscaled says the browser's own
address (127.0.0.1) is the admin, so every request the browser sends is hers, exactly the
situation on a tailnet.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

BROWSER_IP = "127.0.0.1"
ADMIN = "alice@example.com"
BUCKET = f"daily:{ADMIN}"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "from a web page"}]}

#: fetch, from whatever page it runs in, as a page of that origin would
FETCH = """async ([url, body, mode, type]) => {
    const response = await fetch(url, {
        method: "POST", mode, headers: {"content-type": type}, body,
    });
    return response.type === "opaque" ? "opaque" : response.status;
}"""

#: a form that posts `{"bucket": ..., "amount": "5", "x": "="}` as text/plain, and submits
FORM = """([action, name, value]) => {
    const form = document.createElement("form");
    form.method = "POST";
    form.action = action;
    form.enctype = "text/plain";
    const input = document.createElement("input");
    input.name = name;
    input.value = value;
    form.append(input);
    document.body.append(form);
    form.submit();
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>Totally harmless</title><p>Nothing to see here.</p>"
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the base's argument name
        return


@pytest.fixture(scope="module")
def hostile_site() -> Iterator[int]:
    """A tiny web server on its own port: the other origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    sock = tmp_path_factory.mktemp("ts") / "tailscaled.sock"
    localapi = FakeLocalAPI()
    localapi.add_user(BROWSER_IP, ADMIN, "Alice", node_name="alice-laptop")
    localapi.start(str(sock))
    config = {
        "providers": {
            "openai": {
                "baseurl": fake_llm.base_url,
                "apikey": "sk-upstream",
                "models": ["gpt-4o-mini"],
                "compatibility": {"openai_chat": True},
            }
        },
        "grants": [
            {
                "src": [ADMIN],
                "app": {
                    "tailscale.com/cap/aperture": [
                        {"role": "admin", "models": "**"},
                        {"quotas": [{"bucket": "daily:<user>"}]},
                    ]
                },
            }
        ],
        "quotas": {"daily:<user>": {"capacity": "$10.00", "rate": "$0/day"}},
    }
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("irisgate-crosssite"),
        identity="tailscale",
        tailscaled_socket=str(sock),
    )
    with server:
        yield server
    localapi.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()  # her identity comes from the network, not headers
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def _balance(page: Page, gw: IrisgateServer) -> int:
    buckets = page.request.get(gw.url + "/api/quotas").json()["buckets"]
    balance: int = next(b for b in buckets if b["name"] == BUCKET)["balance_nanodollars"]
    return balance


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])  # cross-site; same site, other port
def test_a_page_on_another_origin_cannot_act_as_the_visitor(
    page: Page, gw: IrisgateServer, fake_llm: FakeLLM, hostile_site: int, host: str
) -> None:
    set_balance = page.request.post(
        gw.url + "/api/quotas/set", data={"bucket": BUCKET, "balance": "2"}
    )
    assert set_balance.ok, set_balance.text()
    upstream_before = len(fake_llm.requests)
    refusals_before = gw.logs().count("refused a browser request from another site")

    page.goto(f"http://{host}:{hostile_site}/")
    body = json.dumps(CHAT)
    for path in ("/v1/chat/completions", "/v1/messages", "/api/quotas/refill"):
        assert page.evaluate(FETCH, [gw.url + path, body, "no-cors", "text/plain"]) == "opaque"
    assert len(fake_llm.requests) == upstream_before  # nothing was spent
    # the classic: a form whose text/plain body is JSON, '=' hidden in a string
    name = json.dumps({"bucket": BUCKET, "amount": "5", "x": ""})[:-2]
    page.evaluate(FORM, [gw.url + "/api/quotas/refill", name, '"}'])
    page.wait_for_url(gw.url + "/api/quotas/refill")
    expect(page.locator("body")).to_contain_text("cross-site request refused: ")

    # the browser did send all four; irisgate refused each before acting
    assert gw.logs().count("refused a browser request from another site") == refusals_before + 4
    assert _balance(page, gw) == 2_000_000_000


def test_the_same_fetch_from_irisgates_own_page_works(
    page: Page, gw: IrisgateServer, fake_llm: FakeLLM
) -> None:
    """The control: same browser, same identity, same request; only the origin differs."""
    upstream_before = len(fake_llm.requests)
    page.goto(gw.url + "/ui/")
    status = page.evaluate(
        FETCH,
        ["/v1/chat/completions", json.dumps(CHAT), "same-origin", "application/json"],
    )
    assert status == 200
    assert len(fake_llm.requests) == upstream_before + 1
