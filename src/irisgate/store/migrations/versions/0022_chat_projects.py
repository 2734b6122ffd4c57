"""Chat: projects and attachments kept apart from the messages (issue 24, point 6).

`chat_projects` holds a login's projects: a name, instructions shared by every conversation
in it, and `tools`, the connector tools its conversations may use (NULL: every tool the
user is granted; else a JSON list). `chat_conversations.project_id` names the project a
conversation is in ('' for none). `chat_attachments` holds the images attached in chat,
once each, with the type sniffed from their bytes; a message refers to them by id.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision: str | None = "0021"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("''"))


def upgrade() -> None:
    op.create_table(
        "chat_projects",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("login_name", sa.Text(), nullable=False),
        _text("name"),
        _text("instructions"),
        sa.Column("tools", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_chat_projects_login_name", "chat_projects", ["login_name"])
    op.add_column("chat_conversations", _text("project_id"))
    op.create_table(
        "chat_attachments",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("login_name", sa.Text(), nullable=False),
        sa.Column("conversation_id", sa.Text(), nullable=False),
        _text("name"),
        sa.Column("media_type", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_index("ix_chat_attachments_login_name", "chat_attachments", ["login_name"])
    op.create_index("ix_chat_attachments_conversation_id", "chat_attachments", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_chat_attachments_conversation_id", table_name="chat_attachments")
    op.drop_index("ix_chat_attachments_login_name", table_name="chat_attachments")
    op.drop_table("chat_attachments")
    with op.batch_alter_table("chat_conversations") as batch:
        batch.drop_column("project_id")
    op.drop_index("ix_chat_projects_login_name", table_name="chat_projects")
    op.drop_table("chat_projects")
