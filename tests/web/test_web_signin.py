"""Identity mode oidc: people sign in through a real OpenID provider (oauth2-mock-server,
tests/oauth/oidc.mjs) with Chromium, and irisgate refuses every ID token it must not believe.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
import asyncpg
import httpx2
import openai
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.engine import make_url

from irisgate.store.signin import MAX_ATTEMPTS
from irisgate.testing import FakeLLM
from irisgate.testing.oauth_server import OidcProvider, oidc_provider
from irisgate.testing.server import IrisgateServer, free_port

# one of the suite's longest modules (~44 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

OAUTH_DIR = Path(__file__).parents[1] / "oauth"
CLIENT_ID, CLIENT_SECRET = "irisgate-web", "s3cret-client"
ALICE = {"email": "alice@example.com", "name": "Alice", "groups": [], "mode": "ok"}
BOB = {"email": "bob@example.com", "name": "Bob", "groups": ["llm-users"], "mode": "ok"}
CAROL = {"email": "carol@example.com", "name": "Carol", "groups": ["other"], "mode": "ok"}


class Provider:
    def __init__(self, running: OidcProvider, control: Path) -> None:
        self.issuer = running.issuer
        self.rotate_keys = running.rotate_keys
        self._control = control

    def next_sign_in(self, person: dict[str, Any], **changes: Any) -> None:
        self._control.write_text(json.dumps({**person, **changes}))


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    control = tmp_path_factory.mktemp("oidc") / "control.json"
    control.write_text(json.dumps(ALICE))
    with oidc_provider(OAUTH_DIR, CLIENT_ID, CLIENT_SECRET, control) as running:
        yield Provider(running, control)


def _config(upstream: str) -> str:
    config = {
        "providers": {
            "openai": {
                "baseurl": upstream,
                "apikey": "sk-upstream",
                "models": ["gpt-4o-mini"],
                "compatibility": {"openai_chat": True},
            }
        },
        "grants": [
            {
                "src": ["alice@example.com"],
                "app": {"tailscale.com/cap/aperture": [{"role": "admin", "models": "**"}]},
            },
            {
                "src": ["group:llm-users"],
                "app": {"tailscale.com/cap/aperture": [{"role": "user", "models": "**"}]},
            },
        ],
    }
    return json.dumps(config)


def oidc_server(
    provider: Provider,
    upstream: str,
    data_dir: Path,
    database: str | None = None,
    *,
    scheme: str = "http",
) -> IrisgateServer:
    """irisgate in mode oidc on a reserved port (the provider must know the callback URL
    before irisgate starts); the client secret comes from an env: reference. `scheme`: of
    the base URL browsers are told (https: irisgate behind a TLS proxy)."""
    port = free_port()
    return IrisgateServer(
        _config(upstream),
        data_dir=data_dir,
        identity="oidc",
        database=database,
        port=port,
        env={"OIDC_SECRET": CLIENT_SECRET},
        extra_args=(
            "--oidc-issuer",
            provider.issuer,
            "--oidc-client-id",
            CLIENT_ID,
            "--oidc-client-secret",
            "env:OIDC_SECRET",
            "--oidc-base-url",
            f"{scheme}://127.0.0.1:{port}",
        ),
    )


@pytest.fixture(scope="module")
def gateway(
    provider: Provider, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    server = oidc_server(provider, fake_llm.base_url, tmp_path_factory.mktemp("irisgate-oidc"))
    with server:
        yield server


def sign_in(gateway: IrisgateServer, next_path: str = "/ui/") -> httpx2.Response:
    """The browser's redirects of a sign-in, followed by hand: the callback's answer (its
    `irisgate_session` cookie when it worked). The client keeps the sign-in cookie."""
    with httpx2.Client(timeout=30) as browser:
        return _through_provider(browser, gateway, next_path)


def _through_provider(
    browser: httpx2.Client, gateway: IrisgateServer, next_path: str
) -> httpx2.Response:
    start = browser.get(f"{gateway.url}/auth/login", params={"next": next_path})
    assert start.status_code == 302, start.text
    at_provider = browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    callback = at_provider.headers["location"]
    assert callback.startswith(f"{gateway.url}/auth/callback?")
    return browser.get(callback)


def session_of(response: httpx2.Response) -> str:
    cookie = response.cookies.get("irisgate_session")
    assert cookie, f"no session: {response.status_code} {response.text[:300]}"
    return cookie


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    yield context.new_page()
    context.close()


def test_a_browser_signs_in_uses_the_chat_model_and_signs_out(
    gateway: IrisgateServer, provider: Provider, page: Page
) -> None:
    provider.next_sign_in(ALICE)
    page.goto(gateway.url + "/ui/usage")  # not signed in: through the provider and back
    expect(page).to_have_url(gateway.url + "/ui/usage")
    expect(page.locator("#signed-in")).to_have_text("alice@example.com")
    cookie = next(c for c in page.context.cookies() if c["name"] == "irisgate_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"]  # http://127.0.0.1 here; https base URLs make it Secure
    assert cookie["expires"] > time.time() + 11 * 3600  # the default 12 hours
    # the dashboard's own API calls are the signed-in person's
    whoami = page.request.get(gateway.url + "/api/whoami")
    assert whoami.ok and whoami.json()["login_name"] == "alice@example.com"

    page.locator("#sign-out").click()
    expect(page.locator("#signin-message")).to_have_text("You are signed out.")
    assert not [c for c in page.context.cookies() if c["name"] == "irisgate_session"]
    # the old cookie is dead on the server too, not only gone from this browser
    ended = httpx2.get(gateway.url + "/api/whoami", cookies={"irisgate_session": cookie["value"]})
    assert ended.status_code == 401
    assert "expired or ended" in ended.json()["error"]


def test_the_chat_app_answers_a_signed_in_person(
    gateway: IrisgateServer, provider: Provider, page: Page, fake_llm: FakeLLM
) -> None:
    """The chat's model rounds run as the person of the session cookie (group grant)."""
    provider.next_sign_in(BOB)
    fake_llm.reply_text = "Hello from the model"
    try:
        page.goto(gateway.url + "/chat/")
        expect(page).to_have_url(gateway.url + "/chat/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.fill("#model-search", "gpt-4o-mini")
        page.select_option("#model-select", index=0)
        page.fill("#prompt", "hi")
        page.click("#send")
        answer = page.locator(".msg.assistant").last
        expect(answer.locator(".body")).to_contain_text("Hello from the model")
        expect(page.locator(".msg.assistant.streaming")).to_have_count(0)
    finally:
        fake_llm.reply_text = None
    whoami = page.request.get(gateway.url + "/api/whoami").json()
    assert whoami["login_name"] == "bob@example.com" and whoami["groups"] == ["llm-users"]
    page.locator("#sign-out").click()
    expect(page.locator("#signin-message")).to_have_text("You are signed out.")


def test_groups_from_the_id_token_match_group_grants(
    gateway: IrisgateServer, provider: Provider, fake_llm: FakeLLM
) -> None:
    provider.next_sign_in(BOB)
    bob = session_of(sign_in(gateway))
    client = openai.OpenAI(
        base_url=gateway.url + "/v1",
        api_key="-",
        default_headers={"cookie": f"irisgate_session={bob}"},
        max_retries=0,
    )
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    whoami = httpx2.get(gateway.url + "/api/whoami", cookies={"irisgate_session": bob}).json()
    assert whoami["login_name"] == "bob@example.com" and whoami["role"] == "user"

    provider.next_sign_in(CAROL)  # in no granted group
    carol = session_of(sign_in(gateway))
    refused = httpx2.get(gateway.url + "/ui/usage", cookies={"irisgate_session": carol})
    assert refused.status_code == 403 and "no role granted" in refused.text


def test_without_a_session_pages_go_to_sign_in_and_apis_answer_401(
    gateway: IrisgateServer,
) -> None:
    page = httpx2.get(gateway.url + "/ui/usage?days=7")
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2Fui%2Fusage%3Fdays%3D7"

    gpt = openai.OpenAI(base_url=gateway.url + "/v1", api_key="-", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        gpt.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert "sign in first" in str(refused.value)

    claude = anthropic.Anthropic(base_url=gateway.url, api_key="-", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        claude.messages.create(
            model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]

    api = httpx2.get(gateway.url + "/api/whoami")
    assert api.status_code == 401 and "sign in first" in api.json()["error"]


def test_a_signed_in_person_makes_an_api_key_that_programs_use(
    gateway: IrisgateServer, provider: Provider
) -> None:
    """Recipe 3: people sign in, programs use API keys (issue 19): a key made with the
    session works without it, as its owner; revoked, it is refused. A key carries its owner's
    groups of their latest sign-in: Bob, granted through a group, has his role with his key
    until he signs in without the group."""
    provider.next_sign_in(BOB)
    cookies = {"irisgate_session": session_of(sign_in(gateway))}
    bobs = httpx2.post(gateway.url + "/api/keys", json={"name": "ci"}, cookies=cookies).json()
    who = httpx2.get(gateway.url + "/api/whoami", headers={"x-api-key": bobs["secret"]}).json()
    assert (who["login_name"], who["groups"], who["role"]) == (
        "bob@example.com",
        ["llm-users"],
        "user",
    )
    gpt = openai.OpenAI(base_url=gateway.url + "/v1", api_key=bobs["secret"], max_retries=0)
    gpt.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    provider.next_sign_in(BOB, groups=[])  # the provider no longer lists the group
    session_of(sign_in(gateway))
    who = httpx2.get(gateway.url + "/api/whoami", headers={"x-api-key": bobs["secret"]}).json()
    assert (who["groups"], who["role"]) == ([], None)
    with pytest.raises(openai.PermissionDeniedError):
        gpt.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    provider.next_sign_in(ALICE)
    cookies = {"irisgate_session": session_of(sign_in(gateway))}
    made = httpx2.post(gateway.url + "/api/keys", json={"name": "ci"}, cookies=cookies)
    assert made.status_code == 201, made.text
    key = made.json()
    gpt = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key["secret"], max_retries=0)
    gpt.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    who = httpx2.get(gateway.url + "/api/whoami", headers={"x-api-key": key["secret"]}).json()
    assert (who["login_name"], who["key"]["id"]) == ("alice@example.com", key["id"])
    gone = httpx2.delete(f"{gateway.url}/api/keys/{key['id']}", cookies=cookies)
    assert gone.status_code == 200
    with pytest.raises(openai.AuthenticationError):
        gpt.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )


# -- ID tokens irisgate must not believe -----------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("tampered", "bad_signature"),
        ("wrong-aud", "audience (aud) is not this client"),
        ("wrong-iss", "iss"),
        ("expired", "expired"),
        ("wrong-nonce", "nonce"),
    ],
)
def test_an_id_token_that_fails_a_check_starts_no_session(
    gateway: IrisgateServer, provider: Provider, mode: str, reason: str
) -> None:
    # tampered: the payload names alice (an admin) under a signature made for bob
    provider.next_sign_in(BOB, mode=mode, tampered_email="alice@example.com")
    answer = sign_in(gateway)
    assert answer.status_code == 400
    assert "irisgate_session" not in answer.cookies
    message = answer.text.split('signin-message">', 1)[1].split("<", 1)[0]
    assert "the ID token is refused" in message and reason.lower() in message.lower(), message
    assert "eyJ" not in answer.text  # no token in the page
    assert "eyJ" not in gateway.logs() and CLIENT_SECRET not in gateway.logs()


