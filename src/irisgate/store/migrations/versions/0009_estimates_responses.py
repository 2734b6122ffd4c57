"""Estimated usage marks, and which provider created each OpenAI Responses response.

`requests.usage_estimated` is true when a stream ended without the upstream's own usage (the
client went away, the upstream broke off) and irisgate counted the tokens itself. Existing
rows were all measured, so the column defaults to false.

`responses` maps an OpenAI Responses API response id to the provider, model and login that
created it, so that `GET/DELETE /v1/responses/{id}` (and its `input_items` and `cancel`),
which name no model, reach the same provider and only for the same caller.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column(
        "requests",
        sa.Column("usage_estimated", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_table(
        "responses",
        sa.Column("response_id", sa.Text(), primary_key=True),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("responses")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("usage_estimated")
