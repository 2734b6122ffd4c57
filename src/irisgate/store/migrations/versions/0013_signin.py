"""Sign-in through an OpenID provider (identity mode oidc): sessions and sign-ins under way.

`signin_sessions` holds one row per signed-in browser, keyed by the SHA-256 of its session
cookie; `signin_attempts` one row per sign-in between /auth/login and /auth/callback, keyed
by the SHA-256 of its `state` and deleted when the callback takes it.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("''"))


def upgrade() -> None:
    op.create_table(
        "signin_sessions",
        sa.Column("id_hash", sa.Text(), primary_key=True),
        sa.Column("login_name", sa.Text(), nullable=False),
        _text("display_name"),
        _text("groups"),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_index("ix_signin_sessions_expires_at", "signin_sessions", ["expires_at"])
    op.create_table(
        "signin_attempts",
        sa.Column("state_hash", sa.Text(), primary_key=True),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("verifier", sa.Text(), nullable=False),
        _text("return_to"),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_index("ix_signin_attempts_expires_at", "signin_attempts", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_signin_attempts_expires_at", "signin_attempts")
    op.drop_table("signin_attempts")
    op.drop_index("ix_signin_sessions_expires_at", "signin_sessions")
    op.drop_table("signin_sessions")
