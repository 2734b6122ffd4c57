"""Sign-in pages of identity modes oidc and keys: /auth/login, /auth/callback, /auth/logout.

Mode keys has no provider: `GET /auth/login` shows a form to paste an API key, which
`POST /auth/login` (irisgate.web.keysignin) turns into a session. What follows is mode oidc.

- `GET /auth/login?next=/ui/…` starts a sign-in: a random `state`, `nonce` and PKCE
  verifier, kept in `signin_attempts` (by the state's hash, for ten minutes, so the callback
  may reach any instance), and the state in a short-lived cookie that ties the sign-in to
  this browser; then a redirect to the provider.
- `GET /auth/callback?code=…&state=…` finishes it: the state must be this browser's and is
  taken from the table once (a replayed callback finds nothing), the code is exchanged with
  the verifier, the ID token checked (`irisgate.identity.oidc`), and a session starts
  (`irisgate.identity.sessions`); then back to `next`.
- `GET /auth/logout` shows a button; `POST /auth/logout` (cross-site protected like every
  state change) ends the session everywhere and clears the cookie.

Every failure is a page that says what went wrong and offers to start again; no token,
code or secret is ever in a page or a log line.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from irisgate import __version__
from irisgate.handlers import runtime_of
from irisgate.identity import Identity
from irisgate.identity.oidc import SignInFailed
from irisgate.identity.resolver import KeysOnlyResolver, OidcResolver, SignInResolver
from irisgate.identity.sessions import (
    ATTEMPT_COOKIE,
    COOKIE,
    cookie_name,
    cookie_value,
    token_hash,
)
from irisgate.store import signin
from irisgate.web.pages import template

log = structlog.get_logger("irisgate.signin")

ATTEMPT_TTL = timedelta(minutes=10)
DEFAULT_NEXT = "/ui/"
_MAX_NEXT = 2048
#: the longest `code` and `state` read from the callback's query
_MAX_PARAM = 4096


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a path on this gateway, never another site."""
    if not raw or len(raw) > _MAX_NEXT or not raw.startswith("/") or raw.startswith("//"):
        return DEFAULT_NEXT
    if "\\" in raw or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        return DEFAULT_NEXT
    return raw


def sign_in_redirect(path: str, query: str) -> Response:
    """Where a page request without a session is sent (mode oidc)."""
    target = path + (f"?{query}" if query else "")
    return RedirectResponse(f"/auth/login?next={quote(safe_next(target), safe='')}", 303)


def _resolver(request: Request) -> OidcResolver | None:
    resolver = runtime_of(request).resolver.inner  # the mode's, behind the API key ring
    return resolver if isinstance(resolver, OidcResolver) else None


def with_sessions(request: Request) -> SignInResolver | None:
    """The mode's resolver when browsers sign in to it (modes oidc and keys)."""
    resolver = runtime_of(request).resolver.inner
    return resolver if isinstance(resolver, OidcResolver | KeysOnlyResolver) else None


def page(
    title: str,
    message: str,
    status: int,
    *,
    again: bool = True,
    logout: bool = False,
    key_form: bool = False,
    next_path: str = DEFAULT_NEXT,
) -> HTMLResponse:
    """The sign-in page: a message, and the form or link its state calls for."""
    body = template("signin.html").render(
        title=title,
        message=message,
        again=again,
        logout=logout,
        key_form=key_form,
        next_path=next_path,
        version=__version__,
    )
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


def set_cookie(
    resolver: SignInResolver, response: Response, name: str, value: str, max_age: int
) -> None:
    """Set cookie `name` (HttpOnly, SameSite=Lax, Path=/; `__Host-` and Secure behind https)."""
    secure = resolver.sessions.secure
    response.set_cookie(
        cookie_name(name, secure=secure),
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure,
    )


def _not_oidc() -> HTMLResponse:
    return page(
        "Sign-in is off",
        "This gateway knows people by their network identity (--identity is not oidc or keys).",
        404,
        again=False,
    )


