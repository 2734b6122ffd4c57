"""Alerts and their deliveries (irisgate.alerts).

`alerts`: one row per alert raised, unique by (kind, subject, threshold, episode) so that
instances sharing the database raise each crossing once; `alert_reads`: who read which;
`alert_deliveries`: one row per alert and channel with attempts, back-off and outcome.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision: str | None = "0018"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("''"))


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        _text("threshold"),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _text("login_name"),
        sa.Column("raised_at", _TS, nullable=False),
        sa.Column("cleared_at", _TS, nullable=True),
        sa.UniqueConstraint("kind", "subject", "threshold", "episode", name="uq_alerts_episode"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_alerts_login_name", "alerts", ["login_name", "id"])
    op.create_table(
        "alert_reads",
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("read_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "login_name", name="pk_alert_reads"),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("claimed_until", _TS, nullable=True),
        _text("last_error"),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.Column("failed_at", _TS, nullable=True),
        sa.UniqueConstraint("alert_id", "channel", name="uq_alert_deliveries_channel"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_due", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_table("alert_reads")
    op.drop_index("ix_alerts_login_name", table_name="alerts")
    op.drop_table("alerts")
