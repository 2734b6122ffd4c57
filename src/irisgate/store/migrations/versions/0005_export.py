"""Usage export: the export cursor, and which requests have been exported.

`requests.exported_at` marks a row as exported (retention's `require_export` purges only
those); the partial index `ix_requests_unexported` keeps finding what is left to export cheap
however large `requests` grows. `export_state` holds one row per exporter: the id cursor and
the batch being uploaded, so a batch interrupted between upload and cursor update is redone
with the same object key.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_BIG = sa.BigInteger()
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("requests", sa.Column("exported_at", _TS, nullable=True))
    op.create_index(
        "ix_requests_unexported",
        "requests",
        ["id"],
        sqlite_where=sa.text("exported_at IS NULL"),
        postgresql_where=sa.text("exported_at IS NULL"),
    )
    op.create_table(
        "export_state",
        sa.Column("exporter", sa.Text(), primary_key=True),
        sa.Column("last_id", _BIG, nullable=False, server_default=sa.text("0")),
        sa.Column("batch_key", sa.Text(), nullable=True),
        sa.Column("batch_ids", sa.Text(), nullable=True),
        sa.Column("exported_total", _BIG, nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", _TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("export_state")
    op.drop_index("ix_requests_unexported", table_name="requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("exported_at")
