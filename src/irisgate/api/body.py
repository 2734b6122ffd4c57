"""The one reader of request bodies for the JSON API under /api/.

A body is read only when sent as `Content-Type: application/json` (415 otherwise, naming the
type that came). A browser sends that type to another site only after a CORS preflight,
which irisgate never grants; so even a browser that sends no `Origin` header cannot post a
form or `text/plain` body here as its user (the `crosssite` guard catches the rest).
The body is read under `--max-api-body` (413 past it); handlers check the caller's role
before they ask for it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from irisgate.handlers import ApiError, runtime_of
from irisgate.wire import nesting
from irisgate.wire.bodylimit import BodyTooLarge, ClientGone, read_body

JSON_TYPE = "application/json"


async def json_object(request: Request, shape: str = "a JSON object") -> dict[str, Any]:
    """The body as a JSON object; ApiError 415 / 400 naming what is wrong (`shape` in 400s)."""
    declared = request.headers.get("content-type", "")
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type != JSON_TYPE:
        sent = f"Content-Type {declared.strip()!r}" if declared.strip() else "no Content-Type"
        raise ApiError(
            415, f"body must be JSON, sent with Content-Type: {JSON_TYPE} (this request had {sent})"
        )
    limit = runtime_of(request).settings.max_api_body
    try:
        body = await read_body(request.receive, request.scope["headers"], limit, "--max-api-body")
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except ClientGone:
        raise ApiError(400, "the client disconnected before its request body ended") from None
    try:
        payload = nesting.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, f"body must be {shape}")
    return payload
