"""Opening the database: URL forms, engine settings and schema migrations at start-up.

One `Database` per process wraps one SQLAlchemy `AsyncEngine` (aiosqlite for SQLite,
asyncpg for PostgreSQL). `open_database` brings the schema to the newest Alembic revision
before it returns, so code that receives a `Database` can rely on every table existing.

Migrations are safe when several instances start at once: on PostgreSQL they run inside one
transaction that first takes `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`, so a second
instance waits, then finds the schema at head and does nothing; on SQLite they run in a
`BEGIN IMMEDIATE` transaction, which holds the database's single write lock throughout.
A schema newer than this irisgate knows (a newer release migrated it) is never touched:
`SchemaTooNew` says so. `schema_status` tells current, behind, ahead or empty without
changing anything (`irisgate db check`).

SQLite specifics: the parent directory of the file is created; the file is switched to WAL
journaling once (readers never block the writer); every connection gets
`synchronous=NORMAL` (durable at checkpoints, never corrupt), a busy timeout and enforced
foreign keys. SQLAlchemy, not the sqlite3 module, emits BEGIN, so transactions (DDL
included) behave as documented; `Database.begin` starts write transactions with
`BEGIN IMMEDIATE` so they wait for the write lock up front instead of failing half-way.

Bulk writes on SQLite (`Database.write_in_thread`, the batch writer's): a transaction is run
whole in a thread of its own, on a synchronous engine (the sqlite3 module) on the same file,
rather than through aiosqlite, which hands every statement, cursor and commit back and forth
between its thread and the event loop. Under load each of those hand-overs waits for the
loop to come round, so a batch of a few milliseconds' work took hundreds of milliseconds and
the queue behind it grew. There are two such threads. The background one runs at idle CPU
priority (Linux `SCHED_IDLE`): SQLite does its work inside irisgate's process, and at
normal priority the scheduler lets a batch use up its time slice while requests that became
ready wait; at idle priority the event loop takes the CPU back at once. A thread cannot
raise its own priority again without privileges, hence a second, normal thread, for when
the writer falls behind (see telemetry/writer.py). Where `SCHED_IDLE` does not exist or is
refused, both threads run at normal priority.

PostgreSQL specifics: a pool of at most `pool_size` connections (`--db-pool-size`, default
15: up to 5 kept open, the rest opened for bursts and closed after), checked with a ping
before use and recycled after 30 minutes, a 60 s statement timeout, and
`application_name=irisgate <pid>@<host>` (one name per process, so the connections of each
process can be told apart). `store.connections` checks the sum against the server's
`max_connections` at start.

Both: error messages and logs never include bound parameters (they carry request bodies and
identities).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import (
    Column,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from irisgate.store.availability import Availability
from irisgate.store.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

_T = TypeVar("_T")

#: Key of the PostgreSQL advisory lock held while migrating ("irisgate" in ASCII).
MIGRATION_LOCK_KEY = 0x6972697367617465
#: How long a SQLite connection waits for a lock held by another connection.
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: Upper bound for one PostgreSQL statement, so a hung connection cannot stall the writer.
POSTGRES_COMMAND_TIMEOUT_S = 60.0

#: how this process's PostgreSQL connections introduce themselves (at most 63 bytes)
APPLICATION_NAME = f"irisgate {os.getpid()}@{socket.gethostname()}"[:63]
#: connections a PostgreSQL pool keeps open; the rest of `pool_size` only for bursts
POOL_KEPT = 5
#: default most connections one process opens to PostgreSQL (`--db-pool-size`)
POOL_SIZE = 15


MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The newest migration in MIGRATIONS_DIR (a test keeps the two equal). A database already
#: there, or a new empty one, is handled without importing Alembic at all (about 11 MiB of
#: resident memory a process would otherwise carry for its whole life).
SCHEMA_HEAD = "0021"

# Alembic's own bookkeeping table, exactly as Alembic creates it.
_VERSION_TABLE = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)

_SQLITE_DRIVER = "sqlite+aiosqlite"
_POSTGRES_DRIVER = "postgresql+asyncpg"
_SQLITE_SCHEMES = {"sqlite", _SQLITE_DRIVER}
_POSTGRES_SCHEMES = {"postgresql", "postgres", _POSTGRES_DRIVER}
# Execution option read by the SQLite "begin" hook: which BEGIN to emit.
_BEGIN_OPTION = "irisgate_sqlite_begin"


def normalize_url(url: str) -> str:
    """Turn a user-given database location into an async SQLAlchemy URL.

    Accepted: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, a bare file path
    (`./data/irisgate.db`, `~/irisgate.db`), `postgresql://…` and `postgres://…`; URLs that
    already name the async drivers pass through. The libpq parameter `sslmode=` becomes
    asyncpg's `ssl=`. Returns `sqlite+aiosqlite:///…` or `postgresql+asyncpg://…`.

    Raises `ValueError` for an empty URL, another database or driver, and in-memory SQLite
    (each pooled connection would see a different empty database, and records would vanish).
    """
    raw = url.strip()
    if not raw:
        raise ValueError("database URL is empty: give a file path or a postgresql:// URL")
    if "://" not in raw:
        if raw == ":memory:":
            raise ValueError(_MEMORY_ERROR)
        return f"{_SQLITE_DRIVER}:///{os.path.expanduser(raw)}"
    scheme = raw.split("://", 1)[0].lower()
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ValueError(f"malformed database URL: {exc}") from None
    if scheme in _SQLITE_SCHEMES:
        if parsed.database in (None, "", ":memory:") or "mode=memory" in raw:
            raise ValueError(_MEMORY_ERROR)
        return parsed.set(drivername=_SQLITE_DRIVER).render_as_string(hide_password=False)
    if scheme in _POSTGRES_SCHEMES:
        parsed = parsed.set(drivername=_POSTGRES_DRIVER)
        if "sslmode" in parsed.query:
            query = dict(parsed.query)
            query["ssl"] = query.pop("sslmode")
            parsed = parsed.set(query=query)
        return parsed.render_as_string(hide_password=False)
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: use a file path, sqlite:///PATH "
        "or postgresql://USER@HOST/DB"
    )


_MEMORY_ERROR = "in-memory SQLite is not supported (records would vanish): give a file path"


class Database:
    """An open database: the engine plus what callers need to use it correctly.

    - `dialect`: `"sqlite"` or `"postgresql"`.
    - `url`: the async URL with any password hidden (for logs).
    - `connect()`: a connection for reads (`async with db.connect() as conn`).
    - `begin()`: a connection inside a write transaction, committed when the block ends
      without an exception and rolled back otherwise (`async with db.begin() as conn`).
    - `write_in_thread(fn, background=)`: on SQLite (`writes_in_thread`), `fn(connection)`
      inside one write transaction in a thread of its own (see the module doc).
    - `availability`: whether the database was reachable when last used (store/availability).
    - `close()`: close every pooled connection; the `Database` is unusable afterwards.
    """

    __slots__ = ("_lanes", "_write_engine", "availability", "dialect", "engine", "pool_size", "url")

    def __init__(self, engine: AsyncEngine, pool_size: int = POOL_SIZE) -> None:
        self.engine = engine
        self.pool_size = pool_size
        self.dialect: str = engine.dialect.name
        self.url: str = engine.url.render_as_string(hide_password=True)
        self.availability = Availability(self.url)
        # normal and background write threads (SQLite only), made on first use
        self._lanes: dict[bool, _WriteLane] = {}
        self._write_engine = (
            engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            if self.dialect == "sqlite"
            else engine
        )

    def pool_use(self) -> tuple[int, int] | None:
        """(connections in use, most the pool opens) on PostgreSQL; None on SQLite."""
        pool = self.engine.sync_engine.pool
        if self.dialect == "sqlite" or not isinstance(pool, QueuePool):
            return None
        return pool.checkedout(), self.pool_size

    def connect(self) -> AsyncConnection:
        """A connection for reads; use as `async with db.connect() as conn`."""
        return self.engine.connect()

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction; use as `async with db.begin() as conn`."""
        return self._write_engine.begin()

    @property
    def writes_in_thread(self) -> bool:
        """Whether `write_in_thread` is available (SQLite)."""
        return self.dialect == "sqlite"

    def write_in_thread(
        self, fn: Callable[[Connection], _T], *, background: bool = False
    ) -> asyncio.Future[_T]:
        """Run `fn(connection)` inside one write transaction (BEGIN IMMEDIATE, committed when
        `fn` returns, rolled back when it raises) in a thread of its own; `background`: in
        the thread at idle CPU priority. SQLite only (see the module doc)."""
        if self.dialect != "sqlite":
            raise RuntimeError("write_in_thread is for SQLite")
        lane = self._lanes.get(background)
        if lane is None:
            lane = self._lanes[background] = _WriteLane(self.engine.url, idle=background)
        return lane.run(fn)

    async def close(self) -> None:
        """Close all pooled connections (and the write threads, once their work is done)."""
        await self.engine.dispose()
        lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            await asyncio.to_thread(lane.close)

    def __repr__(self) -> str:
        return f"Database({self.url!r})"


