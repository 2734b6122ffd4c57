"""API keys: personal and service keys, stored as hashes; requests name the key they used.

`api_keys` holds one row per key ever made (revoked ones stay, with `revoked_at`, so the
records that name them keep a name). `api_key_generation` is one row (made by the first
change) whose number every change of `api_keys` raises in the same transaction: instances
poll it and reload their key cache when it moved. `requests` gets `key_id` and `key_name`
("" for requests without a key).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision: str | None = "0016"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_TS = sa.DateTime(timezone=True)


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text(), nullable=False, server_default=sa.text("''"))


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("secret_hash", sa.Text(), nullable=False),
        _text("prefix"),
        _text("name"),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("service", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        _text("created_by"),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        _text("revoked_by"),
        _text("models"),
        _text("quota"),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
    )
    op.create_index("ix_api_keys_owner", "api_keys", ["owner"])
    op.create_table(
        "api_key_generation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
    )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(_text("key_id"))
        batch.add_column(_text("key_name"))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("key_name")
        batch.drop_column("key_id")
    op.drop_table("api_key_generation")
    op.drop_index("ix_api_keys_owner", table_name="api_keys")
    op.drop_table("api_keys")
