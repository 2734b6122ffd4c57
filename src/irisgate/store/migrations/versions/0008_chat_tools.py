"""Chat: connector tools, reasoning effort and attachments (issue 7, part 2).

`chat_conversations.tools` holds the connector tools switched on in that conversation and
`reasoning_effort` the composer's effort; `chat_messages.attachments` the images attached to
a user message, `tool_calls` the tool rounds of an assistant turn (each call's input and
output) and `reasoning` the reasoning text the model streamed. The JSON columns hold JSON
text; the empty string (every existing row) means none, so no backfill is needed.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_CONVERSATION_COLUMNS = ("tools", "reasoning_effort")
_MESSAGE_COLUMNS = ("attachments", "tool_calls", "reasoning")


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("''"))


def upgrade() -> None:
    for name in _CONVERSATION_COLUMNS:
        op.add_column("chat_conversations", _text(name))
    for name in _MESSAGE_COLUMNS:
        op.add_column("chat_messages", _text(name))


def downgrade() -> None:
    with op.batch_alter_table("chat_messages") as batch:
        for name in reversed(_MESSAGE_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("chat_conversations") as batch:
        for name in reversed(_CONVERSATION_COLUMNS):
            batch.drop_column(name)