async def login(request: Request) -> Response:
    if isinstance(runtime_of(request).resolver.inner, KeysOnlyResolver):
        return page(
            "Sign in",
            "Paste one of your irisgate API keys: this browser then acts as that key until"
            " you sign out, the sign-in expires or the key is revoked.",
            200,
            again=False,
            key_form=True,
            next_path=safe_next(request.query_params.get("next")),
        )
    oidc = _resolver(request)
    if oidc is None:
        return _not_oidc()
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)
    try:
        url = await oidc.client.authorization_url(state, nonce, verifier)
    except SignInFailed as exc:
        log.warning("sign-in could not start", reason=str(exc))
        return page("Sign-in failed", str(exc), 502)
    now = datetime.now(UTC)
    attempt = signin.AttemptRow(nonce, verifier, safe_next(request.query_params.get("next")))
    db = runtime_of(request).db
    if not await signin.add_attempt(db, token_hash(state), attempt, now + ATTEMPT_TTL, now):
        log.warning("sign-in refused: too many under way", limit=signin.MAX_ATTEMPTS)
        busy = page(
            "Sign-in is busy",
            f"More than {signin.MAX_ATTEMPTS} sign-ins are under way; try again in a minute.",
            503,
        )
        busy.headers["retry-after"] = "60"
        return busy
    response = RedirectResponse(url, 302)
    response.headers["cache-control"] = "no-store"
    max_age = int(ATTEMPT_TTL.total_seconds())
    set_cookie(oidc, response, ATTEMPT_COOKIE, state, max_age)
    return response


async def callback(request: Request) -> Response:
    oidc = _resolver(request)
    if oidc is None:
        return _not_oidc()
    params = request.query_params
    if error := params.get("error"):
        description = (params.get("error_description") or "")[:200]
        shown = f"{error[:100]}" + (f" ({description})" if description else "")
        return page("Sign-in refused", f"The provider refused the sign-in: {shown}", 400)
    state, code = params.get("state") or "", params.get("code") or ""
    if not state or not code or len(state) > _MAX_PARAM or len(code) > _MAX_PARAM:
        return page("Sign-in failed", "The provider's answer has no code and state.", 400)
    attempt_cookie = cookie_name(ATTEMPT_COOKIE, secure=oidc.sessions.secure)
    mine = cookie_value(request.scope["headers"], attempt_cookie) or ""
    if not hmac.compare_digest(mine.encode(), state.encode()):
        return page(
            "Sign-in failed",
            "This sign-in was not started in this browser (or took longer than 10 minutes).",
            400,
        )
    runtime = runtime_of(request)
    attempt = await signin.take_attempt(runtime.db, token_hash(state), datetime.now(UTC))
    if attempt is None:
        return page("Sign-in failed", "This sign-in link was used already or has expired.", 400)
    try:
        person = await oidc.client.sign_in(code, attempt.verifier, attempt.nonce)
    except SignInFailed as exc:
        log.warning("sign-in refused", reason=str(exc))
        return page("Sign-in failed", str(exc), 400)
    token = await oidc.sessions.start(person)
    # the groups of a person's latest sign-in are what their API keys carry
    seen = Identity(login_name=person.login_name, groups=person.groups)
    runtime.resolver.ring.seen(seen, "oidc")
    log.info("signed in", login_name=person.login_name, groups=len(person.groups))
    response = RedirectResponse(attempt.return_to, 303)
    response.headers["cache-control"] = "no-store"
    max_age = int(oidc.sessions.lifetime.total_seconds())
    set_cookie(oidc, response, COOKIE, token, max_age)
    set_cookie(oidc, response, ATTEMPT_COOKIE, "", 0)
    return response


async def logout(request: Request) -> Response:
    oidc = with_sessions(request)
    if oidc is None:
        return _not_oidc()
    if request.method == "GET":
        return page(
            "Sign out", "Sign out of irisgate in this browser?", 200, again=False, logout=True
        )
    token = cookie_value(request.scope["headers"], oidc.sessions.cookie)
    if token is not None:
        await oidc.sessions.end(token)
    response = page("Signed out", "You are signed out.", 200)
    set_cookie(oidc, response, COOKIE, "", 0)
    return response


routes = [
    Route("/auth/login", login, methods=["GET"]),
    Route("/auth/callback", callback, methods=["GET"]),
    Route("/auth/logout", logout, methods=["GET", "POST"]),
]
