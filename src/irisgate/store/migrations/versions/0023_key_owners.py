"""What keys need of their owners: attributes as last seen, and sessions that stand for a key.

`owner_attributes` keeps, per login, the groups and the aperture capabilities the person had
when last seen on a verified connection (a tailnet WhoIs, an OIDC sign-in), so a key acts
with its owner's groups and capabilities, never more. `signin_sessions.key_id` names the API
key a browser signed in with (identity mode keys); "" for a sign-in through a provider.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision: str | None = "0022"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("''"))


def upgrade() -> None:
    op.create_table(
        "owner_attributes",
        sa.Column("login_name", sa.Text(), primary_key=True),
        _text("groups"),
        _text("capmap"),
        _text("source"),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("signin_sessions") as batch:
        batch.add_column(_text("key_id"))
    op.create_index("ix_signin_sessions_key_id", "signin_sessions", ["key_id"])


def downgrade() -> None:
    op.drop_index("ix_signin_sessions_key_id", table_name="signin_sessions")
    with op.batch_alter_table("signin_sessions") as batch:
        batch.drop_column("key_id")
    op.drop_table("owner_attributes")
