"""Quota balances, per-instance leases and the audit log of manual balance changes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "quota_buckets",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("balance_nanodollars", sa.BigInteger(), nullable=False),
        sa.Column("capacity_nanodollars", sa.BigInteger(), nullable=False),
        sa.Column("refilled_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_table(
        "quota_leases",
        sa.Column(
            "bucket",
            sa.Text(),
            sa.ForeignKey("quota_buckets.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("instance", sa.Text(), nullable=False),
        sa.Column("held_nanodollars", sa.BigInteger(), nullable=False),
        sa.Column("renewed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("bucket", "instance", name="pk_quota_leases"),
    )
    op.create_table(
        "quota_changes",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("amount_nanodollars", sa.BigInteger(), nullable=False),
        sa.Column("balance_before_nanodollars", sa.BigInteger(), nullable=False),
        sa.Column("balance_after_nanodollars", sa.BigInteger(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_quota_changes_bucket", "quota_changes", ["bucket", "changed_at"])


def downgrade() -> None:
    op.drop_index("ix_quota_changes_bucket", table_name="quota_changes")
    op.drop_table("quota_changes")
    op.drop_table("quota_leases")
    op.drop_table("quota_buckets")
