"""Rate limits across instances: each instance's use of each limit.

Every instance counts requests, tokens and requests in flight per limit in memory and writes
its own counts here in the background (`irisgate.quotas.ratesync`); the others read them, so
a limit holds across instances without a database round trip on the request path. The row
named "" is an instance's heartbeat: rows of an instance whose heartbeat is old are ignored.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision: str | None = "0013"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rate_limit_use",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("instance", sa.Text(), nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("current", sa.BigInteger(), nullable=False),
        sa.Column("previous", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", "instance", name="pk_rate_limit_use"),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_use")