async def open_database(url: str, *, migrate: bool = True, pool_size: int = POOL_SIZE) -> Database:
    """Open the database at `url` (any form `normalize_url` accepts).

    With `migrate` (the default) the schema is brought to the newest revision first, safely
    against other instances doing the same. Raises `ValueError` for a bad URL and SQLAlchemy
    errors when the database cannot be reached or migrated (the engine is closed then).
    """
    async_url = make_url(normalize_url(url))
    if async_url.get_backend_name() == "sqlite":
        engine = await _sqlite_engine(async_url)
    else:
        engine = create_async_engine(
            async_url,
            hide_parameters=True,
            pool_size=min(POOL_KEPT, pool_size),
            max_overflow=max(pool_size - POOL_KEPT, 0),
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={
                "command_timeout": POSTGRES_COMMAND_TIMEOUT_S,
                "server_settings": {"application_name": APPLICATION_NAME},
            },
        )
    db = Database(engine, pool_size)
    if migrate:
        try:
            await upgrade_schema(db)
        except BaseException:
            await engine.dispose()
            raise
    return db


async def upgrade_schema(db: Database) -> None:
    """Bring the schema to head, holding the migration lock (see module doc)."""
    async with db._write_engine.connect() as conn:
        await conn.begin()  # BEGIN IMMEDIATE on SQLite: the database-wide write lock
        if db.dialect == "postgresql":
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await conn.run_sync(_bring_to_head)
        await conn.commit()


