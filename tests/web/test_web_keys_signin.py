"""Identity mode keys has a dashboard: a browser signs in by pasting an API key (issue 19).

Nobody is known by the network; the first key is made on the database with
`irisgate keys create`, as an operator would. In Chromium a person opens the dashboard, is
sent to sign in, pastes their key and sees My Dashboard as the key's owner; once the key
is revoked the next page load asks them to sign in again. Wrong keys are refused without
the value appearing anywhere, failed attempts are limited per client address, the form is
behind the cross-site guard, and signing out ends the session on the server too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx2
import openai
import pytest
from conftest import ADMIN, dashboard_config, screenshot
from playwright.sync_api import Browser, Page, expect

from irisgate.identity.keys import new_secret
from irisgate.testing import FakeLLM
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import IrisgateServer
from irisgate.web.keysignin import FAILURES

#: a key that has the format and checksum but that irisgate never made
FOREIGN = new_secret()


@pytest.fixture(scope="module")
def gw(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        dashboard_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("keys-signin"),
        identity="keys",
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def admin_key(gw: IrisgateServer) -> str:
    made = subprocess.run(
        [sys.executable, "-m", "irisgate", "keys", "create", ADMIN, "--name", "bootstrap"],
        env={**os.environ, "IRISGATE_DATA_DIR": str(gw.data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    secret = made.stdout.strip()
    assert secret.startswith("irisgate_")
    return secret


def as_key(gw: IrisgateServer, key: str, ip: str = "127.0.0.1") -> httpx2.Client:
    return httpx2.Client(
        base_url=gw.url,
        headers={"authorization": f"Bearer {key}"},
        transport=httpx2.HTTPTransport(local_address=ip),
        timeout=30,
    )


def users_key(gw: IrisgateServer, admin_key: str, name: str) -> dict[str, str]:
    """A key of the admin's own (the admin makes keys for itself or for services)."""
    made = as_key(gw, admin_key).post("/api/keys", json={"name": name})
    assert made.status_code == 201, made.text
    key: dict[str, str] = made.json()
    return key


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def sign_in(page: Page, gw: IrisgateServer, secret: str, path: str = "/ui/dashboard") -> None:
    page.goto(gw.url + path)
    expect(page).to_have_url(gw.url + "/auth/login?next=" + path.replace("/", "%2F"))
    page.fill("#signin-key", secret)
    screenshot(page, "keys-signin")
    page.click("#signin-submit")


def test_a_browser_signs_in_with_a_key_and_revoking_the_key_ends_it(
    gw: IrisgateServer, admin_key: str, page: Page, fake_llm: FakeLLM
) -> None:
    key = users_key(gw, admin_key, "browser")
    sign_in(page, gw, key["secret"])
    expect(page).to_have_url(gw.url + "/ui/dashboard")
    expect(page.locator("h1")).to_have_text("My Dashboard")
    expect(page.locator("#signed-in")).to_have_text(ADMIN)
    cookie = next(c for c in page.context.cookies() if c["name"] == "irisgate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert key["secret"] not in cookie["value"]
    # the dashboard's own API calls are the key's: its owner, narrowed by it
    whoami = page.request.get(gw.url + "/api/whoami").json()
    assert (whoami["login_name"], whoami["key"]["id"]) == (ADMIN, key["id"])
    assert key["secret"] not in page.content()
    page.goto(gw.url + "/chat/")  # the chat app too, its model rounds made as the key
    expect(page).to_have_url(gw.url + "/chat/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#sign-out")).to_be_visible()
    fake_llm.reply_text = "Hello from the model"
    try:
        page.fill("#model-search", "gpt-4o-mini")
        page.select_option("#model-select", index=0)
        page.fill("#prompt", "hi")
        page.click("#send")
        answer = page.locator(".msg.assistant").last
        expect(answer.locator(".body")).to_contain_text("Hello from the model")
    finally:
        fake_llm.reply_text = None
    deadline = time.monotonic() + 30  # the record is written in the background
    while not [
        r
        for r in as_key(gw, admin_key).get("/api/requests").json()["requests"]
        if r["key_id"] == key["id"] and r["key_name"] == "browser"
    ]:
        assert time.monotonic() < deadline, "the chat's round was not recorded as the key's"
        time.sleep(0.05)

    gone = as_key(gw, admin_key).delete(f"/api/keys/{key['id']}")
    assert gone.status_code == 200
    page.goto(gw.url + "/ui/usage")
    expect(page).to_have_url(gw.url + "/auth/login?next=%2Fui%2Fusage")
    expect(page.locator("#signin-key")).to_be_visible()
    ended = httpx2.get(gw.url + "/api/whoami", cookies={"irisgate_session": cookie["value"]})
    assert ended.status_code == 401


