"""`GET /api/rate-limits`: the caller's rate limits and their current use.

Every limit a capability of the caller lists (`rate_limits` templates expanded for the
caller), with its kind, limit, period, what is used now (every live instance together) and
what remains; token limits also show the tokens reserved by requests in flight, concurrency
limits the requests in flight. `instances`: the live instances this one shares limits with
(itself included). Use is as this instance enforces it: other instances' as of the last
background sync (at most half a second old).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.handlers import json_response, require_role, runtime_of


async def list_rate_limits(request: Request) -> Response:
    caller = await require_role(request)
    runtime = runtime_of(request)
    status = runtime.rates.status(runtime.snapshot.config, caller.access, caller.identity)
    return json_response(status)


routes = [Route("/api/rate-limits", list_rate_limits, methods=["GET"])]
