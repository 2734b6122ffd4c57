"""Connectors: request sizes on `requests`, and per-user OAuth tokens of connectors.

`requests.request_bytes` / `response_bytes` record the size of what went each way (connector
tool calls and HTTP connector requests fill them; bodies may later be purged, sizes stay).
`connector_tokens` holds one user's OAuth token set for one connector, encrypted (the
`data` column is a Fernet token; the key never reaches the database).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for name in ("request_bytes", "response_bytes"):
            batch.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default=sa.text("0"))
            )
    op.create_table(
        "connector_tokens",
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("connector_id", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("login_name", "connector_id", name="pk_connector_tokens"),
    )


def downgrade() -> None:
    op.drop_table("connector_tokens")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("response_bytes")
        batch.drop_column("request_bytes")
