"""The upstream attempts of a request: failover and several keys per provider.

`requests.attempts` is a JSON list, one entry per upstream attempt (provider, key index,
status, error, milliseconds to the answer's head), for requests that were retried on
another provider or key, or served by a provider with several keys. NULL otherwise: the
`provider` column says all there is. It comes before 0017 (the dashboard facets), whose
backfill leaves server-side cursors on `requests` open until the transaction ends, which on
PostgreSQL would refuse an `ALTER TABLE requests` after it.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision: str | None = "0015"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.add_column("requests", sa.Column("attempts", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("attempts")
