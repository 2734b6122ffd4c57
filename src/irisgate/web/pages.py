"""The dashboard under /ui/: one Starlette route per page, server-rendered with Jinja2.

Pages render the shell and the parts that are text (names, instructions); every number on a
page is fetched by the page's ES module from a documented `/api/` endpoint, which applies
the same access rules. A page the viewer may not see answers 403 with the reason, like its
API. Templates autoescape everything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from irisgate import __version__
from irisgate.api.health import health_rows
from irisgate.chat import access as chat_access
from irisgate.config.model import (
    AUTHORIZATION_STYLES,
    COMPATIBILITY_FLAGS,
    COST_BASES,
    EXPORT_FORMATS,
    PURGE_CATEGORIES,
    RATE_PERIODS,
)
from irisgate.config.schema_providers import AUTH_MODES
from irisgate.handlers import ApiError, Caller, identify, runtime_of
from irisgate.settings import SIGN_IN_MODES
from irisgate.telemetry.record import KINDS
from irisgate.web import setup
from irisgate.web.integrations import INTEGRATIONS
from irisgate.web.nav import PAGES, Group, visible

if TYPE_CHECKING:
    from jinja2 import Environment

_HERE = Path(__file__).parent


@cache
def _env() -> Environment:
    # Jinja2 is imported when the first page is rendered: a gateway nobody browses never
    # carries it.
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["request_kinds"] = KINDS  # the kind filters of Usage and Session Logs
    return env


def template(name: str) -> Any:
    """A template of the web package (autoescaped), for apps beside the dashboard."""
    return _env().get_template(name)


def _html(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    runtime = runtime_of(request)
    sign_out = runtime.resolver.mode in SIGN_IN_MODES
    body = (
        _env()
        .get_template(template)
        .render(
            request=request,
            version=__version__,
            sign_out=sign_out,
            feedback_url=runtime.settings.feedback_url,
            **context,
        )
    )
    return HTMLResponse(body, status_code=status)


#: admins are warned this long before the gateway's node key expires, as in Aperture
KEY_EXPIRY_WARNING = timedelta(days=7)


async def _key_expiry_banner(request: Request, caller: Caller) -> str | None:
    """For admins: the warning that this node's Tailscale key expires within a week (or has
    expired), from tailscaled's status; None otherwise."""
    resolver = runtime_of(request).resolver
    if not caller.is_admin or resolver.mode not in ("tailscale", "serve"):
        return None
    expiry = await resolver.key_expiry()
    if expiry is None:
        return None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    left = expiry - datetime.now(UTC)
    if left > KEY_EXPIRY_WARNING:
        return None
    when = expiry.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    renew = (
        "Re-authenticate this machine (tailscale up --force-reauth) or disable key expiry for"
        " it in the Tailscale admin console."
    )
    if left <= timedelta(0):
        return (
            f"This gateway's Tailscale node key expired on {when}: it is off the tailnet. {renew}"
        )
    days = left.days
    within = f"in {days} day{'s' if days != 1 else ''}" if days else "within a day"
    return (
        f"This gateway's Tailscale node key expires {within} ({when}); then nobody can reach"
        f" it. {renew}"
    )


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
        key_expiry=await _key_expiry_banner(request, caller),
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


async def admin_home(request: Request) -> Response:
    """`/admin/`, Aperture's admin console: its first page, the usage overview."""
    return RedirectResponse("/admin/adoption", status_code=307)


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


async def providers(request: Request) -> Response:
    """Provider health in this process: circuit, error rate, last error, cool-down, keys."""
    return await _page(request, "providers", rows=health_rows(runtime_of(request)))


#: Settings' tabs: (route segment, title); `/admin/settings/config` is Aperture's name of
#: the raw editor.
SETTINGS_TABS: tuple[tuple[str, str], ...] = (
    ("providers", "Providers"),
    ("grants", "Grants"),
    ("quotas", "Quotas"),
    ("rate_limits", "Rate limits"),
    ("hooks", "Hooks"),
    ("database", "Database"),
    ("exporters", "Exporters"),
    ("flags", "Flags"),
    ("chat", "Chat"),
    ("alerts", "Alerts"),
    ("raw", "Raw config"),
    ("history", "History"),
)
_TAB_ALIASES = {"config": "raw"}
#: The choices the visual editors offer, from the config schema itself.
EDITOR_OPTIONS = {
    "formats": list(COMPATIBILITY_FLAGS),
    "authorization": list(AUTHORIZATION_STYLES),
    "auth_modes": [mode for mode in AUTH_MODES if mode],
    "cost_bases": list(COST_BASES),
    "purge": list(PURGE_CATEGORIES),
    "export_formats": list(EXPORT_FORMATS),
    "rate_periods": list(RATE_PERIODS),
}


async def settings(request: Request) -> Response:
    """Settings, opened at one tab: `/ui/admin/settings/<tab>` or `/admin/settings/<tab>`."""
    wanted = request.path_params.get("tab", "providers")
    tab = _TAB_ALIASES.get(wanted, wanted)
    if tab not in dict(SETTINGS_TABS):
        return await not_found(request)
    return await _page(request, "settings", tab=tab, tabs=SETTINGS_TABS, options=EDITOR_OPTIONS)


def _simple(key: str) -> Route:
    async def handler(request: Request) -> Response:
        return await _page(request, key)

    return Route(PAGES[key].path, handler)


async def keys(request: Request) -> Response:
    """API Keys, offering the config's quotas as the budgets a key may follow."""
    return await _page(request, "keys", quotas=sorted(runtime_of(request).snapshot.config.quotas))


async def integrations(request: Request) -> Response:
    return await _page(request, "integrations", integrations=INTEGRATIONS)


_SPECIAL = ("dashboard", "agent_config", "settings", "integrations", "providers", "keys")
_ADMIN_PREFIX = "/ui/admin/"


def _admin_alias(route: Route) -> Route:
    """The same page at Aperture's address: `/ui/admin/quotas` is also `/admin/quotas`."""
    return Route("/admin/" + route.path.removeprefix(_ADMIN_PREFIX), route.endpoint)


_page_routes = [
    Route("/ui/dashboard", dashboard),
    Route("/ui/dashboard/{login_name:path}", dashboard),
    Route("/ui/agent-config", agent_config),
    Route(PAGES["settings"].path, settings),
    Route(PAGES["settings"].path + "/{tab}", settings),
    Route(PAGES["integrations"].path, integrations),
    Route(PAGES["providers"].path, providers),
    Route(PAGES["keys"].path, keys),
    *(_simple(key) for key in PAGES if key not in _SPECIAL),
]

routes = [
    Route("/", home),  # the gateway's address in a browser (and HEAD / from health checkers)
    Route("/ui", home),
    Route("/ui/", home),
    Route("/ui/quotas", quotas_alias),
    *_page_routes,
    *(_admin_alias(r) for r in _page_routes if r.path.startswith(_ADMIN_PREFIX)),
    Route("/admin", admin_home),
    Route("/admin/", admin_home),
    Route("/admin/adoption", _simple("usage").endpoint),  # Aperture's Usage Overview
    Mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static"),
]
