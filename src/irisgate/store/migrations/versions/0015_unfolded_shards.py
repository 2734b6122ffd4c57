"""Partial indexes on the rollup rows outside shard 0: the fold finds them without a scan.

The rollup fold (`irisgate.telemetry.folding`) moves the partial rows of keys nobody writes
any more (`usage_daily` and `usage_agent_daily` of past days, `sessions` quiet for a while)
into their key's shard 0. These indexes hold only the rows not folded yet, so finding them
costs as little as there are, however large the tables grow.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

#: index name, table, column
_INDEXES = (
    ("ix_usage_daily_unfolded", "usage_daily", "day"),
    ("ix_usage_agent_daily_unfolded", "usage_agent_daily", "day"),
    ("ix_sessions_unfolded", "sessions", "last_at"),
)


def upgrade() -> None:
    for name, table, column in _INDEXES:
        where = sa.text("shard <> 0")
        op.create_index(name, table, [column], postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name, table, _column in _INDEXES:
        op.drop_index(name, table_name=table)
