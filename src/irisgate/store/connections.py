"""PostgreSQL connections: what one process may open against what the server allows.

Each irisgate process opens at most `--db-pool-size` connections (`Database.pool_size`).
N processes (instances, or `--workers`) on one server need N times that, plus whatever else
connects, within the server's `max_connections` less the connections it reserves for
superusers. At start, `check` counts the irisgate processes connected now (each names its
connections `irisgate <pid>@<host>`) and warns when they and this one, each with this pool
size, could exceed the limit: past it, PostgreSQL refuses new connections and requests wait,
then fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy import text

from irisgate.store.database import APPLICATION_NAME, Database

log = structlog.get_logger("irisgate.store")


@dataclass(frozen=True, slots=True)
class Budget:
    max_connections: int  # the server's, less those reserved for superusers
    processes: int  # irisgate processes connected now, this one included
    pool_size: int  # this process's most

    @property
    def fit(self) -> int:
        """How many processes of this pool size fit, by themselves."""
        return self.max_connections // self.pool_size

    @property
    def over(self) -> bool:
        return self.processes * self.pool_size > self.max_connections


async def budget(db: Database) -> Budget | None:
    """The connection budget on PostgreSQL; None on SQLite."""
    if db.dialect != "postgresql":
        return None
    async with db.connect() as conn:
        limit = int((await conn.execute(text("SHOW max_connections"))).scalar_one())
        reserved = int(
            (await conn.execute(text("SHOW superuser_reserved_connections"))).scalar_one()
        )
        others = await conn.execute(
            text(
                "SELECT count(DISTINCT application_name) FROM pg_stat_activity "
                "WHERE application_name LIKE 'irisgate %' AND application_name <> :mine"
            ),
            {"mine": APPLICATION_NAME},
        )
        processes = int(others.scalar_one()) + 1
    return Budget(limit - reserved, processes, db.pool_size)


async def check(db: Database) -> None:
    """Log the budget at start; a warning when this process could push past it."""
    found = await budget(db)
    if found is None:
        return
    fields = {
        "max_connections": found.max_connections,
        "pool_size": found.pool_size,
        "irisgate_processes": found.processes,
        "processes_that_fit": found.fit,
    }
    if found.over:
        log.warning(
            f"PostgreSQL connections could run out: {found.processes} irisgate processes with "
            f"--db-pool-size {found.pool_size} may open {found.processes * found.pool_size} "
            f"connections, more than the {found.max_connections} the server allows; lower "
            "--db-pool-size or raise max_connections",
            **fields,
        )
    else:
        log.info("PostgreSQL connection budget", **fields)
