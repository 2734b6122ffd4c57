"""The kind of each request (chat, embedding, image, audio, moderation, file, batch,
connector) and the unit of one priced by something other than tokens (`image`).

Rows written before are chat, except the connectors' (MCP tool calls and HTTP connector
requests), which become `connector`.

Revision ID: 0020
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision: str | None = "0018"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(
            sa.Column("kind", sa.Text(), nullable=False, server_default=sa.text("'chat'"))
        )
        batch.add_column(sa.Column("unit", sa.Text(), nullable=False, server_default=sa.text("''")))
        batch.add_column(
            sa.Column("units", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    requests = sa.table("requests", sa.column("kind", sa.Text), sa.column("api_format", sa.Text))
    op.execute(
        requests.update()
        .where(requests.c.api_format.in_(("mcp", "http_connector")))
        .values(kind="connector")
    )


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("units")
        batch.drop_column("unit")
        batch.drop_column("kind")