def test_the_session_acts_as_the_key_never_more(
    gw: IrisgateServer, admin_key: str, page: Page
) -> None:
    """A narrowed key signs in as its owner narrowed: the admin's key limited to one model
    reaches that model only, and cannot make keys (a narrowed key cannot)."""
    made = as_key(gw, admin_key).post(
        "/api/keys", json={"name": "narrow", "models": ["openai/gpt-4o-mini"]}
    )
    narrow = made.json()
    sign_in(page, gw, narrow["secret"], "/ui/keys")
    expect(page).to_have_url(gw.url + "/ui/keys")
    more = page.request.post(
        gw.url + "/api/keys", data={"name": "broader"}, headers={"origin": gw.url}
    )
    assert more.status == 403 and "narrower" in more.json()["error"]
    whoami = page.request.get(gw.url + "/api/whoami").json()
    assert whoami["key"]["id"] == narrow["id"]


def test_signing_out_ends_the_session_on_the_server(
    gw: IrisgateServer, admin_key: str, page: Page
) -> None:
    key = users_key(gw, admin_key, "sign-out")
    sign_in(page, gw, key["secret"])
    expect(page.locator("h1")).to_have_text("My Dashboard")
    cookie = next(c for c in page.context.cookies() if c["name"] == "irisgate_session")
    page.locator("#sign-out").click()
    expect(page.locator("#signin-message")).to_have_text("You are signed out.")
    ended = httpx2.get(gw.url + "/api/whoami", cookies={"irisgate_session": cookie["value"]})
    assert ended.status_code == 401
    assert as_key(gw, key["secret"]).get("/api/whoami").status_code == 200  # the key lives on


def test_a_wrong_key_is_refused_without_showing_it(gw: IrisgateServer, page: Page) -> None:
    sign_in(page, gw, FOREIGN)
    expect(page.locator("#signin-message")).to_contain_text("That key does not work")
    assert FOREIGN not in page.content()
    assert not [c for c in page.context.cookies() if c["name"] == "irisgate_session"]
    page.fill("#signin-key", "not a key at all")
    page.click("#signin-submit")
    expect(page.locator("#signin-message")).to_contain_text("not a well-formed irisgate key")
    assert FOREIGN not in gw.logs() and "not a key at all" not in gw.logs()
    assert "key sign-in refused" in gw.logs()


def test_failed_sign_ins_are_limited_per_address(gw: IrisgateServer, admin_key: str) -> None:
    attacker = httpx2.Client(
        base_url=gw.url, transport=httpx2.HTTPTransport(local_address="127.0.0.9"), timeout=30
    )
    for _ in range(FAILURES):
        refused = attacker.post("/auth/login", data={"key": FOREIGN})
        assert refused.status_code == 401
    blocked = attacker.post("/auth/login", data={"key": admin_key})  # even a good one, now
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
    assert "irisgate_session" not in blocked.cookies
    # another address is not held back by it
    other = httpx2.Client(
        base_url=gw.url, transport=httpx2.HTTPTransport(local_address="127.0.0.10"), timeout=30
    )
    signed = other.post("/auth/login", data={"key": admin_key, "next": "/ui/keys"})
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/keys"
    assert signed.cookies.get("irisgate_session")


def test_the_form_is_behind_the_cross_site_guard(gw: IrisgateServer, admin_key: str) -> None:
    forged = httpx2.post(
        gw.url + "/auth/login",
        data={"key": admin_key},
        headers={"sec-fetch-site": "cross-site", "origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    assert "irisgate_session" not in forged.cookies


def test_programs_still_need_a_key(gw: IrisgateServer) -> None:
    api = httpx2.get(gw.url + "/api/whoami")
    assert api.status_code == 401 and "/auth/login" in api.json()["error"]
    gpt = openai.OpenAI(base_url=gw.url + "/v1", api_key="-", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        gpt.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )


def test_behind_https_the_cookie_is_secure_and_host_only(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`--base-url https://…`: the session cookie is `__Host-irisgate_session`, Secure."""
    data_dir = tmp_path_factory.mktemp("keys-signin-https")
    env = {"IRISGATE_BASE_URL": "https://ai.example.com"}
    with InProcessIrisgate(
        dashboard_config(fake_llm.base_url), data_dir=data_dir, identity="keys", env=env
    ) as gw:
        made = subprocess.run(
            [sys.executable, "-m", "irisgate", "keys", "create", ADMIN, "--name", "first"],
            env={**os.environ, "IRISGATE_DATA_DIR": str(data_dir)},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        signed = gw.client.post(
            "/auth/login", data={"key": made.stdout.strip()}, follow_redirects=False
        )
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("__Host-irisgate_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
        token = cookie.split(";", 1)[0].split("=", 1)[1]
        plain = gw.client.get("/api/whoami", headers={"cookie": f"irisgate_session={token}"})
        assert plain.status_code == 401  # only the __Host- name counts behind https
        host = gw.client.get("/api/whoami", headers={"cookie": f"__Host-irisgate_session={token}"})
        assert host.status_code == 200 and host.json()["login_name"] == ADMIN
