"""Rollup rows per shard: instances sharing PostgreSQL stop queueing on the same rows.

`usage_daily`, `usage_agent_daily` and `sessions` get a `shard` column at the end of their
primary key. Each batch-writer transaction adds to a shard no other transaction holds at
the moment (see `irisgate.telemetry.shards`), and readers sum a key's shards. Existing rows
become shard 0, so every sum reads the same as before.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_KEYS = {
    "usage_daily": ("day", "login_name", "model", "provider"),
    "usage_agent_daily": ("day", "login_name", "agent"),
    "sessions": ("login_name", "session_id"),
}


def upgrade() -> None:
    for table, key in _KEYS.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("shard", sa.SmallInteger(), nullable=False, server_default=sa.text("0"))
            )
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [*key, "shard"])


def downgrade() -> None:
    # S608: the names are this module's constants and the tables' own column names
    for table, key in _KEYS.items():
        columns = ", ".join(key)
        sums = [
            c["name"]
            for c in sa.inspect(op.get_bind()).get_columns(table)
            if c["name"] not in (*key, "shard", "agent", "first_at", "last_at")
        ]
        # fold the shards into shard 0 before the column goes
        folded = ", ".join(f"SUM({name}) AS {name}" for name in sums)
        extra = (
            ", MIN(agent) AS agent, MIN(first_at) AS first_at, MAX(last_at) AS last_at"
            if table == "sessions"
            else ""
        )
        names = ", ".join(sums) + (", agent, first_at, last_at" if table == "sessions" else "")
        op.execute(
            f"CREATE TEMPORARY TABLE folded_{table} AS "  # noqa: S608
            f"SELECT {columns}, {folded}{extra} FROM {table} GROUP BY {columns}"
        )
        op.execute(f"DELETE FROM {table}")  # noqa: S608
        op.execute(f"INSERT INTO {table} ({columns}, {names}) SELECT * FROM folded_{table}")  # noqa: S608
        op.execute(f"DROP TABLE folded_{table}")
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.drop_column("shard")
            batch.create_primary_key(f"pk_{table}", list(key))
