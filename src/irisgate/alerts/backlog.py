"""Export backlog: the S3 usage export falling behind (its oldest unexported record older
than `behind_after` its interval), read with one index lookup (`ix_requests_unexported`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from irisgate.alerts.signal import Signal
from irisgate.store.database import Database
from irisgate.store.tables import requests

#: the export counts as behind once its oldest unexported record is this many intervals
#: old, and at least an hour
BEHIND_INTERVALS = 3
BEHIND_AT_LEAST = timedelta(hours=1)


async def oldest_unexported(db: Database) -> datetime | None:
    """When the oldest record not yet exported was made; None when every one was."""
    query = (
        select(requests.c.started_at)
        .where(requests.c.exported_at.is_(None))
        .order_by(requests.c.id)
        .limit(1)
    )
    async with db.connect() as conn:
        started: datetime | None = (await conn.execute(query)).scalar()
        return started


def backlog_signal(oldest: datetime | None, every_seconds: int, now: datetime) -> Signal:
    """Whether the export is behind: raised (warning) or cleared."""
    limit = max(timedelta(seconds=BEHIND_INTERVALS * every_seconds), BEHIND_AT_LEAST)
    if oldest is None or now - oldest < limit:
        return Signal("export", "s3 backlog", active=False)
    hours = (now - oldest).total_seconds() / 3600
    return Signal(
        "export",
        "s3 backlog",
        message=(
            f"the S3 usage export is behind: the oldest record not exported is from "
            f"{oldest:%Y-%m-%d %H:%M} UTC ({hours:.1f} h ago; the export runs every "
            f"{every_seconds} s)"
        ),
    )
