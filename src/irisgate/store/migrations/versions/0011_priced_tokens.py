"""`priced_tokens` in the dashboard rollups: the tokens of the requests that have a price.

Averages per million tokens divide the cost by these, not by every token: unpriced requests
cost nothing, so counting their tokens made priced models look cheaper than they are.

Rows written before this revision are filled in: `usage_daily` and `usage_agent_daily` rows
whose requests were all unpriced get 0, the others their `total_tokens` (a day of one model
is rarely part priced, part not); `sessions` from the stored requests, or their
`total_tokens` when those were purged.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TABLES = ("usage_daily", "usage_agent_daily", "sessions")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(
            table,
            sa.Column("priced_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        )
    for table in ("usage_daily", "usage_agent_daily"):
        op.execute(
            f"UPDATE {table} SET priced_tokens = total_tokens"  # noqa: S608 (fixed names)
            " WHERE unpriced_requests < requests"
        )
    op.execute(
        "UPDATE sessions SET priced_tokens = COALESCE((SELECT SUM(r.total_tokens)"
        " FROM requests r WHERE r.login_name = sessions.login_name"
        " AND r.session_id = sessions.session_id AND r.cost_nanodollars IS NOT NULL),"
        " 0)"
    )
    op.execute(
        "UPDATE sessions SET priced_tokens = total_tokens"
        " WHERE priced_tokens = 0 AND cost_nanodollars > 0"
    )


def downgrade() -> None:
    for table in _TABLES:
        op.drop_column(table, "priced_tokens")
