"""`GET /api/usage/tools`: the Tool Use page's numbers (calls over time, by tool and kind,
per session). Admins see everyone's calls and may filter by `user`; other users see their
own calls only (asking for another user's is a 403, like My Dashboard)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.handlers import (
    ApiError,
    filters,
    json_response,
    query_value,
    require_role,
    runtime_of,
)
from irisgate.store import tool_use

MAX_NAME = 200


async def tools(request: Request) -> Response:
    caller = await require_role(request)
    found = filters(request, caller)
    login = found.login_name
    if not caller.is_admin:
        if login is not None and login != caller.identity.login_name:
            raise ApiError(403, "access denied: only admins can see other users' tool calls")
        login = caller.identity.login_name
    tool = query_value(request, "tool") or None
    session = query_value(request, "session") or None
    for name, value in (("tool", tool), ("session", session)):
        if value is not None and len(value) > MAX_NAME:
            raise ApiError(400, f"'{name}' may be at most {MAX_NAME} characters")
    report = await tool_use.tool_use(
        runtime_of(request).db,
        since=found.since,
        until=found.until,
        login_name=login,
        model=found.model,
        tool=tool,
        session_id=session,
    )
    return json_response(
        {
            "since": found.since.isoformat(),
            "until": found.until.isoformat(),
            "user": login,
            "session": session,
            **report,
        }
    )


routes = [Route("/api/usage/tools", tools)]
