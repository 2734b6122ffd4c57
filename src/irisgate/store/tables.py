"""The database schema, as SQLAlchemy Core tables.

This module is the schema's description for queries; the migrations in
`irisgate.store.migrations.versions` are what create it. Both must say the same thing:
`tests/store/test_migrations.py` compares them on every backend.

Tables:

- `config_versions`: every configuration version ever applied. `parent_id` is the version a
  new one replaced and is unique, so two writers that both replace the same version conflict
  in the database and exactly one wins; the expression index `uq_config_versions_root` does
  the same for the first version (whose parent is NULL, and NULLs never conflict in a plain
  unique constraint).
- `requests`: one metrics row per gateway request (identity, routing, timing, token usage,
  cost). These rows are what usage and cost reports are made of; they survive body purges.
- `captures`: headers and bodies of a request, kept apart from `requests` so that retention
  can delete them while the usage metrics stay; with `database.save_raws` also the upstream
  answer's raw bytes and their content-encoding (retention category `raws`).
- `responses`: which provider, model and login created an OpenAI Responses API response
  (by its `resp_…` id), written with the creating request's record; the routes that name a
  response instead of a model (`GET/DELETE /v1/responses/{id}`, `input_items`, `cancel`)
  look it up. A small table of its own rather than a `requests` column: most requests have
  no response id, and a lookup by primary key needs no extra index on the widest, busiest
  table.
- `openai_objects`: the OpenAI files and batches irisgate relayed the creation of (by the
  provider's `file-…` / `batch_…` id): the login (and API key id) that created it, the
  provider that holds it, its purpose, the models a batch input file names, the batch an
  output file belongs to, the object as last relayed (what `GET /v1/files` and
  `GET /v1/batches` list), and when a batch output file's results were charged (once).
  Only the creator may reach an object (irisgate.gateway.objects).
- `export_state`: one row per usage exporter (`s3`): the id cursor and the batch being
  uploaded, so that a batch interrupted between upload and cursor update is redone under the
  same object key (see `irisgate.exporters.cursor`). `requests.exported_at` marks exported
  rows (retention's `require_export`); `ix_requests_unexported` finds the rest cheaply.
  `requests.usage_estimated` marks token counts irisgate estimated itself (a stream that
  ended without the upstream's usage) instead of reading them from the upstream.
- `usage_daily`: per (UTC day, login, model, provider) sums of `requests`, kept current by the
  batch writer so that dashboards never scan `requests`. Each key has one row per `shard`
  (see `ROLLUP_SHARD` below); readers sum a key's shards.
- `connector_tokens`: one user's OAuth tokens for one connector, encrypted (`data` is a
  Fernet token; see `irisgate.connectors.tokens`).
- `usage_agent_daily` (per UTC day, login, agent program) and `sessions` (per login and
  session id): the same kind of sums for the Agent activity and Session logs pages.
- `tool_use_daily`: tool calls per (UTC day, login, session, kind, connector, tool, model),
  for the Tool Use page. `usage_facets_daily`: `usage_daily`'s sums with agent, status code,
  kind of request and one indexed header's value as more key columns, for the Usage
  Overview's filters.
- `api_keys`: personal and service API keys, by id: the SHA-256 of the secret (never the
  secret), its first characters to recognise it by, owner, name, expiry, revocation, the
  model globs that narrow it and the quota template of its own bucket. `api_key_generation`
  is one number every change of `api_keys` raises, which instances poll (irisgate.identity.
  keyring). `requests.key_id` and `key_name` name the key a request used ("" for none).
  `requests.upstream_format` names the provider's API format of a translated request (the
  capture then keeps both sides' bodies: `upstream_request_body`, `upstream_response_body`).
- `chat_conversations` and `chat_messages`: the chat app's conversations of one login and
  their turns, in order (`outcome` of an assistant turn: completed, error, cancelled, ...).
  `chat_projects`: a login's projects (name, shared instructions, the tools allowed in them);
  `chat_attachments`: images attached in chat, stored once, served by id to their owner.
- `signin_sessions` and `signin_attempts` (identity mode oidc, `irisgate.identity.sessions`):
  the people signed in, by the SHA-256 of their session cookie (never the cookie itself), and
  the sign-ins under way, by the SHA-256 of their `state`, each taken once by the callback.
  A session's `key_id` names the API key it stands for (identity mode keys), "" for none.
- `owner_attributes`: each person's groups and aperture capabilities as last seen on a
  verified connection (tailnet WhoIs, OIDC sign-in), which their API keys carry
  (irisgate.identity.owners).
- `alerts`: one row per alert raised (`irisgate.alerts`): kind, subject (a bucket, provider,
  hook ...), threshold ("" when the kind has none), severity, message, the login it concerns
  ("" for the gateway's own alerts). `(kind, subject, threshold, episode)` is unique: the
  instances sharing the database insert an alert with `ON CONFLICT DO NOTHING`, so one row
  is made however many of them saw the crossing; `cleared_at` re-arms it (the next crossing
  is the next episode). `alert_reads`: who has read which alert. `alert_deliveries`: one
  row per alert and channel, with its attempts, next attempt, last error, the instance's
  claim (`claimed_until`) and when it was delivered or given up.

Timestamps are `UTCDateTime`: timezone-aware UTC datetimes in Python on every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: The token counters of `irisgate.usage.tokens.Usage`, one BIGINT column each in `requests`
#: and `usage_daily`. Spelled out (not derived from the dataclass) because a new field needs
#: a migration; a test fails when this list and `Usage` disagree.
USAGE_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "web_search_count",
)

#: The additive columns of `usage_daily` (everything except the key).
ROLLUP_SUM_COLUMNS: tuple[str, ...] = (
    "requests",
    *USAGE_FIELDS,
    "total_tokens",
    "cost_nanodollars",
    "unpriced_requests",
    "error_requests",
    "priced_tokens",  # total_tokens of the priced requests: the denominator of $/M averages
)

#: The key of `usage_daily`.
ROLLUP_KEY_COLUMNS: tuple[str, ...] = ("day", "login_name", "model", "provider")

#: The last column of the primary key of the rollups (`usage_daily`, `usage_agent_daily`,
#: `sessions`): which partial row of the key a writer's transaction adds to. A writer
#: transaction on PostgreSQL takes a shard no other transaction holds at that moment
#: (`irisgate.telemetry.shards`), so instances sharing the database never wait on each
#: other's rollup row locks. A key's rows are partial sums: every reader adds them up
#: (`SUM` of the sums, `MIN(first_at)`, `MAX(last_at)`). SQLite writes only shard 0.
ROLLUP_SHARD = "shard"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always a timezone-aware UTC `datetime` in Python.

    PostgreSQL stores `timestamptz`. SQLite has no timestamp type, so values are stored as
    naive UTC text (`YYYY-MM-DD HH:MM:SS.ffffff`), which sorts and compares correctly. A naive
    value handed in is taken to be UTC already.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()


def _text(name: str, *, index: bool = False) -> Column[str]:
    return Column(name, Text, nullable=False, server_default=text("''"), index=index)


def _count(name: str) -> Column[int]:
    return Column(name, BigInteger, nullable=False, server_default=text("0"))


def _shard() -> Column[int]:
    return Column(ROLLUP_SHARD, SmallInteger, nullable=False, server_default=text("0"))


config_versions = Table(
    "config_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", Integer, ForeignKey("config_versions.id"), nullable=True),
    Column("hash", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text, nullable=False, server_default=text("''")),
    Column("source", Text, nullable=False),
    UniqueConstraint("parent_id", name="uq_config_versions_parent_id"),
    sqlite_autoincrement=True,
)
Index(
    "uq_config_versions_root",
    func.coalesce(config_versions.c.parent_id, 0),
    unique=True,
)

#: `requests.api_format` of the connectors' records: an MCP tool call, an HTTP connector request
MCP_FORMAT = "mcp"
HTTP_FORMAT = "http_connector"

requests = Table(
    "requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("request_id", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    _text("login_name"),
    _text("display_name"),
    _text("node_id"),
    _text("node_name"),
    _text("tags"),
    _text("method"),
    _text("path"),
    _text("api_format"),
    _text("api_type"),
    _text("model"),
    _text("provider"),
    Column("stream", Boolean, nullable=False, server_default=text("false")),
    Column("status", Integer, nullable=False, server_default=text("0")),
    _text("error"),
    Column("cancelled", Boolean, nullable=False, server_default=text("false")),
    Column("duration_ms", Float, nullable=False, server_default=text("0")),
    Column("ttfb_ms", Float, nullable=True),
    Column("upstream_ms", Float, nullable=True),
    *(_count(name) for name in USAGE_FIELDS),
    _count("total_tokens"),
    Column("cost_nanodollars", BigInteger, nullable=True),
    _text("cost_basis"),
    _text("session_id"),
    _text("user_agent"),
    Column("config_version", Integer, nullable=False, server_default=text("0")),
    Column("tool_calls", Integer, nullable=False, server_default=text("0")),
    _count("request_bytes"),
    _count("response_bytes"),
    Column("exported_at", UTCDateTime, nullable=True),
    Column("usage_estimated", Boolean, nullable=False, server_default=text("false")),
    _text("key_id"),
    _text("key_name"),
    # JSON list of the upstream attempts (failover, several keys); NULL for a lone one
    Column("attempts", Text, nullable=True),
    # the API format of the provider that served a translated request ("" untranslated)
    _text("upstream_format"),
    # what the request asked for (telemetry/record.py KINDS), and its non-token unit
    Column("kind", Text, nullable=False, server_default=text("'chat'")),
    _text("unit"),
    _count("units"),
    UniqueConstraint("request_id", name="uq_requests_request_id"),
    sqlite_autoincrement=True,
)
# login_name and session_id are indexed through the composites (their leading column).
Index("ix_requests_started_at", requests.c.started_at)
Index("ix_requests_model", requests.c.model)
Index("ix_requests_login_name_started_at", requests.c.login_name, requests.c.started_at)
Index("ix_requests_session_id_started_at", requests.c.session_id, requests.c.started_at)
Index(
    "ix_requests_unexported",
    requests.c.id,
    sqlite_where=requests.c.exported_at.is_(None),
    postgresql_where=requests.c.exported_at.is_(None),
)

captures = Table(
    "captures",
    metadata,
    Column(
        "request_id",
        Text,
        ForeignKey("requests.request_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("request_headers", Text, nullable=False, server_default=text("'{}'")),
    Column("response_headers", Text, nullable=False, server_default=text("'{}'")),
    Column("request_body", LargeBinary, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    # `database.save_raws`: the upstream answer's bytes as received (still compressed when
    # `response_raw_encoding`, its content-encoding, says so); NULL when not kept or purged.
    Column("response_raw", LargeBinary, nullable=True),
    Column("response_raw_encoding", Text, nullable=True),
    # a translated request's body as sent to the provider and the provider's answer (in
    # `requests.upstream_format`); the bodies above are then the caller's. NULL otherwise.
    Column("upstream_request_body", LargeBinary, nullable=True),
    Column("upstream_response_body", LargeBinary, nullable=True),
)

responses = Table(
    "responses",
    metadata,
    Column("response_id", Text, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("login_name", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

openai_objects = Table(
    "openai_objects",
    metadata,
    Column("object_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),  # file | batch
    Column("provider", Text, nullable=False),
    Column("login_name", Text, nullable=False),
    Column("key_id", Text, nullable=False, server_default=text("''")),
    Column("purpose", Text, nullable=False, server_default=text("''")),
    Column("models", Text, nullable=False, server_default=text("'[]'")),  # JSON list
    Column("batch_id", Text, nullable=True),  # an output or error file's batch
    Column("object", Text, nullable=False),  # JSON, as last relayed
    Column("request_id", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("charged_at", UTCDateTime, nullable=True),
)
Index(
    "ix_openai_objects_login_kind_created",
    openai_objects.c.login_name,
    openai_objects.c.kind,
    openai_objects.c.created_at,
)

export_state = Table(
    "export_state",
    metadata,
    Column("exporter", Text, primary_key=True),
    Column("last_id", BigInteger, nullable=False, server_default=text("0")),
    Column("batch_key", Text, nullable=True),
    Column("batch_ids", Text, nullable=True),
    Column("exported_total", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", UTCDateTime, nullable=True),
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("login_name", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("provider", Text, nullable=False),
    *(_count(name) for name in ROLLUP_SUM_COLUMNS),
    _shard(),
    PrimaryKeyConstraint(*ROLLUP_KEY_COLUMNS, ROLLUP_SHARD, name="pk_usage_daily"),
)

Index(
    "ix_usage_daily_unfolded",
    usage_daily.c.day,
    postgresql_where=usage_daily.c.shard != 0,
    sqlite_where=usage_daily.c.shard != 0,
)

connector_tokens = Table(
    "connector_tokens",
    metadata,
    Column("login_name", Text, nullable=False),
    Column("connector_id", Text, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("login_name", "connector_id", name="pk_connector_tokens"),
)
#: The key of `usage_agent_daily` (its sums are `ROLLUP_SUM_COLUMNS`).
AGENT_ROLLUP_KEY_COLUMNS: tuple[str, ...] = ("day", "login_name", "agent")
#: The additive columns of `sessions`.
SESSION_SUM_COLUMNS: tuple[str, ...] = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_nanodollars",
    "error_requests",
    "priced_tokens",
)

# Per (UTC day, login, agent name from the User-Agent) sums, for the Agent activity page.
usage_agent_daily = Table(
    "usage_agent_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("login_name", Text, nullable=False),
    Column("agent", Text, nullable=False),
    *(_count(name) for name in ROLLUP_SUM_COLUMNS),
    _shard(),
    PrimaryKeyConstraint(*AGENT_ROLLUP_KEY_COLUMNS, ROLLUP_SHARD, name="pk_usage_agent_daily"),
)

Index(
    "ix_usage_agent_daily_unfolded",
    usage_agent_daily.c.day,
    postgresql_where=usage_agent_daily.c.shard != 0,
    sqlite_where=usage_agent_daily.c.shard != 0,
)

# One row per agent session (`requests.session_id`) of one login and shard: when it ran and
# its sums, for the Session logs page, so that listing sessions never groups `requests`.
sessions = Table(
    "sessions",
    metadata,
    Column("login_name", Text, nullable=False),
    Column("session_id", Text, nullable=False),
    Column("agent", Text, nullable=False, server_default=text("''")),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    *(_count(name) for name in SESSION_SUM_COLUMNS),
    _shard(),
    PrimaryKeyConstraint("login_name", "session_id", ROLLUP_SHARD, name="pk_sessions"),
)
Index("ix_sessions_last_at", sessions.c.last_at)
Index("ix_sessions_login_name_last_at", sessions.c.login_name, sessions.c.last_at)
# the rows outside shard 0, which the rollup fold (`irisgate.telemetry.folding`) moves
Index(
    "ix_sessions_unfolded",
    sessions.c.last_at,
    postgresql_where=sessions.c.shard != 0,
    sqlite_where=sessions.c.shard != 0,
)

#: `tool_use_daily.kind`: an MCP connector's tool, an HTTP connector request, or tool calls a
#: model asked for in its answer.
TOOL_KINDS: tuple[str, ...] = ("mcp", "http", "model")
#: The key of `tool_use_daily` (its sums are `calls` and `errors`).
TOOL_KEY_COLUMNS: tuple[str, ...] = (
    "day",
    "login_name",
    "session_id",
    "kind",
    "connector",
    "tool",
    "model",
)

# Tool calls per (UTC day, login, session, kind, connector, tool, model): the Tool Use page
# reads this instead of the requests that carry tool calls.
tool_use_daily = Table(
    "tool_use_daily",
    metadata,
    *(Column(name, Date if name == "day" else Text, nullable=False) for name in TOOL_KEY_COLUMNS),
    _count("calls"),
    _count("errors"),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    _shard(),
    PrimaryKeyConstraint(*TOOL_KEY_COLUMNS, ROLLUP_SHARD, name="pk_tool_use_daily"),
    # SQLite: rows stored in key order, so a range of days is one sequential read (a rowid
    # table would look up every row the key's index finds: about three times slower)
    sqlite_with_rowid=False,
)
Index(
    "ix_tool_use_daily_unfolded",
    tool_use_daily.c.day,
    postgresql_where=tool_use_daily.c.shard != 0,
    sqlite_where=tool_use_daily.c.shard != 0,
)

#: The key of `usage_facets_daily` (its sums are `ROLLUP_SUM_COLUMNS`). `header` and `value`
#: are '' in the row every request adds to; a request adds one more row per indexed header
#: it carried (`database.headers.filterable`), so a filter names at most one header.
FACET_KEY_COLUMNS: tuple[str, ...] = (
    "day",
    "login_name",
    "model",
    "provider",
    "agent",
    "status",
    "kind",
    "header",
    "value",
)

# usage_daily with more dimensions, for the Usage Overview's agent, status code and header
# filters (read only when one of them is set).
usage_facets_daily = Table(
    "usage_facets_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("login_name", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("agent", Text, nullable=False),
    Column("status", Integer, nullable=False),
    Column("kind", Text, nullable=False, server_default=text("'chat'")),
    Column("header", Text, nullable=False),
    Column("value", Text, nullable=False),
    *(_count(name) for name in ROLLUP_SUM_COLUMNS),
    _shard(),
    PrimaryKeyConstraint(*FACET_KEY_COLUMNS, ROLLUP_SHARD, name="pk_usage_facets_daily"),
    sqlite_with_rowid=False,  # as tool_use_daily
)
Index(
    "ix_usage_facets_daily_header_value_day",
    usage_facets_daily.c.header,
    usage_facets_daily.c.value,
    usage_facets_daily.c.day,
)
Index(
    "ix_usage_facets_daily_unfolded",
    usage_facets_daily.c.day,
    postgresql_where=usage_facets_daily.c.shard != 0,
    sqlite_where=usage_facets_daily.c.shard != 0,
)

# Quota balances (irisgate.quotas): the row is the authority for a bucket's money. Instances
# lease slices of `balance_nanodollars` (the part outside every lease) into `quota_leases`
# and spend them locally; `quota_changes` records every manual change (who, when, what).
quota_buckets = Table(
    "quota_buckets",
    metadata,
    Column("name", Text, primary_key=True),
    Column("template", Text, nullable=False),
    Column("balance_nanodollars", BigInteger, nullable=False),
    Column("capacity_nanodollars", BigInteger, nullable=False),
    Column("refilled_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

quota_leases = Table(
    "quota_leases",
    metadata,
    Column("bucket", Text, ForeignKey("quota_buckets.name", ondelete="CASCADE"), nullable=False),
    Column("instance", Text, nullable=False),
    Column("held_nanodollars", BigInteger, nullable=False),
    Column("renewed_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("bucket", "instance", name="pk_quota_leases"),
)

quota_changes = Table(
    "quota_changes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("bucket", Text, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("amount_nanodollars", BigInteger, nullable=False),
    Column("balance_before_nanodollars", BigInteger, nullable=False),
    Column("balance_after_nanodollars", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)
Index("ix_quota_changes_bucket", quota_changes.c.bucket, quota_changes.c.changed_at)

# The last quota-journal entry (irisgate.quotas.journal) each report of an instance covered.
quota_journal = Table(
    "quota_journal",
    metadata,
    Column("journal", Text, nullable=False),
    Column("bucket", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("journal", "bucket", name="pk_quota_journal"),
)

# Rate limits (irisgate.quotas.ratelimits): each instance's own use of each limit, written in
# the background (irisgate.quotas.ratesync); the row named "" is the instance's heartbeat.
rate_limit_use = Table(
    "rate_limit_use",
    metadata,
    Column("name", Text, nullable=False),
    Column("instance", Text, nullable=False),
    Column("period_s", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("current", BigInteger, nullable=False),
    Column("previous", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("name", "instance", name="pk_rate_limit_use"),
)

# The chat app (irisgate.chat): conversations of one login and their messages in order.
chat_conversations = Table(
    "chat_conversations",
    metadata,
    Column("id", Text, primary_key=True),
    Column("login_name", Text, nullable=False),
    _text("title"),
    _text("model"),
    _text("instructions"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    _text("tools"),  # JSON list of the connector tools switched on ('' = none)
    _text("reasoning_effort"),
    _text("project_id"),  # the chat_projects row it is in ('' = none)
)
Index(
    "ix_chat_conversations_login_name_updated_at",
    chat_conversations.c.login_name,
    chat_conversations.c.updated_at,
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "conversation_id",
        Text,
        ForeignKey("chat_conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("role", Text, nullable=False),
    _text("content"),
    _text("model"),
    _text("outcome"),
    _text("request_id"),
    Column("created_at", UTCDateTime, nullable=False),
    _text("attachments"),  # JSON list of images of a user message ('' = none)
    _text("tool_calls"),  # JSON list of the tool rounds of an assistant turn ('' = none)
    _text("reasoning"),
    sqlite_autoincrement=True,
)
Index("ix_chat_messages_conversation_id", chat_messages.c.conversation_id, chat_messages.c.id)

chat_projects = Table(
    "chat_projects",
    metadata,
    Column("id", Text, primary_key=True),
    Column("login_name", Text, nullable=False, index=True),
    _text("name"),
    _text("instructions"),
    Column("tools", Text, nullable=True),  # JSON list of tools allowed (NULL: all granted)
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Images attached in chat, once each; messages refer to them by id.
chat_attachments = Table(
    "chat_attachments",
    metadata,
    Column("id", Text, primary_key=True),
    Column("login_name", Text, nullable=False, index=True),
    Column("conversation_id", Text, nullable=False, index=True),
    _text("name"),
    Column("media_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)


# Identity mode oidc: who is signed in (by the hash of the cookie) and sign-ins under way.
signin_sessions = Table(
    "signin_sessions",
    metadata,
    Column("id_hash", Text, primary_key=True),
    Column("login_name", Text, nullable=False),
    _text("display_name"),
    _text("groups"),  # JSON list of the provider's groups
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    _text("key_id"),  # the API key the browser signed in with (mode keys); "" for none
)
Index("ix_signin_sessions_expires_at", signin_sessions.c.expires_at)
Index("ix_signin_sessions_key_id", signin_sessions.c.key_id)

signin_attempts = Table(
    "signin_attempts",
    metadata,
    Column("state_hash", Text, primary_key=True),
    Column("nonce", Text, nullable=False),
    Column("verifier", Text, nullable=False),  # the PKCE code verifier
    _text("return_to"),
    Column("expires_at", UTCDateTime, nullable=False),
)
Index("ix_signin_attempts_expires_at", signin_attempts.c.expires_at)


def conflict_insert(dialect: str, table: Table) -> Any:
    """`INSERT INTO table` in the dialect's own form, the one that takes `ON CONFLICT`
    clauses (`on_conflict_do_nothing` / `on_conflict_do_update`, `.excluded`)."""
    if dialect == "postgresql":
        return postgresql_insert(table)
    if dialect == "sqlite":
        return sqlite_insert(table)
    raise ValueError(f"no INSERT … ON CONFLICT for the {dialect!r} database")


api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Text, primary_key=True),
    Column("secret_hash", Text, nullable=False),
    _text("prefix"),
    _text("name"),
    Column("owner", Text, nullable=False),
    Column("service", Boolean, nullable=False, server_default=text("false")),
    _text("created_by"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    _text("revoked_by"),
    _text("models"),  # JSON list of provider/model globs; "" for none
    _text("quota"),  # a template of the config's quotas; "" for none
    Column("last_used_at", UTCDateTime, nullable=True),
    UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
)
Index("ix_api_keys_owner", api_keys.c.owner)
api_key_generation = Table(
    "api_key_generation",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
)

owner_attributes = Table(
    "owner_attributes",
    metadata,
    Column("login_name", Text, primary_key=True),
    _text("groups"),  # JSON list, e.g. ["group:eng"]
    _text("capmap"),  # canonical JSON {"tailscale.com/cap/aperture": [...]}; "" for none
    _text("source"),  # where they were seen: tailscale or oidc
    Column("seen_at", UTCDateTime, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("subject", Text, nullable=False),
    _text("threshold"),
    Column("episode", Integer, nullable=False),
    Column("severity", Text, nullable=False),
    Column("message", Text, nullable=False),
    _text("login_name"),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("cleared_at", UTCDateTime, nullable=True),
    UniqueConstraint("kind", "subject", "threshold", "episode", name="uq_alerts_episode"),
    sqlite_autoincrement=True,
)
Index("ix_alerts_login_name", alerts.c.login_name, alerts.c.id)
alert_reads = Table(
    "alert_reads",
    metadata,
    Column("alert_id", BigInteger, nullable=False),
    Column("login_name", Text, nullable=False),
    Column("read_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("alert_id", "login_name", name="pk_alert_reads"),
)
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, nullable=False),
    Column("channel", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),
    _text("last_error"),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("failed_at", UTCDateTime, nullable=True),
    UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_channel"),
    sqlite_autoincrement=True,
)
Index("ix_alert_deliveries_due", alert_deliveries.c.next_attempt_at)
