"""`irisgate db upgrade` and `irisgate db check`: the database schema as its own step.

`db upgrade` brings the schema to this irisgate's newest revision, holding the migration
lock that `serve` takes too (a PostgreSQL advisory lock; SQLite's write lock), so several
instances and deploy jobs may run it at once: one migrates, the others wait and find it done.

`db check` changes nothing (a missing SQLite file is reported, not created). Exit codes:
0 current, 1 behind, empty or no SQLite file yet (run `db upgrade`), 2 the database cannot
be reached, 3 newer than this irisgate (a newer release upgraded it).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from irisgate.settings import Settings
from irisgate.store.database import (
    Database,
    SchemaMismatch,
    SchemaStatus,
    normalize_url,
    open_database,
    schema_status,
    upgrade_schema,
)

#: how long reaching the database may take before it counts as unreachable
CONNECT_TIMEOUT_S = 10.0
EXIT_CURRENT, EXIT_BEHIND, EXIT_UNREACHABLE, EXIT_AHEAD = 0, 1, 2, 3


class Unreachable(Exception):
    """The database could not be opened or read; the message says why (no password)."""


def upgrade(settings: Settings) -> int:
    return asyncio.run(_upgrade(settings))


def check(settings: Settings) -> int:
    return asyncio.run(_check(settings))


async def _upgrade(settings: Settings) -> int:
    try:
        db = await connect(settings, create=True)
    except Unreachable as exc:
        print(f"irisgate: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        before = await schema_status(db)
        await upgrade_schema(db)
        after = await schema_status(db)
    except SchemaMismatch as exc:
        print(f"irisgate: {exc}", file=sys.stderr)
        return EXIT_AHEAD
    except (SQLAlchemyError, OSError) as exc:
        print(f"irisgate: upgrading {db.url} failed: {reason(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        await db.close()
    if before.revision == after.revision:
        print(f"{db.url}: schema {after.revision}, already current")
    else:
        print(f"{db.url}: schema upgraded from {before.revision or 'empty'} to {after.revision}")
    return EXIT_CURRENT


async def _check(settings: Settings) -> int:
    try:
        db = await connect(settings)
    except NoDatabaseYet as exc:
        print(f"irisgate: {exc}", file=sys.stderr)
        return EXIT_BEHIND
    except Unreachable as exc:
        print(f"irisgate: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        status = await schema_status(db)
    except (SQLAlchemyError, OSError) as exc:
        print(f"irisgate: reading {db.url} failed: {reason(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        await db.close()
    print(f"{db.url}: {describe(status)}")
    return {"current": EXIT_CURRENT, "ahead": EXIT_AHEAD}.get(status.state, EXIT_BEHIND)


class NoDatabaseYet(Unreachable):
    """A SQLite file that does not exist (yet): checking never creates one."""


async def connect(settings: Settings, *, create: bool = False) -> Database:
    """The database of `settings`, opened without migrating; `Unreachable` when it cannot be.
    A missing SQLite file is `NoDatabaseYet` unless `create` (upgrading makes it)."""
    url = settings.resolved_database_url
    if not create:
        _require_sqlite_file(url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            db = await open_database(url, migrate=False)
            try:
                await schema_status(db)  # a first round trip: opening alone connects lazily
            except BaseException:
                await db.close()
                raise
    except ValueError as exc:
        raise Unreachable(f"--database: {exc}") from None
    except TimeoutError:
        raise Unreachable(f"the database did not answer within {CONNECT_TIMEOUT_S:g} s") from None
    except (SQLAlchemyError, OSError) as exc:
        raise Unreachable(f"cannot reach the database: {reason(exc)}") from None
    return db


def _require_sqlite_file(url: str) -> None:
    try:
        parsed = make_url(normalize_url(url))
    except ValueError:
        return  # connect() reports it
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path and not Path(path).expanduser().exists():
        raise NoDatabaseYet(
            f"no SQLite database at {path} yet: `irisgate db upgrade` or `serve` creates it"
            " (or give --database / --data-dir where it is)"
        )


def describe(status: SchemaStatus) -> str:
    """One line saying where the schema stands and what to do about it."""
    if status.state == "current":
        return f"schema {status.revision}, current"
    if status.state == "empty":
        return f"no schema yet (empty database): run `irisgate db upgrade` (to {status.head})"
    if status.state == "behind":
        return (
            f"schema {status.revision}, behind this irisgate's {status.head}:"
            " run `irisgate db upgrade`"
        )
    return (
        f"schema {status.revision}, newer than this irisgate knows ({status.head}):"
        " run the newer irisgate that upgraded it"
    )


def reason(exc: BaseException) -> str:
    """A database error in one short line: the driver's own error rather than SQLAlchemy's
    wrapper (whose text adds the statement and a link)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return text[:300] or type(cause).__name__
