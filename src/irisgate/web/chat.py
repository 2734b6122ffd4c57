"""The chat app's page at /chat/: its own app (not a dashboard page), same identity.

The page is a shell; `chat.js` fetches models and conversations from `/api/chat/...` and
sends every turn to the gateway's own LLM endpoint. A caller without chat gets 403 with the
reason, and no app.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from irisgate import __version__
from irisgate.chat.access import refusal
from irisgate.handlers import ApiError, identify, runtime_of
from irisgate.settings import SIGN_IN_MODES
from irisgate.web.pages import template


async def chat_page(request: Request) -> Response:
    sign_out = runtime_of(request).resolver.mode in SIGN_IN_MODES
    try:
        caller = await identify(request)
    except ApiError as exc:
        return _page(exc.message, None, 403, sign_out)
    reason = refusal(caller, runtime_of(request).snapshot.config)
    if reason is not None:
        return _page(reason, caller.identity.login_name, 403, sign_out)
    return _page(None, caller.identity.login_name, 200, sign_out, admin=caller.is_admin)


def _page(
    reason: str | None, login: str | None, status: int, sign_out: bool, *, admin: bool = False
) -> HTMLResponse:
    """The page; its sidebar links to the caller's budget (admins: the Quotas page) and, for
    admins, to the admin console."""
    body = template("chat.html").render(
        refusal=reason, login=login, version=__version__, sign_out=sign_out, admin=admin
    )
    return HTMLResponse(body, status_code=status)


async def to_chat(request: Request) -> Response:
    return RedirectResponse("/chat/", status_code=307)


routes = [Route("/chat", to_chat), Route("/chat/", chat_page)]