def test_tokens_signed_with_a_new_key_of_the_provider_are_accepted(
    gateway: IrisgateServer, provider: Provider
) -> None:
    """irisgate holds the JWKS it read; a token naming a key id it lacks makes it read the
    JWKS again (the provider rotated its keys) instead of refusing everyone."""
    provider.next_sign_in(BOB)
    session_of(sign_in(gateway))  # irisgate has read the JWKS (one key)
    provider.rotate_keys()  # from now on the provider signs with both keys in turn
    for _ in range(2):  # an access token and an ID token each: one of them is the new key's
        session_of(sign_in(gateway))


def test_a_replayed_callback_is_refused(gateway: IrisgateServer, provider: Provider) -> None:
    provider.next_sign_in(BOB)
    with httpx2.Client(timeout=30) as browser:
        first = _through_provider(browser, gateway, "/ui/")
        assert first.status_code == 303 and first.headers["location"] == "/ui/"
        session_of(first)
    with httpx2.Client(timeout=30, cookies={"irisgate_signin": _state(first)}) as same:
        again = same.get(str(first.request.url))
    assert again.status_code == 400 and "used already" in again.text
    assert "irisgate_session" not in again.cookies


def test_a_callback_from_another_browser_is_refused(
    gateway: IrisgateServer, provider: Provider
) -> None:
    """Login CSRF: a callback URL started in the attacker's browser, opened in the victim's."""
    provider.next_sign_in(BOB)
    with httpx2.Client(timeout=30) as attacker:
        start = attacker.get(f"{gateway.url}/auth/login")
        callback = attacker.get(start.headers["location"]).headers["location"]
    victim = httpx2.get(callback)
    assert victim.status_code == 400 and "not started in this browser" in victim.text
    assert "irisgate_session" not in victim.cookies


