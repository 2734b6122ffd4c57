"""Raw upstream answers (`database.save_raws`).

`captures.response_raw` holds the upstream answer's bytes exactly as received (SSE, JSON,
still compressed when the upstream compressed them) and `captures.response_raw_encoding`
their content-encoding. Both are NULL when raws are not kept or have been purged (retention
category `raws`), so existing rows need no backfill.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column("captures", sa.Column("response_raw", sa.LargeBinary(), nullable=True))
    op.add_column("captures", sa.Column("response_raw_encoding", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("captures") as batch:
        batch.drop_column("response_raw_encoding")
        batch.drop_column("response_raw")
