"""Chat conversations and their messages, owned by one login (the chat app at /chat/).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("''"))


def upgrade() -> None:
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("login_name", sa.Text(), nullable=False),
        _text("title"),
        _text("model"),
        _text("instructions"),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index(
        "ix_chat_conversations_login_name_updated_at",
        "chat_conversations",
        ["login_name", "updated_at"],
    )
    op.create_table(
        "chat_messages",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id",
            sa.Text(),
            sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.Text(), nullable=False),
        _text("content"),
        _text("model"),
        _text("outcome"),
        _text("request_id"),
        sa.Column("created_at", _TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_chat_messages_conversation_id", "chat_messages", ["conversation_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_chat_messages_conversation_id", table_name="chat_messages")
    op.drop_table("chat_messages")
    op.drop_index("ix_chat_conversations_login_name_updated_at", table_name="chat_conversations")
    op.drop_table("chat_conversations")