def test_sign_in_returns_only_to_this_gateway(gateway: IrisgateServer, provider: Provider) -> None:
    provider.next_sign_in(BOB)
    answer = sign_in(gateway, "//evil.example/ui")
    assert answer.headers["location"] == "/ui/"


def test_logout_from_another_site_is_refused(gateway: IrisgateServer, provider: Provider) -> None:
    provider.next_sign_in(BOB)
    bob = session_of(sign_in(gateway))
    forged = httpx2.post(
        gateway.url + "/auth/logout",
        cookies={"irisgate_session": bob},
        headers={"sec-fetch-site": "cross-site", "origin": "https://evil.example"},
    )
    assert forged.status_code == 403
    still = httpx2.get(gateway.url + "/api/whoami", cookies={"irisgate_session": bob})
    assert still.status_code == 200


def _state(response: httpx2.Response) -> str:
    query = dict(response.request.url.params)
    return str(query["state"])


# -- sessions in PostgreSQL: every instance, and after a restart ------------------------------

ADMIN_URL = os.environ.get(
    "IRISGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # in a thread of its own: the module's sync Playwright keeps an event loop running here
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


@pytest.fixture
def pg_url() -> Iterator[str]:
    if os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0":
        pytest.skip("IRISGATE_TEST_POSTGRES=0")
    name = f"irisgate_signin_{secrets.token_hex(6)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _whoami(server: IrisgateServer, session: str) -> httpx2.Response:
    return httpx2.get(server.url + "/api/whoami", cookies={"irisgate_session": session})


def test_a_session_works_on_every_instance_survives_a_restart_and_ends_everywhere(
    provider: Provider,
    fake_llm: FakeLLM,
    pg_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    first = oidc_server(provider, fake_llm.base_url, tmp_path_factory.mktemp("a"), pg_url)
    second = oidc_server(provider, fake_llm.base_url, tmp_path_factory.mktemp("b"), pg_url)
    with first, second:
        provider.next_sign_in(BOB)
        bob = session_of(sign_in(first))
        assert _whoami(second, bob).json()["login_name"] == "bob@example.com"
        second.stop()
        second.start()
        assert _whoami(second, bob).json()["login_name"] == "bob@example.com"

        ended = httpx2.post(first.url + "/auth/logout", cookies={"irisgate_session": bob})
        assert ended.status_code == 200
        assert _whoami(first, bob).status_code == 401  # at once where it was ended
        deadline = time.monotonic() + 30  # the bound is 5 s (CACHE_S); only a stuck test waits
        while _whoami(second, bob).status_code != 401:
            assert time.monotonic() < deadline, "the other instance still accepts the session"
            time.sleep(0.1)


def test_sign_ins_under_way_are_bounded(gateway: IrisgateServer, provider: Provider) -> None:
    """Anyone may start a sign-in: past MAX_ATTEMPTS under way, /auth/login answers 503."""
    database = sqlite3.connect(gateway.data_dir / "irisgate.db", timeout=30)
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = [(f"filler-{n}", "n", "v", "/ui/", later) for n in range(MAX_ATTEMPTS)]
    with database:
        database.executemany("INSERT INTO signin_attempts VALUES (?, ?, ?, ?, ?)", rows)
    try:
        busy = httpx2.get(gateway.url + "/auth/login")
        assert busy.status_code == 503 and busy.headers["retry-after"] == "60"
        assert "sign-ins are under way" in busy.text
        assert "irisgate_signin" not in busy.cookies
    finally:
        with database:
            database.execute("DELETE FROM signin_attempts WHERE state_hash LIKE 'filler-%'")
        database.close()
    provider.next_sign_in(BOB)
    session_of(sign_in(gateway))


def test_doctor_reads_the_providers_documents(
    provider: Provider, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("doctor")
    common = [sys.executable, "-m", "irisgate", "doctor", "--data-dir", str(data_dir)]
    oidc = ["--identity", "oidc", "--oidc-client-id", CLIENT_ID]
    oidc += ["--oidc-client-secret", "env:OIDC_SECRET", "--oidc-base-url", "https://ai.example"]
    env = {**os.environ, "OIDC_SECRET": CLIENT_SECRET}
    run = subprocess.run(
        [*common, *oidc, "--oidc-issuer", provider.issuer],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    # one signing key, or two once the rotation test ran
    assert f"ok   identity: mode oidc: people sign in at {provider.issuer} (" in run.stdout
    assert "the provider must allow the redirect URI https://ai.example/auth/callback" in run.stdout
    assert CLIENT_SECRET not in run.stdout

    wrong = subprocess.run(
        [*common, *oidc, "--oidc-issuer", provider.issuer + "/elsewhere"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 1
    assert "FIX  identity: mode oidc: the provider's discovery document answered HTTP 404" in (
        wrong.stdout
    )


def test_behind_https_the_cookies_are_secure_and_host_only(
    provider: Provider, fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With an https base URL the cookies are `__Host-` prefixed and Secure (a TLS proxy in
    front; this test talks to irisgate itself over http and sends the cookies by hand)."""
    data_dir = tmp_path_factory.mktemp("irisgate-https")
    with oidc_server(provider, fake_llm.base_url, data_dir, scheme="https") as server:
        provider.next_sign_in(BOB)
        start = httpx2.get(f"{server.url}/auth/login")
        attempt = start.headers["set-cookie"]
        assert attempt.startswith("__Host-irisgate_signin=")
        assert all(part in attempt.lower() for part in ("; secure", "; httponly", "; path=/;"))
        state = attempt.split(";", 1)[0].split("=", 1)[1]
        callback = httpx2.get(start.headers["location"]).headers["location"]
        assert callback.startswith(f"https://127.0.0.1:{server.port}/auth/callback?")
        done = httpx2.get(
            callback.replace("https://", "http://", 1),
            headers={"cookie": f"__Host-irisgate_signin={state}"},
        )
        assert done.status_code == 303, done.text
        session = next(
            v for k, v in done.headers.multi_items() if v.startswith("__Host-irisgate_session=")
        )
        assert "; secure" in session.lower() and "samesite=lax" in session.lower()
        token = session.split(";", 1)[0].split("=", 1)[1]
        me = httpx2.get(server.url + "/api/whoami", headers={"cookie": session.split(";")[0]})
        assert me.json()["login_name"] == "bob@example.com"
        unprefixed = httpx2.get(
            server.url + "/api/whoami", headers={"cookie": f"irisgate_session={token}"}
        )
        assert unprefixed.status_code == 401
