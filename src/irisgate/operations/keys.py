"""`irisgate keys create OWNER --name NAME`: an API key made on the database directly.

The way to the first key where nobody is known by the network (`--identity keys`): an
operator with access to the database makes an admin's key, and that admin makes the rest
through `/api/keys`. The secret is printed once, on stdout; nothing keeps it.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from irisgate.identity.keyring import make
from irisgate.settings import Settings
from irisgate.store.database import open_database


def create(settings: Settings, owner: str, name: str, expires: str | None, models: str) -> int:
    owner, name = owner.strip(), name.strip()
    if not owner or not name or not (owner + name).isprintable():
        print("irisgate keys: OWNER and --name must be printable text", file=sys.stderr)
        return 2
    expires_at = None
    if expires:
        try:
            expires_at = datetime.fromisoformat(expires.upper().replace("Z", "+00:00"))
        except ValueError:
            expires_at = None
        if expires_at is None or expires_at.tzinfo is None or expires_at <= datetime.now(UTC):
            print(
                "irisgate keys: --expires-at must be a future RFC 3339 time like "
                "2027-01-31T00:00:00Z",
                file=sys.stderr,
            )
            return 2
    globs = tuple(g.strip() for g in models.split(",") if g.strip())
    secret = asyncio.run(_create(settings, owner, name, expires_at, globs))
    print(secret)
    return 0


async def _create(
    settings: Settings, owner: str, name: str, expires_at: datetime | None, models: tuple[str, ...]
) -> str:
    db = await open_database(settings.resolved_database_url, migrate=True)
    try:
        _, secret = await make(
            db,
            owner=owner,
            name=name,
            created_by="irisgate keys create",
            expires_at=expires_at,
            models=models,
        )
    finally:
        await db.close()
    return secret
