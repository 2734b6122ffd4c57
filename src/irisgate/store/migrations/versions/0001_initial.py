"""Initial schema: config_versions, requests, captures, usage_daily.

Hand-written so that it stays what it was when later revisions change `tables.py`; it runs
on SQLite and PostgreSQL alike.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_USAGE = (
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
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("''"))


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("config_versions.id"), nullable=True),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("source", sa.Text(), nullable=False),
        sa.UniqueConstraint("parent_id", name="uq_config_versions_parent_id"),
        sqlite_autoincrement=True,
    )
    # At most one root version: NULL parents never conflict in the unique constraint above.
    op.create_index(
        "uq_config_versions_root",
        "config_versions",
        [sa.text("coalesce(parent_id, 0)")],
        unique=True,
    )

    op.create_table(
        "requests",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        *(
            _text(name)
            for name in (
                "login_name",
                "display_name",
                "node_id",
                "node_name",
                "tags",
                "method",
                "path",
                "api_format",
                "api_type",
                "model",
                "provider",
            )
        ),
        sa.Column("stream", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("status", sa.Integer(), nullable=False, server_default=sa.text("0")),
        _text("error"),
        sa.Column("cancelled", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("duration_ms", sa.Float(), nullable=False, server_default=sa.text("0")),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("upstream_ms", sa.Float(), nullable=True),
        *(_count(name) for name in _USAGE),
        _count("total_tokens"),
        sa.Column("cost_nanodollars", sa.BigInteger(), nullable=True),
        _text("cost_basis"),
        _text("session_id"),
        _text("user_agent"),
        sa.Column("config_version", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("tool_calls", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.UniqueConstraint("request_id", name="uq_requests_request_id"),
        sqlite_autoincrement=True,  # ids are cursors: never reuse one after a purge
    )
    op.create_index("ix_requests_started_at", "requests", ["started_at"])
    op.create_index("ix_requests_model", "requests", ["model"])
    op.create_index("ix_requests_login_name_started_at", "requests", ["login_name", "started_at"])
    op.create_index("ix_requests_session_id_started_at", "requests", ["session_id", "started_at"])

    op.create_table(
        "captures",
        sa.Column(
            "request_id",
            sa.Text(),
            sa.ForeignKey("requests.request_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("request_headers", sa.Text(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("response_headers", sa.Text(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("request_body", sa.LargeBinary(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
    )

    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        *(
            _count(name)
            for name in (
                "requests",
                *_USAGE,
                "total_tokens",
                "cost_nanodollars",
                "unpriced_requests",
                "error_requests",
            )
        ),
        sa.PrimaryKeyConstraint("day", "login_name", "model", "provider", name="pk_usage_daily"),
    )


def downgrade() -> None:
    op.drop_table("usage_daily")
    op.drop_table("captures")
    op.drop_index("ix_requests_session_id_started_at", table_name="requests")
    op.drop_index("ix_requests_login_name_started_at", table_name="requests")
    op.drop_index("ix_requests_model", table_name="requests")
    op.drop_index("ix_requests_started_at", table_name="requests")
    op.drop_table("requests")
    op.drop_index("uq_config_versions_root", table_name="config_versions")
    op.drop_table("config_versions")
