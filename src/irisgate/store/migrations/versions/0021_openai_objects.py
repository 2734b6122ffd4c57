"""OpenAI files and batches belong to their creator: `openai_objects`.

One row per file or batch irisgate relayed the creation of (and per output or error file
of such a batch): who created it, the provider that holds it, its purpose, the models a
batch input file names, the object as last relayed, and when a batch's results were
charged.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision: str | None = "0020"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "openai_objects",
        sa.Column("object_id", sa.Text(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("key_id", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("purpose", sa.Text(), nullable=False, server_default=sa.text("''")),
        sa.Column("models", sa.Text(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("object", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_openai_objects_login_kind_created",
        "openai_objects",
        ["login_name", "kind", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_openai_objects_login_kind_created", table_name="openai_objects")
    op.drop_table("openai_objects")
