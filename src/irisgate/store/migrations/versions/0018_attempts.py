"""The upstream attempts of a request: failover and several keys per provider.

`requests.attempts` is a JSON list, one entry per upstream attempt (provider, key index,
status, error, milliseconds to the answer's head), for requests that were retried on
another provider or key, or served by a provider with several keys. NULL otherwise: the
`provider` column says all there is.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision: str | None = "0017"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("attempts", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("attempts")
