"""Which shard of the rollup rows a batch-writer transaction adds to.

The rollups (`usage_daily`, `usage_agent_daily`, `sessions`) are upserted by every instance's
batch writer. Were they one row per key, two instances writing the same key (the same user
and model today, the same session) would queue on its row lock until the first commits:
with eight instances a backend waited for a lock in most samples. So each key has up to
`SHARDS` partial rows, told apart by the `shard` column, and readers sum them.

On PostgreSQL a transaction takes a shard with `pg_try_advisory_xact_lock` (never waiting;
released at commit or rollback), trying the shard it had last time first and then the next
ones: concurrent transactions, of this process or any other, hold different shards and so
never touch the same rollup row. A writer keeps its shard while nobody else takes it, so a
key gets about as many rows as writers wrote it at the same time. When all `SHARDS` are
taken (more than `SHARDS` writers at once) the transaction uses its last shard anyway: its
upserts then wait for that row's lock, as they always did, and stay correct.

SQLite has a single writer at a time: it always writes shard 0.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

#: partial rows a rollup key can have at most (the 32 in `_TAKE`)
SHARDS = 32
#: the first key of the advisory locks (`pg_try_advisory_xact_lock(int, int)`): "iris",
#: 0x69726973, in `_TAKE`
LOCK_CLASS = 1769105779
#: generate_series feeds the filter a row at a time and LIMIT stops it at the first lock
#: taken: the transaction locks no other shard
_TAKE = text(
    "SELECT (s + :start) % 32 FROM generate_series(0, 31) AS s "
    "WHERE pg_try_advisory_xact_lock(1769105779, (s + :start) % 32) LIMIT 1"
)


class ShardPicker:
    """The shard of this writer's next transaction (one picker per batch writer)."""

    def __init__(self) -> None:
        self.last = 0

    async def take(self, conn: AsyncConnection) -> int:
        """Lock a free shard for the rest of `conn`'s transaction (PostgreSQL) and return it;
        the last one when none is free."""
        found = (await conn.execute(_TAKE, {"start": self.last})).scalar()
        if found is not None:
            self.last = int(found)
        return self.last
