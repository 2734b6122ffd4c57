"""`GET /api/openapi.json`: the OpenAPI 3.1 document of every `/api/` endpoint.

Endpoints are described as data (`ENDPOINTS`); `tests/web` checks that every `/api/` route of
the app is described here, so a new endpoint without documentation fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from irisgate import __version__
from irisgate.api.usage import SORT_KEYS
from irisgate.handlers import json_response
from irisgate.telemetry.record import KINDS

#: JSON Schemas of the values the handlers accept (`irisgate.handlers`); an empty value
#: means the default, as an absent one does
_DAY = {"type": "string", "anyOf": [{"format": "date"}, {"maxLength": 0}]}
_TIME = {"type": "string", "anyOf": [{"format": "date-time"}, {"maxLength": 0}]}
_TEXT = {"type": "string"}


def _count(high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": high}


Param = tuple[str, str, dict[str, Any]]
_RANGE: tuple[Param, ...] = (
    ("since", "First UTC day (YYYY-MM-DD), inclusive; default: 30 days before `until`.", _DAY),
    (
        "until",
        "UTC day (YYYY-MM-DD) the range ends before; default: tomorrow. The range may span "
        "at most 400 days and must not be empty (400 otherwise).",
        _DAY,
    ),
)
_KIND = {"type": "string", "enum": list(KINDS)}
_FILTERS: tuple[Param, ...] = (
    *_RANGE,
    ("user", "Only this login name.", _TEXT),
    ("model", "Only this model.", _TEXT),
    ("agent", "Only this agent program (as Agent Activity names it).", _TEXT),
    (
        "status",
        "Only this status code (`429`) or class (`5xx`).",
        {"type": "string", "pattern": "^[1-5]([0-9]{2}|[xX]{2})$"},
    ),
    ("kind", "Only requests of this kind (what they asked for).", _KIND),
    (
        "header",
        "Only requests that carried this indexed header (`database.headers.filterable`; "
        "403 unless the caller's grants name it in `filterable_headers`).",
        _TEXT,
    ),
    (
        "header_value",
        "With `header`: only this value (ignored without `header` and for `redact_values`).",
        _TEXT,
    ),
)
#: the error envelope of every /api/ error answer
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
_ERRORS = {
    400: "A parameter or the body is invalid; `error` names it.",
    401: "The request carries an irisgate API key that is not valid (unknown, revoked or "
    "expired), or identity mode `keys` and no key; `error` says which.",
    403: "Access denied; `error` says why.",
    404: "Nothing with this id (or not the caller's); `error` says what.",
    409: "Conflict with the current state; `error` says what to do.",
    429: "A quota refuses the request for now; `Retry-After` says when it refills enough.",
    413: "The body is larger than `--max-api-body` allows; `error` names the limit.",
    415: "The body was not sent with `Content-Type: application/json`.",
    502: "The connector behind it failed; `error` says how.",
    503: "The database is unavailable (refuses connections, unreachable, timed out); "
    "try again shortly.",
}
_CSV = "text/csv"


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    summary: str
    description: str
    access: str  # "any" (no role needed), "user" (any role), "chat" (chat enabled) or "admin"
    params: tuple[Param, ...] = ()
    body: str = ""
    media_type: str = "application/json"
    body_schema: dict[str, Any] | None = None
    body_type: str = "application/json"  # the request body's media type
    status: int = 200
    returns: str = "object"  # the JSON type of a successful answer
    errors: tuple[int, ...] = ()
    """Error statuses beyond 403 (always), 400 (with parameters or a body), 413 and 415 (with
    a body), 404 (with path parameters) and 503 (with `database`)."""
    database: bool = True  # answers from the database (503 while it is unavailable)


def _object(required: tuple[str, ...] = (), /, **properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": properties}


def _string(limit: int, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": limit, **extra}


_TOOL_NAMES = {
    "type": "array",
    "maxItems": 128,
    "items": {"type": "string", "minLength": 1, "maxLength": 300},
}
_EFFORT = {"type": "string", "enum": ["", "low", "medium", "high"]}
_CONVERSATION_FIELDS: dict[str, dict[str, Any]] = {
    "title": _string(200),
    "model": _string(300),
    "instructions": _string(20_000),
    "tools": _TOOL_NAMES,
    "reasoning_effort": _EFFORT,
    "project_id": {"type": ["string", "null"], "maxLength": 100},
}
_IMAGE = _object(("id",), id=_string(200))
_PROJECT_FIELDS: dict[str, dict[str, Any]] = {
    "name": _string(100, minLength=1),
    "instructions": _string(20_000),
    "tools": {**_TOOL_NAMES, "type": ["array", "null"]},
}
_TOOL_CALL = _object(
    ("id", "name"),
    id=_string(200),
    name=_string(200),
    arguments={"type": "object"},
    output=_string(100_200),
    is_error={"type": "boolean"},
)
_TOOL_ROUND = _object(
    ("calls",),
    text=_string(1_000_000),
    calls={"type": "array", "maxItems": 64, "items": _TOOL_CALL},
)
_MESSAGE = _object(
    ("role",),
    role={"type": "string", "enum": ["user", "assistant"]},
    content=_string(1_000_000),
    model=_string(300),
    outcome={
        "type": "string",
        "enum": ["", "completed", "error", "cancelled", "refused", "truncated"],
    },
    request_id=_string(200),
    attachments={"type": "array", "maxItems": 4, "items": _IMAGE},
    tool_calls={"type": "array", "maxItems": 8, "items": _TOOL_ROUND},
    reasoning=_string(1_000_000),
)
#: dollars as `"5.00"`, `"$5.00"` or a number, at most nanodollar precision; its bounds
#: (more than 0 to add, at most the capacity to set) depend on the bucket
_AMOUNT = {"type": ["string", "number"]}

_CONVERSATION = "/api/chat/conversations/{conversation_id}"
_PROJECT = "/api/chat/projects/{project_id}"
#: The chat app's endpoints (irisgate.chat.routes); every one needs chat enabled.
CHAT_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/chat/models",
        "Chat models",
        "The caller's granted models whose provider speaks an API the chat can hold a "
        "conversation over (OpenAI Chat Completions or Responses, Anthropic Messages, Gemini, "
        "Vertex AI, Bedrock Converse): `id` (provider/model), `model`, `provider`, "
        "`provider_name`, `api` and `api_title` (the API the chat speaks to it), and whether "
        "the chat offers `stream`, `tools`, a `reasoning` effort control and `images`. When "
        "the config curates the picker (`chat.models`), only the models it names, in its "
        "order, each with its `label` ('' for none).",
        "chat",
        database=False,
    ),
    Endpoint(
        "GET",
        "/api/chat/tools",
        "Chat tools",
        "The connector tools the caller is granted, as `tools/list` on /v1/mcp shows them: "
        "`name` (`<connector>_<tool>`), `connector`, `tool`, `title`, `description`, "
        "`input_schema`.",
        "chat",
    ),
    Endpoint(
        "GET",
        "/api/chat/activity",
        "Chat activity",
        "Per UTC day: conversations started, user messages, assistant turns, chat users and "
        "`outcomes` of the turns (completed, error, cancelled, refused, truncated); `totals`.",
        "admin",
        (*_RANGE, ("user", "Only this login name.", _TEXT)),
    ),
    Endpoint(
        "GET",
        "/api/chat/conversations",
        "Conversations",
        "The caller's conversations, most recently active first (at most 200).",
        "chat",
        (("q", "Only those whose title or any message contains this (case-insensitive).", _TEXT),),
    ),
    Endpoint(
        "POST",
        "/api/chat/conversations",
        "New conversation",
        "Create a conversation of the caller (201).",
        "chat",
        body='{"title": "...", "model": "provider/model", "instructions": "...", '
        '"tools": ["<connector>_<tool>"], "reasoning_effort": "" | "low" | "medium" | "high", '
        '"project_id": "p_..."} (all optional; 404 for a project not the caller\'s)',
        body_schema=_object(**_CONVERSATION_FIELDS),
        status=201,
        errors=(404,),
    ),
    Endpoint(
        "GET",
        _CONVERSATION,
        "One conversation",
        "The conversation with its messages in order; 404 when the caller has none with this id.",
        "chat",
    ),
    Endpoint(
        "PATCH",
        _CONVERSATION,
        "Rename / change a conversation",
        "Change its title, model, per-conversation instructions (the system prompt), the "
        "tools switched on, the reasoning effort and/or its project (`project_id`: one of "
        'the caller\'s projects, or `""`/null for none).',
        "chat",
        body='{"title": "...", "model": "...", "instructions": "...", "tools": [...], '
        '"reasoning_effort": "...", "project_id": "..."} (at least one)',
        body_schema={
            **_object(**_CONVERSATION_FIELDS),
            "minProperties": 1,
            "additionalProperties": False,
        },
    ),
    Endpoint(
        "DELETE",
        _CONVERSATION,
        "Delete a conversation",
        "With its messages and attachments (204).",
        "chat",
        status=204,
    ),
    Endpoint(
        "POST",
        _CONVERSATION + "/messages",
        "Add a message",
        "Append a turn (201). `outcome` of an assistant turn: completed, error, cancelled, "
        "refused or truncated; `request_id` links the gateway request that produced it. "
        "User messages may name up to 4 images uploaded to this conversation first "
        "(`attachments: [{id}]`; kept as `{id, name, media_type, size, url}`); assistant "
        "messages carry their `tool_calls` rounds and `reasoning` text.",
        "chat",
        body='{"role": "user" | "assistant", "content": "...", "model": "...", '
        '"outcome": "...", "request_id": "...", "attachments": [{"id"}], "tool_calls": '
        '[{"text", "calls": [{"id", "name", "arguments", "output", "is_error"}]}], '
        '"reasoning": "..."}',
        body_schema=_MESSAGE,
        status=201,
    ),
    Endpoint(
        "DELETE",
        _CONVERSATION + "/messages/{message_id}",
        "Drop messages from one on",
        "Delete this message and every later one (a retry replaces the last answer); answers "
        "`{deleted}`.",
        "chat",
    ),
    Endpoint(
        "POST",
        _CONVERSATION + "/tools/call",
        "Run a tool call",
        "Run one tool call the model made: 403 unless the tool is switched on in the "
        "conversation (and its project allows it), then exactly the grant check, credential "
        "and record of a `tools/call` on /v1/mcp (403 not granted, 502 connector failed). "
        "Answers `{name, output, is_error}`. A client that disconnects (Stop) cancels the "
        "call upstream; it is recorded with status 499.",
        "chat",
        body='{"name": "<connector>_<tool>", "arguments": {...}}',
        body_schema=_object(
            ("name",), name={"type": "string", "minLength": 1}, arguments={"type": "object"}
        ),
        errors=(502,),
    ),
    Endpoint(
        "POST",
        _CONVERSATION + "/round",
        "Run one model round",
        "Ask the model for the next answer of the conversation: the picked model's API "
        "format builds the request from the stored conversation, the turn's tool rounds so "
        "far (`pending`, each with the `replay` items its `call`s came with) and the `tools` "
        "offered, and it runs through the gateway as the caller's own request (grants, "
        "quotas, hooks, record, cost; `x-irisgate-request-id`). Streams the chat's events as "
        "SSE `data:` lines: `text`, `reasoning`, `call` {id, name, arguments, problem?}, "
        "`replay` {items}, `usage`, `end` {outcome}, `error` {message}. The gateway's refusals "
        "keep their status (and `Retry-After`) with `error.message`. 400 for a model whose "
        "provider speaks no API the chat can use.",
        "chat",
        body='{"model": "provider/model", "tools": [...], "pending": [...], "effort": ""}',
        body_schema=_object(
            ("model",),
            model={"type": "string", "minLength": 1},
            tools={"type": "array"},
            pending={"type": "array"},
            effort={"type": "string", "enum": ["", "low", "medium", "high"]},
        ),
        media_type="text/event-stream",
        returns="string",
        errors=(429,),
    ),
    Endpoint(
        "POST",
        _CONVERSATION + "/attachments",
        "Attach an image",
        "Store one image of the conversation (201): the body is the file's bytes, sent with "
        "its type (`image/png`, `image/jpeg`, `image/gif` or `image/webp`), `name` its file "
        "name. Its bytes must be one of those types (415 otherwise; the type kept is the one "
        "they show), at most 3,750,000 bytes (413), and the caller's attachments together at "
        "most 200 MB (413). Answers `{id, name, media_type, size, url}`.",
        "chat",
        (("name", "The file's name (at most 200 characters).", _TEXT),),
        body="the image's bytes",
        body_schema={"type": "string", "format": "binary"},
        body_type="image/*",
        status=201,
    ),
    Endpoint(
        "GET",
        "/api/chat/attachments/{attachment_id}",
        "One attachment",
        "The image's bytes, to its owner only (404 for anyone else), with the type its bytes "
        "show, `X-Content-Type-Options: nosniff` and a private cache.",
        "chat",
        media_type="image/*",
        returns="string",
    ),
    Endpoint(
        "GET",
        "/api/chat/projects",
        "Projects",
        "The caller's projects by name, each `{id, name, instructions, tools, conversations, "
        "created_at, updated_at}`; `tools` null means every tool the caller is granted.",
        "chat",
    ),
    Endpoint(
        "POST",
        "/api/chat/projects",
        "New project",
        "Create a project (201; at most 100 per user). Its `instructions` are sent before "
        "each of its conversations' own; `tools` (null: all granted) narrows the tools its "
        "conversations may use, never past the caller's grants.",
        "chat",
        body='{"name": "...", "instructions": "...", "tools": ["<connector>_<tool>"] | null}',
        body_schema={**_object(("name",), **_PROJECT_FIELDS), "additionalProperties": False},
        status=201,
    ),
    Endpoint("GET", _PROJECT, "One project", "The project; 404 when not the caller's.", "chat"),
    Endpoint(
        "PATCH",
        _PROJECT,
        "Rename / change a project",
        "Change its name, instructions and/or tools.",
        "chat",
        body='{"name": "...", "instructions": "...", "tools": [...] | null} (at least one)',
        body_schema={
            **_object(**_PROJECT_FIELDS),
            "minProperties": 1,
            "additionalProperties": False,
        },
    ),
    Endpoint(
        "DELETE",
        _PROJECT,
        "Delete a project",
        "Delete the project (204); its conversations are kept, outside any project.",
        "chat",
        status=204,
    ),
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/whoami",
        "Who is calling",
        "The caller's identity and role.",
        "any",
        database=False,
    ),
    Endpoint(
        "GET",
        "/api/providers",
        "Providers",
        "Configured providers and their models (a list), with the API formats each accepts "
        "(flag, endpoints), the client API formats that reach it through translation "
        "(`translated_from`) and prices in USD per million tokens per model.",
        "user",
        returns="array",
        database=False,
    ),
    Endpoint(
        "GET",
        "/api/models",
        "Models by provider",
        "Every configured model grouped by provider: API formats, whether the caller may use "
        "it, prices in USD per million tokens, and the minimal request that tests it.",
        "user",
        database=False,
    ),
    Endpoint(
        "GET",
        "/api/config",
        "Current config",
        'The running config text (literal secrets as "[redacted]"), the same config parsed '
        "(`value`, as the visual editors edit it), its hash and version.",
        "admin",
    ),
    Endpoint(
        "PUT",
        "/api/config",
        "Save config",
        "Store a new config version: `config`, the whole HuJSON text, or `value`, the config "
        "as a JSON object, which irisgate writes into the stored text in place (only the "
        "values that changed; comments, order and layout kept; a secret left "
        '"[redacted]" keeps the stored one). 409 when `hash` is not the newest version\'s; '
        "400 with `errors` (path, line, message) when invalid; 403 when it would remove the "
        "caller's own admin role.",
        "admin",
        body='{"config": "<HuJSON text>", "hash": "<hash of the version it is based on>"}',
        body_schema={
            **_object(("hash",), config=_TEXT, value={"type": "object"}, hash=_TEXT),
            "oneOf": [{"required": ["config"]}, {"required": ["value"]}],
        },
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/api/config/versions",
        "Config history",
        "Stored config versions, newest first.",
        "admin",
        (("limit", "At most this many (1-1000, default 50).", _count(1000)),),
    ),
    Endpoint(
        "GET",
        "/api/config/versions/{version_id}",
        "One config version",
        "A version's text (secrets masked) and its unified diff from the version it replaced.",
        "admin",
    ),
    Endpoint(
        "POST",
        "/api/config/versions/{version_id}/rollback",
        "Roll back to a version",
        "Save that version's stored text (its secrets included) as a new version, with the "
        "same checks and answers as `PUT /api/config`.",
        "admin",
        body='{"hash": "<hash of the current version>"}',
        body_schema=_object(("hash",), hash=_TEXT),
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/api/requests",
        "Requests",
        "Recorded requests, newest first (non-admins: their own). Cursor paging with `before`.",
        "user",
        (
            ("user", "Only this login name (admins).", _TEXT),
            ("model", "Only this model.", _TEXT),
            ("session", "Only this session id.", _TEXT),
            ("kind", "Only requests of this kind (what they asked for).", _KIND),
            ("since", "RFC 3339 time (`2026-01-31T00:00:00Z`), inclusive.", _TIME),
            ("until", "RFC 3339 time, exclusive.", _TIME),
            (
                "before",
                "Rows with an id below this (the previous page's `next_before`).",
                _count(2**62),
            ),
            ("limit", "Rows per page (1-500, default 50).", _count(500)),
        ),
    ),
    Endpoint(
        "GET",
        "/api/requests/{request_id}",
        "One request",
        "A request with its capture: headers, bodies, tokens, cost, timing.",
        "user",
    ),
    Endpoint(
        "GET",
        "/api/usage/summary",
        "Usage summary",
        "Totals (with active users), the daily series and per-model sums. Cost fields are null "
        "with `cost_redacted` for non-admins unless filtered to themselves.",
        "user",
        _FILTERS,
    ),
    Endpoint(
        "GET",
        "/api/usage/users",
        "Top users",
        "Per-user sums, ranked by the sort key and paginated; non-admins see other users' "
        "cost fields as null.",
        "user",
        (
            *_FILTERS,
            (
                "sort",
                "total_tokens (default), input_tokens, output_tokens, cache_read_tokens, "
                "reasoning_tokens, requests, avg_cost_per_mtok_nanodollars, cost_nanodollars, "
                "login_name.",
                {"type": "string", "enum": list(SORT_KEYS)},
            ),
            ("order", "desc or asc.", {"type": "string", "enum": ["desc", "asc"]}),
            ("page", "Page number from 1.", _count(1_000_000)),
            ("per_page", "Rows per page (1-500, default 25).", _count(500)),
        ),
    ),
    Endpoint(
        "GET",
        "/api/usage/export.csv",
        "Usage CSV",
        "Usage per day, user and model with token counts and cost in USD.",
        "admin",
        _FILTERS,
        media_type=_CSV,
    ),
    Endpoint(
        "GET",
        "/api/usage/models",
        "Model activity",
        "Per-model sums, and `daily`: tokens and cost per day for the 8 biggest models (the "
        "rest as one series named null).",
        "admin",
        _FILTERS,
    ),
    Endpoint(
        "GET",
        "/api/usage/agents",
        "Agent activity",
        "Sums per agent program (the User-Agent's product, without version), and `daily` "
        "as for models.",
        "admin",
        _FILTERS,
    ),
    Endpoint(
        "GET",
        "/api/usage/filters",
        "Filter choices",
        "The indexed headers the caller may filter on (`name`, `redact_values`) and the "
        "agents of the range.",
        "user",
        _RANGE,
    ),
    Endpoint(
        "GET",
        "/api/usage/tools",
        "Tool use",
        "Tool calls in the range: `days` (calls per UTC day by kind: `mcp` MCP connector "
        "tools, `http` HTTP connector requests, `model` tool calls in models' answers), "
        "`tools` (per kind, connector, tool and model, with errors and users), `sessions` "
        "(the 100 sessions with the most calls) and `totals`. Users see their own calls "
        "only; `user` naming someone else is a 403 for them.",
        "user",
        (
            *_RANGE,
            ("user", "Only this login name (admins; others get their own).", _TEXT),
            ("model", "Only the tool calls this model made in its answers.", _TEXT),
            ("tool", "Only calls of this MCP tool or connector id.", _TEXT),
            ("session", "Only calls of this session id.", _TEXT),
        ),
    ),
    Endpoint(
        "GET",
        "/api/usage/active-users",
        "User activity",
        "Daily, weekly (7 days) and monthly (30 days) active users for each day of the "
        "range, and `periods`: active users per period of `group`.",
        "admin",
        (
            *_RANGE,
            (
                "group",
                "day (default), week (from Monday), month, or 4of7 (per day, the users "
                "active on at least 4 of the 7 days ending that day).",
                {"type": "string", "enum": ["day", "week", "month", "4of7"]},
            ),
        ),
    ),
    Endpoint(
        "GET",
        "/api/dashboard/{login_name}",
        "A user's dashboard",
        "Totals, tokens by model, active sessions and recent requests of one user (oneself, or "
        "anyone for admins).",
        "user",
        _RANGE,
    ),
    Endpoint(
        "GET",
        "/api/sessions",
        "Sessions",
        "Agent sessions, most recent first, with their sums.",
        "admin",
        (
            ("user", "Only this login name.", _TEXT),
            ("since", "Last request at or after this RFC 3339 time.", _TIME),
            ("until", "Last request before this RFC 3339 time.", _TIME),
            ("page", "Page number from 1.", _count(1_000_000)),
            ("per_page", "Rows per page (1-200, default 25).", _count(200)),
        ),
    ),
    Endpoint(
        "POST",
        "/api/keys",
        "Make an API key",
        "Make an API key for the caller, or (admins) for a service identity `NAME@service` "
        "(`owner`). Answers the key with its `secret`, the only time it is shown. `models` "
        "(provider/model globs) narrows what the key may use within its owner's grants; "
        "`quota` names a quota of the config that the key's own bucket `key:<id>` follows; "
        "`expires_at` (RFC 3339, in the future) ends it. A key narrower than its owner "
        "cannot make keys (403). 409 when the owner has 1000 keys.",
        "user",
        body='{"name": "laptop", "expires_at": "2027-01-01T00:00:00Z", "models": ["openai/**"]}',
        body_schema=_object(
            ("name",),
            name={"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^\S"},
            expires_at={"type": ["string", "null"], "format": "date-time"},
            models={
                "type": ["array", "null"],
                "maxItems": 64,
                "items": {"type": "string", "minLength": 1, "maxLength": 300},
            },
            quota={"type": ["string", "null"], "maxLength": 200},
            owner={"type": ["string", "null"], "maxLength": 80},
        ),
        status=201,
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/api/keys",
        "API keys",
        "The caller's keys, newest first, revoked ones included: id, `prefix` (the secret's "
        "first characters), name, owner, created, expires, revoked, last used, models, quota. "
        "Never the secret. Admins list every key with `all=1`.",
        "user",
        (("all", "1 or true: every owner's keys (admins only).", _TEXT),),
        returns="array",
    ),
    Endpoint(
        "PATCH",
        "/api/keys/{key_id}",
        "Change an API key's budget",
        "Give a key its own budget: `quota` names a quota of the config that the key's "
        'bucket `key:<id>` follows ("" or null: no budget of its own). At once here, on '
        "other instances within the config convergence bound. Owners change their keys, "
        "admins any key; a key narrower than its owner cannot (403); a revoked key is 409. "
        "Answers the key.",
        "user",
        body='{"quota": "per-key"}',
        body_schema=_object(("quota",), quota={"type": ["string", "null"], "maxLength": 200}),
        errors=(409,),
    ),
    Endpoint(
        "DELETE",
        "/api/keys/{key_id}",
        "Revoke an API key",
        "Revoke a key at once, here and on every other instance within the config "
        "convergence bound (2 s). Owners revoke their keys, admins any "
        "key. Answers the key.",
        "user",
    ),
    Endpoint(
        "GET",
        "/api/providers/health",
        "Provider health",
        "This instance's view of every configured provider, in config order: routing "
        "(in rotation, disabled, unavailable), preference, weight, circuit `state` (closed, "
        "open, half_open), error rate over its last attempts, last error and when, cool-down "
        "left, and each key by index with its rest or drop. Never a key. Per instance: each "
        "learns about an outage on its own.",
        "admin",
        returns="array",
        database=False,
    ),
    Endpoint(
        "GET",
        "/api/quotas",
        "Quota buckets",
        "Buckets with balance, capacity, refill rate and last update (money as nanodollars and "
        "as a dollar string); `used_by` lists the grants and model globs that charge each one, "
        "`caller_models` the configured models (provider/model) whose requests by the caller "
        "charge it. Users see their own buckets; admins every bucket. The caller's own buckets "
        "also carry `burn_per_day` (what the caller spent per day on the models that charge "
        "it, over the last 7 UTC days) and `days_left` at that rate (null: nothing spent).",
        "user",
        (
            (
                "own",
                "1 or true: only the caller's own buckets (what non-admins always get).",
                _TEXT,
            ),
        ),
    ),
    Endpoint(
        "POST",
        "/api/quotas/refill",
        "Add funds",
        "Add dollars (more than $0) to a bucket, never above its capacity. Answers the bucket. "
        "404 when no quota of the config matches the name.",
        "admin",
        body='{"bucket": "<name>", "amount": "5.00"}',
        body_schema=_object(
            ("bucket", "amount"), bucket={"type": "string", "minLength": 1}, amount=_AMOUNT
        ),
        errors=(404,),
    ),
    Endpoint(
        "POST",
        "/api/quotas/set",
        "Set balance",
        "Set a bucket's balance (0 to capacity). Answers the bucket. 404 when no quota of the "
        "config matches the name.",
        "admin",
        body='{"bucket": "<name>", "balance": "2.50"}',
        body_schema=_object(
            ("bucket", "balance"), bucket={"type": "string", "minLength": 1}, balance=_AMOUNT
        ),
        errors=(404,),
    ),
    Endpoint(
        "GET",
        "/api/quotas/changes",
        "Quota change history",
        "Manual refills and sets, newest first: bucket, action, who, when, amount, balance "
        "before and after.",
        "admin",
        (
            ("bucket", "Only this bucket; default: every bucket.", _TEXT),
            ("limit", "At most this many (1-500, default 50).", _count(500)),
        ),
    ),
    Endpoint(
        "GET",
        "/api/rate-limits",
        "Rate limits",
        "The caller's rate limits (the `rate_limits` templates their grants list, expanded for "
        "them): name, template, kind (requests, tokens or concurrent), limit, per (second, "
        "minute, hour; null for concurrent), used now across every live instance, remaining, "
        "and the tokens `reserved` or requests `in_flight`; `instances`: the live irisgate "
        "instances sharing the limits (other instances' use is as of the last sync, at most "
        "half a second old).",
        "user",
    ),
    Endpoint(
        "GET",
        "/api/connectors",
        "Connectors",
        "The connectors the caller may see, each with its status for the caller (ready, "
        "needs_auth, misconfigured, no_access), auth type and whether it signs in per user; "
        "admins also get the upstream URL. Secrets are never included.",
        "user",
    ),
    Endpoint(
        "POST",
        "/api/connectors/{connector_id}/connect",
        "Connect a connector",
        "Start the caller's OAuth sign-in for a per-user connector: answers `{auth_url}` to "
        "open in the browser; the OAuth server returns to /aperture/auth/<id>/callback. 403 "
        "without a grant for the connector, 409 when it cannot start (misconfigured).",
        "user",
        errors=(409,),
    ),
    Endpoint(
        "GET",
        "/api/alerts",
        "Alerts",
        "The caller's notification list, newest first: kind (budget, spend_spike, provider, "
        "upstream_errors, hook, export, storage), subject, threshold, severity (info, warning, "
        "critical), message, the user it concerns, raised_at, cleared_at (re-armed) and "
        "`read` for the caller; `unread` counts the list's unread alerts. Users see the "
        "alerts that concern them (their own budget buckets and spend); admins every alert, "
        "each with its `deliveries` (channel, state pending/delivered/failed, attempts, "
        "last_error, next_attempt_at), and `failed_deliveries`: deliveries failing or given up.",
        "user",
        (
            ("limit", "At most this many (1-200, default 50).", _count(200)),
            (
                "before",
                "Only alerts with a smaller id (`next_before` of the last page).",
                _count(2**62),
            ),
            ("all", "Admins: 0 or false for only the alerts that concern them.", _TEXT),
        ),
    ),
    Endpoint(
        "GET",
        "/api/alerts/unread",
        "Unread alerts",
        "`{unread}`: how many alerts of the caller's list (as `GET /api/alerts`) are unread.",
        "user",
    ),
    Endpoint(
        "POST",
        "/api/alerts/read",
        "Mark alerts read",
        "Mark alerts read for the caller: those of `ids` (1-500) or, with `all: true`, every "
        "alert of their list; ids the caller may not see are ignored. Answers `marked` (how "
        "many became read) and the new `unread` count.",
        "user",
        body='{"ids": [1, 2]} or {"all": true}',
        body_schema={
            "oneOf": [
                {
                    "type": "object",
                    "required": ["ids"],
                    "additionalProperties": False,
                    "properties": {
                        "ids": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 500,
                            "items": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                        }
                    },
                },
                {
                    "type": "object",
                    "required": ["all"],
                    "additionalProperties": False,
                    "properties": {"all": {"const": True}},
                },
            ]
        },
    ),
    *CHAT_ENDPOINTS,
    Endpoint("GET", "/api/openapi.json", "This document", "OpenAPI 3.1.", "any", database=False),
)

#: path parameters that are whole numbers (the routes' `:int` converters)
_INTEGER_PATH_PARAMS = frozenset({"version_id", "message_id"})

_ACCESS = {
    "any": "Any caller irisgate can identify.",
    "user": "Callers with a role (user or admin); others get 403.",
    "admin": "Admins only; others get 403.",
    "chat": "Callers with a role and chat enabled (no `enable_chat_ui: false` grant, "
    "`chat_ui` flag not false); others get 403.",
}


def _parameters(ep: Endpoint) -> list[dict[str, Any]]:
    query = [
        {"name": name, "in": "query", "required": False, "description": text, "schema": schema}
        for name, text, schema in ep.params
    ]
    path = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0}
            if name in _INTEGER_PATH_PARAMS
            else {"type": "string", "minLength": 1},
        }
        for name in _path_params(ep.path)
    ]
    return query + path


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _responses(ep: Endpoint) -> dict[str, Any]:
    if ep.status == 204:
        responses: dict[str, Any] = {"204": {"description": "Done; no content."}}
    else:
        schema = {"type": "string" if ep.media_type == _CSV else ep.returns}
        responses = {
            str(ep.status): {"description": "OK", "content": {ep.media_type: {"schema": schema}}}
        }
    errors = {401, 403, *ep.errors}
    if ep.params or ep.body_schema is not None:
        errors.add(400)
    if ep.body_schema is not None:
        errors.update((413, 415))
    if _path_params(ep.path):
        errors.add(404)
    if ep.database:
        errors.add(503)
    for status in sorted(errors):
        description = _ERRORS[status]
        if status == 403 and ep.method != "GET":
            description = (
                "Access denied, or a browser sent this from a page of another origin "
                "(cross-site request); `error` says why."
            )
        responses[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
    return responses


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for ep in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": ep.summary,
            "description": f"{ep.description}\n\nAccess: {_ACCESS[ep.access]}",
            "tags": [ep.access if ep.access in ("admin", "chat") else "everyone"],
            "parameters": _parameters(ep),
            "responses": _responses(ep),
        }
        if ep.body_schema is not None:
            operation["requestBody"] = {
                "required": True,
                "description": ep.body,
                "content": {ep.body_type: {"schema": ep.body_schema}},
            }
        paths.setdefault(ep.path, {})[ep.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "irisgate management API",
            "version": __version__,
            "description": "JSON endpoints behind the dashboard. Errors are "
            '`{"error": "<message>"}`. The caller is known from the network (Tailscale) '
            "or from an irisgate API key (`Authorization: Bearer irisgate_…`), which acts "
            "as its owner.",
        },
        "paths": paths,
    }


async def openapi(request: Request) -> Response:
    return json_response(document())