class SchemaMismatch(RuntimeError):
    """The database schema is not the one this irisgate serves; the message says what to do."""


class SchemaTooNew(SchemaMismatch):
    """The database was migrated by a newer irisgate: this one must not write to it."""

    def __init__(self, revision: str) -> None:
        super().__init__(
            f"the database schema is at revision {revision}, newer than this irisgate knows"
            f" (its newest is {SCHEMA_HEAD}): a newer irisgate upgraded it. Run that version"
            " (or newer), or restore a backup taken before the upgrade"
        )
        self.revision = revision


SchemaState = Literal["current", "behind", "ahead", "empty"]


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database's schema stands against this irisgate's migrations."""

    revision: str | None  # None: never migrated
    head: str
    state: SchemaState


def schema_state(revision: str | None) -> SchemaState:
    """`empty` (never migrated), `current`, `behind` (an older irisgate's; `db upgrade`
    brings it to head) or `ahead` (a revision this irisgate does not have: a newer one's)."""
    if revision is None:
        return "empty"
    if revision == SCHEMA_HEAD:
        return "current"
    # revisions are numbered in the order they run ("0001", "0002", ...)
    if revision.isdigit() and int(revision) < int(SCHEMA_HEAD):
        return "behind"
    return "ahead"


async def schema_status(db: Database) -> SchemaStatus:
    """The schema's state, read without changing anything."""
    revision = await current_revision(db)
    return SchemaStatus(revision, SCHEMA_HEAD, schema_state(revision))


async def require_current(db: Database) -> None:
    """Raise `SchemaMismatch` unless the schema is exactly this irisgate's (serving without
    migrating: the schema is upgraded as its own step)."""
    status = await schema_status(db)
    if status.state == "ahead":
        raise SchemaTooNew(str(status.revision))
    if status.state != "current":
        where = status.revision or "no revision (never migrated)"
        raise SchemaMismatch(
            f"the database schema is at {where} and this irisgate needs {SCHEMA_HEAD}: run"
            " `irisgate db upgrade` first (--migrate is false)"
        )


async def current_revision(db: Database) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    async with db.connect() as conn:
        return await conn.run_sync(_current_revision)


def head_revision() -> str | None:
    """The newest schema revision in the migration scripts (imports Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _bring_to_head(connection: Connection) -> None:
    """Nothing when at head; a new empty database gets the tables of `tables.metadata` and
    is stamped at head (the same schema the migrations build: a test compares the two on
    SQLite and PostgreSQL); anything else is upgraded by Alembic's migrations."""
    current = _current_revision(connection)
    if current == SCHEMA_HEAD:
        return
    if current is not None and schema_state(current) == "ahead":
        raise SchemaTooNew(current)
    if current is None and not inspect(connection).get_table_names():
        metadata.create_all(connection)
        _VERSION_TABLE.create(connection)
        connection.execute(_VERSION_TABLE.insert().values(version_num=SCHEMA_HEAD))
        return
    from alembic import command

    command.upgrade(_alembic_config(connection), "head")


def _alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table(_VERSION_TABLE.name):
        return None
    versions = connection.execute(_VERSION_TABLE.select()).scalars().all()
    if len(versions) > 1:  # a branched history, which irisgate's migrations never have
        raise RuntimeError(f"the database has several schema versions: {sorted(versions)}")
    return versions[0] if versions else None


async def _sqlite_engine(url: URL) -> AsyncEngine:
    if url.database:
        await asyncio.to_thread(_make_parent_dir, url.database)
    engine = create_async_engine(url, hide_parameters=True)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    try:
        await _enable_wal(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine


class _WriteLane:
    """One thread with one synchronous SQLite connection to the database file."""

    def __init__(self, async_url: URL, *, idle: bool) -> None:
        url = async_url.set(drivername="sqlite+pysqlite")
        # one connection, made and only ever used in the lane's one thread
        self._engine = create_engine(url, hide_parameters=True, pool_size=1, max_overflow=0)
        event.listen(self._engine, "connect", _sqlite_on_connect)
        event.listen(self._engine, "begin", _sqlite_on_begin)
        self._immediate = self._engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        self._executor = ThreadPoolExecutor(
            1,
            thread_name_prefix="irisgate-db-background" if idle else "irisgate-db-write",
            initializer=_idle_priority if idle else None,
        )

    def run(self, fn: Callable[[Connection], _T]) -> asyncio.Future[_T]:
        return asyncio.get_running_loop().run_in_executor(self._executor, self._transaction, fn)

    def _transaction(self, fn: Callable[[Connection], _T]) -> _T:
        with self._immediate.begin() as conn:
            return fn(conn)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._engine.dispose()


def _idle_priority() -> None:
    """Put the calling thread at idle CPU priority, where the platform has it."""
    if hasattr(os, "SCHED_IDLE"):
        # refused under some seccomp profiles: the thread then stays at normal priority
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _make_parent_dir(database: str) -> None:
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


async def _enable_wal(engine: AsyncEngine) -> None:
    """Switch the file to WAL (persistent, so done once per file, not per connection).

    Changing the journal mode needs the database to itself and SQLite reports "locked"
    without waiting for the busy timeout, so when another process opens the same new file
    at the same moment, retry for up to the busy timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            async with engine.connect() as conn:
                mode = await conn.run_sync(_set_wal)
        except (OperationalError, sqlite3.OperationalError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.02)
            continue
        if str(mode).lower() != "wal":
            raise RuntimeError(f"SQLite refused WAL journaling (journal_mode is {mode!r})")
        return


def _set_wal(connection: Connection) -> object:
    # On the DBAPI connection: through SQLAlchemy, the statement would run inside the BEGIN
    # that `_sqlite_on_begin` emits, and SQLite cannot change journal mode in a transaction.
    cursor = connection.connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        row = cursor.fetchone()
    finally:
        cursor.close()
    return row[0] if row else None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 module (it skips it before DDL and SAVEPOINT);
    # `_sqlite_on_begin` emits it instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_BEGIN_OPTION) == "IMMEDIATE"
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
