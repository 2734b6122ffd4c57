"""Connector endpoints for users: status list, starting the OAuth flow, the OAuth callback.

- `GET /api/connectors`: every connector with the caller's status (Ready / Needs auth /
  Misconfigured / No access) and auth type; URLs only for admins; never a secret.
- `POST /api/connectors/<id>/connect` → `{"auth_url": ...}` for per-user OAuth connectors
  (for `oauth2_dynamic_client_registration`, irisgate first registers itself as a client of
  the MCP server's authorization server, once).
- `GET /aperture/auth/<id>/callback`: where the OAuth server sends the browser back; ends on a
  small page saying what happened (escaped; no token or secret on it).

Editing connectors is editing the config (`PUT /api/config`), so changes are versions.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from irisgate.connectors.oauth import OAuthError, auth_field
from irisgate.connectors.registration import DCR
from irisgate.connectors.safety import UnsafeURL
from irisgate.connectors.service import Connectors, ConnectorService
from irisgate.connectors.status import PER_USER, connector_status
from irisgate.handlers import ApiError, identify, json_response, require_role, runtime_of


async def _service(request: Request) -> Connectors:
    service: ConnectorService = request.state.connectors
    return await service.ready()


async def list_connectors(request: Request) -> Response:
    caller = await require_role(request)
    service = await _service(request)
    login = caller.identity.login_name
    out = []
    for connector in runtime_of(request).snapshot.config.connectors.values():
        tokens = None
        if connector.auth.type in PER_USER:
            tokens = await service.tokens.get(login, connector.id)
        status = await connector_status(connector, caller.access, tokens, service.guard)
        item = {
            "id": connector.id,
            "description": connector.description,
            "context": connector.context,
            "protocol": connector.protocol,
            "provider": connector.provider,
            "category": "",
            "status": status.code,
            "status_label": status.label,
            "status_detail": status.detail,
            "auth_type": connector.auth.type,
            "per_user": connector.auth.type in PER_USER,
        }
        if caller.is_admin:
            item["url"] = connector.url
        out.append(item)
    return json_response({"connectors": out})


def _redirect_uri(request: Request, connector_id: str) -> str:
    base = str(request.base_url).rstrip("/")
    proto = request.headers.get("x-forwarded-proto")
    if proto in ("http", "https") and runtime_of(request).resolver.mode == "serve":
        base = proto + base[base.index(":") :]  # behind tailscale serve (loopback only)
    return f"{base}/aperture/auth/{connector_id}/callback"


async def connect(request: Request) -> Response:
    caller = await require_role(request)
    service = await _service(request)
    connector_id = request.path_params["connector_id"]
    connector = runtime_of(request).snapshot.config.connectors.get(connector_id)
    if connector is None:
        raise ApiError(404, f"no connector {connector_id!r}")
    if connector.auth.type not in PER_USER:
        raise ApiError(
            400, f"connector {connector_id} uses {connector.auth.type}: there is nothing to connect"
        )
    if not caller.access.may_use_connector(connector_id):
        raise ApiError(403, f"access denied: no connectors grant for {connector_id}")
    status = await connector_status(connector, caller.access, None, service.guard)
    if status.code == "misconfigured":
        raise ApiError(409, f"connector {connector_id} is misconfigured: {status.detail}")
    redirect_uri = _redirect_uri(request, connector_id)
    if connector.auth.type == DCR:  # find the authorization server, register once
        try:
            client = await service.registrar.client_for(connector, redirect_uri)
        except OAuthError as exc:
            raise ApiError(502, f"connector {connector_id}: {exc}") from None
        connector = client.connector(connector)
    try:
        await service.guard.check(auth_field(connector, "auth_url", "authorization_url"))
    except UnsafeURL as exc:
        raise ApiError(409, f"connector {connector_id}: auth_url refused: {exc}") from None
    return json_response(
        {"auth_url": service.oauth.start(connector, caller.identity.login_name, redirect_uri)}
    )


async def callback(request: Request) -> Response:
    connector_id = request.path_params["connector_id"]
    service = await _service(request)
    params = request.query_params
    if "error" in params:
        reason = params.get("error_description") or params["error"]
        return _page(400, connector_id, f"The sign-in was not completed: {reason}")
    code, state = params.get("code"), params.get("state")
    if not code or not state:
        return _page(400, connector_id, "The sign-in answer is missing its code or state.")
    try:
        caller = await identify(request)
    except ApiError as exc:
        return _page(403, connector_id, exc.message)
    connector = runtime_of(request).snapshot.config.connectors.get(connector_id)
    if connector is None or connector.auth.type not in PER_USER:
        return _page(404, connector_id, "This connector does not exist (any more).")
    try:
        attempt = service.oauth.attempt(state)
        if attempt.connector_id != connector_id or attempt.login != caller.identity.login_name:
            return _page(403, connector_id, "This sign-in was started by someone else.")
        if connector.auth.type == DCR:
            client = await service.registrar.stored(connector)
            if client is None:
                return _page(409, connector_id, "The connector changed; start again.")
            connector = client.connector(connector)
        tokens = await service.oauth.finish(connector, attempt, code)
    except OAuthError as exc:
        return _page(400, connector_id, str(exc))
    await service.tokens.put(caller.identity.login_name, connector_id, tokens)
    if not tokens.refresh_token:
        return _page(
            200,
            connector_id,
            "Connected, but the OAuth server gave no refresh token: access ends when this token"
            " expires. Ask an admin to enable offline access, then reconnect.",
        )
    return _page(200, connector_id, "Connected. You can close this tab.")


def _page(status: int, connector_id: str, message: str) -> HTMLResponse:
    title = "Connected" if status == 200 else "Not connected"
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>{html.escape(title)} · {html.escape(connector_id)}</title>"
        "<body style='font-family:system-ui;max-width:36rem;margin:4rem auto'>"
        f"<h1>{html.escape(connector_id)}: {html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p><p><a href='/ui/connectors'>Back to Connectors</a></p>"
    )
    return HTMLResponse(body, status_code=status, headers={"cache-control": "no-store"})


routes = [
    Route("/api/connectors", list_connectors, methods=["GET"]),
    Route("/api/connectors/{connector_id}/connect", connect, methods=["POST"]),
    Route("/aperture/auth/{connector_id}/callback", callback, methods=["GET"]),
]
