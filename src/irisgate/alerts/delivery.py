"""`Deliveries`: the worker that sends queued alert deliveries, with retries.

Each round claims the due deliveries (`table.claim`: never the same one as another
instance), sends them one channel at a time and records the outcome. A failed attempt is
retried after `first * 2**(attempts-1)` seconds, at most `max` (`alerts.retry`); after
`attempts` failures it is given up and stays visible to admins with its last error. A
delivery whose channel left the config is given up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import structlog

from irisgate.alerts import table
from irisgate.alerts.channels import DeliveryFailed, send
from irisgate.config.model import AlertSettings
from irisgate.store.availability import unavailable
from irisgate.store.database import Database

log = structlog.get_logger("irisgate.alerts")

#: how often the worker looks for due deliveries when nothing wakes it
POLL_SECONDS = 1.0


def backoff(attempts: int, first: float, most: float) -> float:
    """Seconds before the next attempt after `attempts` failed ones (1, 2, ...)."""
    return min(most, first * float(2 ** min(attempts - 1, 40)))


class Deliveries:
    def __init__(
        self,
        db: Database,
        settings: Callable[[], AlertSettings],
        http: aiohttp.ClientSession,
    ) -> None:
        self._db = db
        self._settings = settings
        self._http = http
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered_total = 0
        self.failed_attempts_total = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alert-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
            try:
                while await self.run_once():
                    pass
            except Exception as exc:
                if unavailable(exc):
                    self._db.availability.failed(exc)
                else:
                    log.exception("alert delivery round failed")

    async def run_once(self) -> int:
        """Send what is due now; how many deliveries were attempted."""
        due = await table.claim(self._db, datetime.now(UTC))
        for delivery in due:
            await self._attempt(delivery)
        return len(due)

    async def _attempt(self, delivery: table.Due) -> None:
        settings = self._settings()
        channel = settings.channels.get(delivery.channel)
        try:
            if channel is None:
                raise DeliveryFailed(f"channel {delivery.channel} is no longer in the config")
            await send(channel, delivery.alert, http=self._http, smtp=settings.smtp)
        except DeliveryFailed as exc:
            await self._failed(delivery, str(exc), settings, give_up=channel is None)
            return
        await table.delivered(self._db, delivery.id, datetime.now(UTC))
        self.delivered_total += 1
        log.info("alert delivered", alert=delivery.alert["id"], channel=delivery.channel)

    async def _failed(
        self, delivery: table.Due, error: str, settings: AlertSettings, *, give_up: bool
    ) -> None:
        self.failed_attempts_total += 1
        attempts = delivery.attempts + 1
        now = datetime.now(UTC)
        retry_at = None
        if not give_up and attempts < settings.max_attempts:
            wait = backoff(attempts, settings.retry_first_seconds, settings.retry_max_seconds)
            retry_at = now + timedelta(seconds=wait)
        await table.failed(self._db, delivery.id, error, retry_at=retry_at, now=now)
        log.warning(
            "alert delivery failed" if retry_at else "alert delivery given up",
            alert=delivery.alert["id"],
            channel=delivery.channel,
            attempts=attempts,
            error=error,
            retry_at=retry_at.isoformat() if retry_at else None,
        )
