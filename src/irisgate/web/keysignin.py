"""Signing a browser in with an API key (identity mode keys): `POST /auth/login`.

Mode keys knows nobody by the network and has no OpenID provider, so a browser, which sends
no key of its own, signs in by pasting one: the form of `GET /auth/login` posts it here
(behind the cross-site guard, like every state change). A valid key starts a session in
`signin_sessions` (irisgate.identity.sessions: HttpOnly, SameSite=Lax, `__Host-` and Secure
behind https, `--session-hours`) that stands for the key: the browser is the key's owner
narrowed by the key, and revoking the key ends its sessions.

256 random bits leave nothing to guess, but failed attempts are still limited per client
address (`FAILURES` in `WINDOW_S`; then 429 with `Retry-After`) and logged with the
address and the reason, never the value sent.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from irisgate.handlers import runtime_of
from irisgate.identity import KeyRefused
from irisgate.identity.keys import well_formed
from irisgate.identity.oidc import Person
from irisgate.identity.resolver import KeysOnlyResolver
from irisgate.identity.sessions import COOKIE
from irisgate.web.signin import page, safe_next, set_cookie

log = structlog.get_logger("irisgate.signin")

#: failed sign-ins one client address may make in `WINDOW_S` seconds
FAILURES = 10
WINDOW_S = 300.0
#: client addresses whose failures are remembered at most (memory stays bounded)
MAX_ADDRESSES = 10_000
#: the longest form body read: a key, a return path and the field names
MAX_BODY = 4096


class FailedSignIns:
    """Failed sign-ins per client address, in fixed windows of `WINDOW_S` seconds."""

    def __init__(self) -> None:
        self._by_address: dict[str, tuple[float, int]] = {}

    def retry_after(self, address: str) -> int:
        """Seconds until `address` may try again; 0 when it may now."""
        start, count = self._by_address.get(address, (0.0, 0))
        left = start + WINDOW_S - time.monotonic()
        return int(left) + 1 if count >= FAILURES and left > 0 else 0

    def failed(self, address: str) -> None:
        now = time.monotonic()
        start, count = self._by_address.get(address, (now, 0))
        if now - start >= WINDOW_S:
            start, count = now, 0
        if address not in self._by_address and len(self._by_address) >= MAX_ADDRESSES:
            self._by_address = {a: v for a, v in self._by_address.items() if now - v[0] < WINDOW_S}
            if len(self._by_address) >= MAX_ADDRESSES:
                self._by_address.clear()  # a flood of addresses: forget, rather than grow
        self._by_address[address] = (start, count + 1)


_failures = FailedSignIns()


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form (urlencoded, at most MAX_BODY bytes); None when it is not one."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=4, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items() if values}


def _again(message: str, status: int, next_path: str) -> Response:
    return page("Sign in", message, status, again=False, key_form=True, next_path=next_path)


async def submit(request: Request) -> Response:
    runtime = runtime_of(request)
    resolver = runtime.resolver.inner
    if not isinstance(resolver, KeysOnlyResolver):
        return page("Sign-in is off", "Signing in with an API key is for --identity keys.", 404)
    client = request.scope.get("client")
    address = client[0] if client else "unknown"
    if wait := _failures.retry_after(address):
        log.warning("key sign-in refused: too many failures", client=address)
        busy = _again(
            f"Too many failed sign-ins from your address; try again in {wait} seconds.",
            429,
            safe_next(None),
        )
        busy.headers["retry-after"] = str(wait)
        return busy
    form = await _form(request)
    if form is None:
        return _again("Send the form of this page (a key, at most 4 KiB).", 400, safe_next(None))
    next_path = safe_next(form.get("next"))
    secret = form.get("key", "").strip()
    try:
        if not well_formed(secret):
            raise KeyRefused("not a well-formed irisgate key")
        identity = await runtime.resolver.ring.identify(secret)
    except KeyRefused as exc:
        _failures.failed(address)
        log.warning("key sign-in refused", client=address, reason=str(exc))
        return _again(f"That key does not work: {exc}.", 401, next_path)
    key = identity.key
    assert key is not None, "the key ring's identities name their key"
    person = Person(identity.login_name, identity.display_name, ())
    token = await resolver.sessions.start(person, key.id)
    log.info("signed in with an API key", login_name=identity.login_name, key_id=key.id)
    response = RedirectResponse(next_path, 303)
    response.headers["cache-control"] = "no-store"
    set_cookie(resolver, response, COOKIE, token, int(resolver.sessions.lifetime.total_seconds()))
    return response


routes = [Route("/auth/login", submit, methods=["POST"])]
