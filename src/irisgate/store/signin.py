"""Rows of browser sign-ins (identity modes oidc and keys): signed-in browsers and
sign-ins through a provider under way.

Both tables are keyed by a SHA-256 hex digest of a random secret the browser holds (the
session cookie, the `state` of a sign-in); the secrets themselves are never stored. Rows
past their `expires_at` count as absent and are deleted as new ones are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import delete, func, insert, select

from irisgate.store.database import Database
from irisgate.store.tables import signin_attempts, signin_sessions

#: the most sign-ins under way at once (each is kept ten minutes at most)
MAX_ATTEMPTS = 10_000


@dataclass(frozen=True, slots=True)
class SessionRow:
    login_name: str
    display_name: str
    groups: tuple[str, ...]
    expires_at: datetime
    #: the API key the browser signed in with (identity mode keys); "" for none
    key_id: str = ""


@dataclass(frozen=True, slots=True)
class AttemptRow:
    nonce: str
    verifier: str
    return_to: str


async def add_session(db: Database, id_hash: str, row: SessionRow, now: datetime) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(signin_sessions).where(signin_sessions.c.expires_at <= now))
        await conn.execute(
            insert(signin_sessions).values(
                id_hash=id_hash,
                login_name=row.login_name,
                display_name=row.display_name,
                groups=orjson.dumps(list(row.groups)).decode(),
                created_at=now,
                expires_at=row.expires_at,
                key_id=row.key_id,
            )
        )


async def find_session(db: Database, id_hash: str, now: datetime) -> SessionRow | None:
    """The unexpired session whose cookie hashes to `id_hash`."""
    t = signin_sessions.c
    query = select(t.login_name, t.display_name, t.groups, t.expires_at, t.key_id).where(
        t.id_hash == id_hash, t.expires_at > now
    )
    async with db.connect() as conn:
        found = (await conn.execute(query)).first()
    if found is None:
        return None
    groups = orjson.loads(found.groups) if found.groups else []
    return SessionRow(
        found.login_name, found.display_name, tuple(groups), found.expires_at, found.key_id
    )


async def delete_session(db: Database, id_hash: str) -> None:
    async with db.begin() as conn:
        await conn.execute(delete(signin_sessions).where(signin_sessions.c.id_hash == id_hash))


async def delete_key_sessions(db: Database, key_id: str) -> None:
    """End every sign-in made with an API key (it was revoked)."""
    async with db.begin() as conn:
        await conn.execute(delete(signin_sessions).where(signin_sessions.c.key_id == key_id))


async def add_attempt(
    db: Database, state_hash: str, row: AttemptRow, expires_at: datetime, now: datetime
) -> bool:
    """Keep a sign-in under way; False (and nothing kept) when MAX_ATTEMPTS are already:
    anyone may start a sign-in, so their number is what bounds the table."""
    async with db.begin() as conn:
        await conn.execute(delete(signin_attempts).where(signin_attempts.c.expires_at <= now))
        pending = await conn.scalar(select(func.count()).select_from(signin_attempts))
        if (pending or 0) >= MAX_ATTEMPTS:
            return False
        await conn.execute(
            insert(signin_attempts).values(
                state_hash=state_hash,
                nonce=row.nonce,
                verifier=row.verifier,
                return_to=row.return_to,
                expires_at=expires_at,
            )
        )
    return True


async def take_attempt(db: Database, state_hash: str, now: datetime) -> AttemptRow | None:
    """The unexpired sign-in of this `state`, deleted in the same statement: of two callbacks
    with the same state (a replay), at most one gets it."""
    t = signin_attempts.c
    query = (
        delete(signin_attempts)
        .where(t.state_hash == state_hash)
        .returning(t.nonce, t.verifier, t.return_to, t.expires_at)
    )
    async with db.begin() as conn:
        found = (await conn.execute(query)).first()
    if found is None or found.expires_at <= now:
        return None
    return AttemptRow(found.nonce, found.verifier, found.return_to)
