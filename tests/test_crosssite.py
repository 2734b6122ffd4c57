"""The cross-site policy, decided from a request's headers alone (sans-io): which browser
requests count as sent by another site's page. Through a running irisgate: tests/e2e,
tests/connectors and tests/web (`*_crosssite*`)."""

from __future__ import annotations

from typing import Any

import pytest

from irisgate.crosssite import CrossSiteGuard

GATEWAY = "ai.example.ts.net"
LOOPBACK = ("127.0.0.1", 50000)
TAILNET_PEER = ("100.64.0.7", 50000)


def scope(
    method: str = "POST",
    path: str = "/v1/chat/completions",
    *,
    host: str | None = GATEWAY,
    scheme: str = "http",
    client: tuple[str, int] = LOOPBACK,
    **headers: str,
) -> dict[str, Any]:
    raw = [(b"host", host.encode())] if host is not None else []
    raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"method": method, "path": path, "scheme": scheme, "client": client, "headers": raw}


TAILSCALE = CrossSiteGuard(trust_forwarded=False)
SERVE = CrossSiteGuard(trust_forwarded=True)


@pytest.mark.parametrize(
    "headers",
    [
        {},  # SDKs, curl, agents: no browser headers at all
        {"sec_fetch_site": "same-origin", "origin": f"http://{GATEWAY}"},
        {"sec_fetch_site": "none"},  # typed or bookmarked by the user
        {"origin": f"http://{GATEWAY}"},  # a browser without Sec-Fetch-*
        {"origin": f"http://{GATEWAY.upper()}:80"},  # host case and the default port
        {"sec_fetch_site": "Same-Origin"},
    ],
)
def test_the_gateways_own_pages_and_non_browsers_pass(headers: dict[str, str]) -> None:
    assert TAILSCALE.refusal(scope(**headers)) is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (
            {"sec_fetch_site": "cross-site", "origin": "https://evil.example"},
            "the browser sent it from another site (Sec-Fetch-Site: cross-site, "
            "Origin https://evil.example)",
        ),
        (
            {"sec_fetch_site": "same-site", "origin": "http://other.example.ts.net"},
            "(Sec-Fetch-Site: same-site, Origin http://other.example.ts.net)",
        ),
        ({"sec_fetch_site": "cross-site"}, "(Sec-Fetch-Site: cross-site, no Origin)"),
        ({"sec_fetch_site": "bogus"}, "Sec-Fetch-Site: bogus"),
        (
            {"origin": "https://evil.example"},
            f"Origin https://evil.example does not match this gateway (http://{GATEWAY})",
        ),
        ({"origin": "null"}, "Origin null"),
        ({"origin": f"https://{GATEWAY}"}, "does not match"),  # another scheme
        ({"origin": f"http://{GATEWAY}:8080"}, "does not match"),  # another port
        ({"origin": f"http://{GATEWAY}.evil.example"}, "does not match"),
        ({"origin": f"http://user@{GATEWAY}"}, "does not match"),  # not an origin at all
        ({"origin": f"http://{GATEWAY}/path"}, "does not match"),
        ({"origin": f"http://{GATEWAY}:99999"}, "does not match"),
        ({"origin": "e" * 500}, "e" * 200 + "… does not match"),  # quoted back, shortened
    ],
)
def test_browser_requests_from_other_sites_are_refused(
    headers: dict[str, str], reason: str
) -> None:
    refusal = TAILSCALE.refusal(scope(**headers))
    assert refusal is not None
    assert refusal.startswith("cross-site request refused: ")
    assert reason in refusal


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"])
def test_every_state_changing_method_is_checked(method: str) -> None:
    assert TAILSCALE.refusal(scope(method, "/api/config", origin="https://evil.example"))


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_pass_except_on_pass_through_paths(method: str) -> None:
    evil = {"origin": "https://evil.example", "sec_fetch_site": "cross-site"}
    assert TAILSCALE.refusal(scope(method, "/api/whoami", **evil)) is None
    assert TAILSCALE.refusal(scope(method, "/ui/settings", **evil)) is None
    # what an upstream does with a GET is not irisgate's to know
    assert TAILSCALE.refusal(scope(method, "/v1/connectors/jira/issues", **evil))
    assert TAILSCALE.refusal(scope(method, "/v1/mcp", **evil))


def test_a_request_without_host_cannot_match_an_origin() -> None:
    refusal = TAILSCALE.refusal(scope(host=None, origin=f"http://{GATEWAY}"))
    assert refusal == (
        f"cross-site request refused: Origin http://{GATEWAY} does not match this gateway"
    )


def test_ipv6_hosts_compare_as_origins() -> None:
    assert TAILSCALE.refusal(scope(host="[::1]:8080", origin="http://[::1]:8080")) is None
    assert TAILSCALE.refusal(scope(host="[::1]:8080", origin="http://[::2]:8080"))


def test_https_listeners_use_their_own_scheme() -> None:
    assert TAILSCALE.refusal(scope(scheme="https", origin=f"https://{GATEWAY}")) is None
    assert TAILSCALE.refusal(scope(scheme="https", origin=f"http://{GATEWAY}"))


def test_serve_mode_trusts_what_tailscale_serve_forwarded_from_loopback() -> None:
    # tailscale serve terminates TLS for the tailnet name and proxies to 127.0.0.1:8080
    forwarded = {
        "x_forwarded_host": GATEWAY,
        "x_forwarded_proto": "https",
        "host": "127.0.0.1:8080",
    }
    ok = scope(origin=f"https://{GATEWAY}", **forwarded)
    assert SERVE.refusal(ok) is None
    assert SERVE.refusal(scope(origin="http://127.0.0.1:8080", **forwarded))
    # plain-HTTP serve sends no X-Forwarded-Proto: the scheme stays the listener's
    plain = scope(origin=f"http://{GATEWAY}", x_forwarded_host=GATEWAY, host="127.0.0.1:8080")
    assert SERVE.refusal(plain) is None


def test_forwarded_headers_count_only_in_serve_mode_from_loopback() -> None:
    headers = {"x_forwarded_host": "evil.example", "x_forwarded_proto": "https"}
    assert TAILSCALE.refusal(scope(origin="https://evil.example", **headers))
    assert SERVE.refusal(scope(origin="https://evil.example", client=TAILNET_PEER, **headers))
    assert SERVE.refusal(scope(origin="https://evil.example", **headers)) is None
