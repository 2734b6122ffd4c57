"""Refusing requests that another site's page makes a visitor's browser send (CSRF).

irisgate knows its callers by their network identity, not by a cookie or a token. So any web
page a tailnet user opens could make the user's browser call irisgate as that user: a
cross-site `<form>` or `fetch(url, {mode: "no-cors"})` sends a `text/plain` POST without a
CORS preflight, and it would spend the user's budget or change the config with an admin's
rights. Browsers say where such a request comes from, and `CrossSiteGuard` reads that once,
at the front door, before any handler:

- `Sec-Fetch-Site` (sent by every current browser, and no page can set it): `same-origin`
  and `none` (the user typed or bookmarked the URL) pass; `same-site`, `cross-site` and
  anything else are refused.
- Without it, `Origin`: it must be this gateway's own `scheme://host[:port]`. `Origin: null`
  (sandboxed frames, `file:` pages, some redirects) is refused.
- Neither header: not a browser (SDKs, curl, agents), which pass unchanged.

Checked: every state-changing method (anything but GET, HEAD and OPTIONS) on every path, and
every method on the pass-through paths (`/v1/mcp`, `/v1/connectors/`), where irisgate cannot
know what an upstream does with a GET. irisgate never answers with CORS headers, so other
sites cannot read any answer either.

The gateway's own origin is the request's scheme and `Host`. In identity mode `serve`, from a
loopback peer (that is `tailscale serve` itself, which sets them), `X-Forwarded-Host` and
`X-Forwarded-Proto` say what the browser connected to; nothing else trusts them.

The refusal is a 403 in the envelope of the endpoint called (`refuse`, `web.endpoint`), naming
why: OpenAI's on an OpenAI path, Anthropic's, Google's or Bedrock's on theirs, JSON-RPC on
`/v1/mcp`, `{"error": ...}` on irisgate's own API, text on pages.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import structlog

from irisgate.identity.resolver import is_loopback
from irisgate.web.endpoint import endpoint_of

log = structlog.get_logger("irisgate.crosssite")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: browser-initiated requests that come from irisgate's own pages, or from the user
ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SHOWN = 200  # longest header value quoted back in a refusal
#: the only headers the guard reads
_READ = frozenset(
    {b"sec-fetch-site", b"origin", b"host", b"x-forwarded-host", b"x-forwarded-proto"}
)
#: the headers that tell a browser's request (without either: not a browser)
_BROWSER = frozenset({b"sec-fetch-site", b"origin"})
Origin = tuple[str, str, int]


class CrossSiteGuard:
    """Decides, per request, whether a browser sent it from a page of another site."""

    def __init__(self, *, trust_forwarded: bool) -> None:
        """`trust_forwarded`: read X-Forwarded-Host/-Proto from loopback peers (mode serve)."""
        self._trust_forwarded = trust_forwarded

    def refusal(self, scope: dict[str, Any]) -> str | None:
        """Why this request is refused as cross-site; None when it may go on."""
        if scope["method"] in SAFE_METHODS and not endpoint_of(scope).passes_through:
            return None
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        for name, _ in headers:
            if name in _BROWSER:
                break
        else:
            return None  # not a browser: SDKs, curl and agents send neither header
        seen = {name: value.decode("latin-1").strip() for name, value in headers if name in _READ}
        fetch_site, origin = seen.get(b"sec-fetch-site"), seen.get(b"origin")
        if fetch_site is not None:
            if fetch_site.lower() in ALLOWED_FETCH_SITES:
                return None
            sender = f"Origin {_shown(origin)}" if origin else "no Origin"
            return (
                f"cross-site request refused: the browser sent it from another site "
                f"(Sec-Fetch-Site: {_shown(fetch_site)}, {sender})"
            )
        if origin is None:
            return None  # not a browser: SDKs, curl and agents send neither header
        if origin == "null":
            return "cross-site request refused: Origin null (a sandboxed or file: page)"
        scheme, host = self._own(scope, seen)
        own = _origin(f"{scheme}://{host}") if host else None
        if own is not None and _origin(origin) == own:
            return None
        gateway = f" ({scheme}://{_shown(host)})" if own is not None else ""
        return (
            f"cross-site request refused: Origin {_shown(origin)} does not match "
            f"this gateway{gateway}"
        )

    def _own(self, scope: dict[str, Any], seen: dict[bytes, str]) -> tuple[str, str | None]:
        """The scheme and host the browser connected to."""
        scheme: str = scope.get("scheme", "http")
        host = seen.get(b"host")
        client = scope.get("client")
        if self._trust_forwarded and client is not None and is_loopback(client[0]):
            proto = seen.get(b"x-forwarded-proto", "").lower()
            host = seen.get(b"x-forwarded-host") or host
            return (proto if proto in _DEFAULT_PORTS else scheme), host
        return scheme, host


def _origin(text: str) -> Origin | None:
    """(scheme, host, port) of `scheme://host[:port]`; None when it is anything else."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return scheme, parts.hostname, port or _DEFAULT_PORTS[scheme]


def _shown(value: str | None) -> str:
    value = value or ""
    return value if len(value) <= _SHOWN else value[:_SHOWN] + "…"


async def refuse(
    scope: dict[str, Any],
    send: Any,
    message: str,
    event: str = "refused a browser request from another site",
) -> None:
    """Answer 403 with `message`, in the envelope of the endpoint the request was for."""
    log.warning(event, method=scope["method"], path=scope["path"], reason=message)
    await endpoint_of(scope).answer(send, 403, "permission", message)
