"""How far each instance's quota journal has been applied, per bucket.

An instance journals its quota spending to a local file before reporting it (see
`irisgate.quotas.journal`). Each report stores the sequence number of the last journal entry
it covers in `quota_journal`, in the same transaction, so replaying a journal after a crash
debits only what was never reported.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "quota_journal",
        sa.Column("journal", sa.Text(), nullable=False),
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("journal", "bucket", name="pk_quota_journal"),
    )


def downgrade() -> None:
    op.drop_table("quota_journal")
