"""The S3 exporter: request records to any S3-compatible bucket, each exactly once.

Every `every` seconds (and at start) the worker exports what is waiting, in batches of at
most `limit` records; a full batch is followed by the next one straight away so a backlog
drains. Each batch is claimed in the database before upload and completed after it (see
`irisgate.exporters.cursor`), and its object key is fixed at claim time:

    <prefix>/ts-aperture-export-<unix>-<first id>-<last id>.<format extension>

(`<unix>` is the claim time; the id range makes the name unique and lets a batch that was
interrupted after upload be uploaded again over the same object.)

boto3 is synchronous: clients are built and objects put in a worker thread. A failure (S3
unreachable or refusing, database unavailable) is logged and retried after a backoff that
doubles from 1 s up to `every` (at most 60 s); requests are served meanwhile, and records
wait in the database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from irisgate.config.model import S3Exporter
from irisgate.exporters import cursor
from irisgate.exporters.records import FORMATS, export_record
from irisgate.store.database import Database
from irisgate.telemetry.metrics import Metrics

log = structlog.get_logger("irisgate.export")
EXPORTER = "s3"
#: first retry delay after a failure (seconds); doubles up to min(every, _RETRY_MAX_S)
_RETRY_INITIAL_S = 1.0
_RETRY_MAX_S = 60.0
#: how often an idle worker looks for a config change (seconds)
_CONFIG_POLL_S = 1.0


def object_key(config: S3Exporter, first_id: int, last_id: int, claimed: datetime) -> str:
    extension = FORMATS[config.format][0]
    name = f"ts-aperture-export-{int(claimed.timestamp())}-{first_id}-{last_id}.{extension}"
    return f"{config.prefix}/{name}" if config.prefix else name


class S3Export:
    """The background export worker of one process (`start` / `stop` from the runtime)."""

    def __init__(
        self,
        db: Database,
        config: Callable[[], S3Exporter | None],
        metrics: Metrics,
        *,
        exit_after_upload: bool = False,
        observe: Callable[[str | None], None] | None = None,
    ) -> None:
        """`observe`: told each batch's outcome, the error's text or None (export alerts)."""
        self._observe = observe
        self._db = db
        self._config = config
        self._metrics = metrics
        # test-only: die like `kill -9` right after an upload, before the cursor moves
        self._exit_after_upload = exit_after_upload
        self._client: Any = None
        self._client_for: S3Exporter | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="s3-export")

    async def stop(self) -> None:
        """Stop between batches or abandon the one in flight: an abandoned batch stays
        claimed and is uploaded again, under the same key, by the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        delay = _RETRY_INITIAL_S
        while True:
            config = self._config()
            if config is None:
                await asyncio.sleep(_CONFIG_POLL_S)
                continue
            try:
                more = await self.export_batch(config)
            except Exception as exc:  # any failure: logged, retried; records wait in the db
                self._metrics.export_failures.inc()
                if self._observe is not None:
                    self._observe(_describe(exc))
                log.error(
                    "usage export failed; retrying",
                    bucket=config.bucket_name,
                    retry_in_s=delay,
                    error=_describe(exc),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _retry_cap(config))
                continue
            delay = _RETRY_INITIAL_S
            if self._observe is not None:
                self._observe(None)
            if not more:
                await self._wait(config)

    async def _wait(self, config: S3Exporter) -> None:
        """Sleep `every` seconds, cut short when the exporter config changes."""
        deadline = time.monotonic() + config.every_seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, _CONFIG_POLL_S))
            if self._config() != config:
                return

    async def export_batch(self, config: S3Exporter) -> bool:
        """Export one batch; True when it was full (more may be waiting)."""
        batch = await cursor.claim(
            self._db,
            EXPORTER,
            config.limit,
            lambda first, last, now: object_key(config, first, last, now),
        )
        if batch is None:
            return False
        # a batch claimed before a config change keeps the format its key names
        _, content_type, encode = FORMATS[_format_of(batch.key, config.format)]
        records = [export_record(row) for row in batch.rows]
        body = await asyncio.to_thread(encode, records)
        await asyncio.to_thread(self._put, config, batch.key, body, content_type)
        if self._exit_after_upload:
            log.warning("test setting: exiting after upload", key=batch.key)
            os.kill(os.getpid(), signal.SIGKILL)
        if await cursor.complete(self._db, EXPORTER, batch):
            self._metrics.export_records.inc(len(records))
            self._metrics.export_last_success.set(time.time())
            log.info("usage exported", key=batch.key, records=len(records))
        return len(batch.ids) >= config.limit

    def _put(self, config: S3Exporter, key: str, body: bytes, content_type: str) -> None:
        """In a worker thread: upload one object."""
        client = self._s3(config)
        client.put_object(Bucket=config.bucket_name, Key=key, Body=body, ContentType=content_type)

    def _s3(self, config: S3Exporter) -> Any:
        """The boto3 client for `config` (rebuilt when the exporter config changes)."""
        if self._client is None or self._client_for != config:
            # imported here: boto3 costs ~25 MiB, paid only when export is configured
            import boto3
            from botocore.config import Config as BotoConfig

            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                region_name=config.region,
                endpoint_url=config.endpoint or None,
                # None lets boto3 find credentials itself (environment, instance role)
                aws_access_key_id=config.access_key_id.value or None,
                aws_secret_access_key=config.access_secret.value or None,
                config=BotoConfig(
                    connect_timeout=10,
                    read_timeout=60,
                    retries={"max_attempts": 1},  # the worker retries, with its own backoff
                    s3={"addressing_style": "path" if config.endpoint else "auto"},
                ),
            )
            self._client_for = config
        return self._client


def _format_of(key: str, default: str) -> str:
    for name, (extension, _, _) in FORMATS.items():
        if key.endswith("." + extension):
            return name
    return default


def _retry_cap(config: S3Exporter) -> float:
    return max(_RETRY_INITIAL_S, min(float(config.every_seconds), _RETRY_MAX_S))


def _describe(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:300]
