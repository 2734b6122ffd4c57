"""Dashboard rollups: usage_agent_daily and sessions.

Kept current by the batch writer (`irisgate.telemetry.rollups`) in the same transaction as
the requests they sum, so the Agent activity and Session logs pages never scan `requests`.
Requests stored before this revision are summed once here, so upgraded instances show their
history too.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "reasoning_tokens",
    "image_input_tokens",
    "image_output_tokens",
    "web_search_count",
    "total_tokens",
    "cost_nanodollars",
    "unpriced_requests",
    "error_requests",
)
_SESSION_SUMS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_nanodollars",
    "error_requests",
)
_TS = sa.DateTime(timezone=True)


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    op.create_table(
        "usage_agent_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False),
        *(_count(name) for name in _SUMS),
        sa.PrimaryKeyConstraint("day", "login_name", "agent", name="pk_usage_agent_daily"),
    )
    op.create_table(
        "sessions",
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("agent", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("first_at", _TS, nullable=False),
        sa.Column("last_at", _TS, nullable=False),
        *(_count(name) for name in _SESSION_SUMS),
        sa.PrimaryKeyConstraint("login_name", "session_id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_last_at", "sessions", ["last_at"])
    op.create_index("ix_sessions_login_name_last_at", "sessions", ["login_name", "last_at"])
    _backfill_sessions()


def _backfill_sessions() -> None:
    """Sessions of requests stored before this revision (agent names start with new ones)."""
    op.execute(
        "INSERT INTO sessions (login_name, session_id, first_at, last_at, requests, "
        "input_tokens, output_tokens, cache_read_tokens, reasoning_tokens, total_tokens, "
        "cost_nanodollars, error_requests) "
        "SELECT login_name, session_id, MIN(started_at), MAX(started_at), COUNT(*), "
        "SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), "
        "SUM(reasoning_tokens), SUM(total_tokens), SUM(COALESCE(cost_nanodollars, 0)), "
        "SUM(CASE WHEN status >= 400 OR error <> '' THEN 1 ELSE 0 END) "
        "FROM requests WHERE session_id <> '' GROUP BY login_name, session_id"
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_login_name_last_at", table_name="sessions")
    op.drop_index("ix_sessions_last_at", table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("usage_agent_daily")
