"""The dashboard under /ui/: one Starlette route per page, server-rendered with Jinja2.

Pages render the shell and the parts that are text (names, instructions); every number on a
page is fetched by the page's ES module from a documented `/api/` endpoint, which applies
the same access rules. A page the viewer may not see answers 403 with the reason, like its
API. Templates autoescape everything.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from irisgate import __version__
from irisgate.chat import access as chat_access
from irisgate.handlers import ApiError, Caller, identify, runtime_of
from irisgate.web import setup
from irisgate.web.nav import PAGES, Group, visible

if TYPE_CHECKING:
    from jinja2 import Environment

_HERE = Path(__file__).parent


@cache
def _env() -> Environment:
    # Jinja2 is imported when the first page is rendered: a gateway nobody browses never
    # carries it.
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template(name: str) -> Any:
    """A template of the web package (autoescaped), for apps beside the dashboard."""
    return _env().get_template(name)


def _html(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    sign_out = runtime_of(request).resolver.mode == "oidc"
    body = (
        _env()
        .get_template(template)
        .render(request=request, version=__version__, sign_out=sign_out, **context)
    )
    return HTMLResponse(body, status_code=status)


def _nav(request: Request, caller: Caller) -> list[Group]:
    config = runtime_of(request).snapshot.config
    return visible(caller.is_admin, chat=chat_access.allowed(caller, config))


def _denied(request: Request, message: str, caller: Caller | None = None) -> HTMLResponse:
    return _html(
        request,
        "denied.html",
        status=403,
        message=message,
        nav=_nav(request, caller) if caller and caller.access.role else [],
        caller=caller,
        page=None,
    )


async def _page(request: Request, key: str, **context: Any) -> Response:
    try:
        caller = await identify(request)
    except ApiError as exc:
        return _denied(request, exc.message)
    page = PAGES[key]
    if caller.access.role is None:
        return _denied(request, "access denied: no role granted", caller)
    if page.admin and not caller.is_admin:
        return _denied(request, "access denied: admin role required", caller)
    return _html(
        request,
        f"{key}.html",
        nav=_nav(request, caller),
        caller=caller,
        page=page,
        **context,
    )


async def not_found(request: Request) -> Response:
    """404 for a `/ui/` address no page has: a page inside the dashboard naming the address,
    with the navigation the caller's role shows (none for a caller irisgate cannot identify)."""
    try:
        caller: Caller | None = await identify(request)
    except ApiError:
        caller = None
    nav = _nav(request, caller) if caller is not None and caller.access.role else []
    return _html(
        request,
        "not_found.html",
        status=404,
        path=request.url.path,
        nav=nav,
        caller=caller,
        page=None,
    )


async def home(request: Request) -> Response:
    return RedirectResponse("/ui/dashboard", status_code=307)


async def quotas_alias(request: Request) -> Response:
    """`/ui/quotas`, the short address of the admin Quotas page."""
    return RedirectResponse(PAGES["quotas"].path, status_code=307)


async def dashboard(request: Request) -> Response:
    login = request.path_params.get("login_name")
    try:
        caller = await identify(request)
    except ApiError as exc:
        return _denied(request, exc.message)
    subject = login or caller.identity.login_name
    if subject != caller.identity.login_name and not caller.is_admin:
        return _denied(
            request, "access denied: only admins can see other users' dashboards", caller
        )
    return await _page(request, "dashboard", subject=subject)


async def agent_config(request: Request) -> Response:
    try:
        caller = await identify(request)
    except ApiError as exc:
        return _denied(request, exc.message)
    base = str(request.base_url).rstrip("/")
    guide = setup.guide(runtime_of(request).snapshot, caller.access, base)
    return await _page(request, "agent_config", guide=guide)


def _simple(key: str) -> Route:
    async def handler(request: Request) -> Response:
        return await _page(request, key)

    return Route(PAGES[key].path, handler)


routes = [
    Route("/", home),  # the gateway's address in a browser (and HEAD / from health checkers)
    Route("/ui", home),
    Route("/ui/", home),
    Route("/ui/dashboard", dashboard),
    Route("/ui/dashboard/{login_name:path}", dashboard),
    Route("/ui/agent-config", agent_config),
    Route("/ui/quotas", quotas_alias),
    *(_simple(key) for key in PAGES if key not in ("dashboard", "agent_config")),
    Mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static"),
]
