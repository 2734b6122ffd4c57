"""The headers every response under `/ui/` and `/chat/` (and the OAuth callback page)
carries: pages, redirects, static files, 404s and refusals alike (`build_app` wraps those
paths before anything answers).

- No page can be framed (`frame-ancestors 'none'`, `X-Frame-Options: DENY`): another site
  cannot overlay the dashboard and trick a click.
- Scripts come only from the gateway's own files (`script-src 'self'`, no inline script, no
  `eval`); templates pass data to them as JSON attributes (`static/start.js`).
- Images come only from the gateway and `data:`/`blob:` URLs: markdown in a model's reply
  (`![x](https://host/?q=<conversation>)`) cannot make the browser send text anywhere, and
  `connect-src 'self'` does the same for `fetch`.
- Inline `style` attributes stay allowed (charts and bars set widths); they cannot load
  anything from elsewhere, since every fetch a stylesheet could make is limited as above.
"""

from __future__ import annotations

from typing import Any

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
_NAMES = frozenset(name for name, _ in HEADERS)


def is_page(path: str) -> bool:
    """A path of the dashboard (`/ui`, and its admin pages at Aperture's `/admin`), the chat
    app (`/chat`, not `/api/chat/...`), the page an OAuth sign-in for a connector returns to
    (`/aperture/auth/<id>/callback`) or the sign-in pages of identity modes oidc and keys
    (`/auth/…`)."""
    return path in ("/ui", "/chat", "/admin") or path.startswith(
        ("/ui/", "/chat/", "/admin/", "/aperture/auth/", "/auth/")
    )


def with_page_headers(send: Any) -> Any:
    """`send`, with `HEADERS` in place of any of the same names on the response start."""

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
            message = {**message, "headers": [*kept, *HEADERS]}
        await send(message)

    return wrapped
