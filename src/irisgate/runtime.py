"""Everything one irisgate process holds while it runs, created in start() and closed in stop().

The request path reads `runtime.snapshot` (the current config version, swapped atomically by
the config service) and hands finished records to `runtime.record`, which never blocks.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Coroutine
from typing import Any

import aiohttp
import genai_prices.data_snapshot
import structlog

from irisgate.cloudauth.provider import CloudAuth
from irisgate.configservice import ConfigService
from irisgate.drain import Drain
from irisgate.exporters.s3 import S3Export
from irisgate.hooks.runner import HookRunner
from irisgate.identity.resolver import IdentityResolver, make_resolver
from irisgate.quotas.gate import QuotaGate
from irisgate.settings import Settings
from irisgate.snapshot import Snapshot
from irisgate.store import connections
from irisgate.store.database import Database, SchemaMismatch, open_database, require_current
from irisgate.telemetry.metrics import Metrics
from irisgate.telemetry.record import RequestRecord
from irisgate.telemetry.responses import ResponseIndex
from irisgate.telemetry.retention import RetentionPurge, strip_for_zero_retention
from irisgate.telemetry.spool import Spool
from irisgate.telemetry.tracing import Tracing
from irisgate.telemetry.writer import BatchWriter
from irisgate.usage.tokenizer import TokenizerJanitor
from irisgate.wire.http1 import Http1Client

log = structlog.get_logger("irisgate")
#: how long a finished request's record may wait to share a transaction with others
WRITE_LINGER_SECONDS = 0.05


def upstream_session(
    settings: Settings, resolver: aiohttp.abc.AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """The aiohttp client for cloud token endpoints and connector upstreams (LLM calls and
    hooks go through `Http1Client`): no pool limit, bodies passed through as sent (no
    decompression, no automatic headers), the configured connect and read timeouts."""
    connector = aiohttp.TCPConnector(
        limit=0, limit_per_host=0, ttl_dns_cache=60, resolver=resolver
    )
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=settings.upstream_connect_timeout,
        sock_read=settings.upstream_read_timeout,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        trust_env=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
    )


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.resolver: IdentityResolver = make_resolver(settings)
        self._db: Database | None = None
        self._http: aiohttp.ClientSession | None = None
        self._upstream: Http1Client | None = None
        self._writer: BatchWriter | None = None
        self._config: ConfigService | None = None
        self._deferred: set[asyncio.Task[None]] = set()
        self._responses: ResponseIndex | None = None
        self._quotas: QuotaGate | None = None
        self.hooks = HookRunner(lambda: self.upstream, settings.max_hook_answer)
        self._cloud: CloudAuth | None = None
        self.drain = Drain()  # requests in flight; shutdown refuses new ones, then cuts
        self.metrics = Metrics()  # per app, so several apps in one process count apart
        self.tracing: Tracing | None = Tracing() if settings.otel else None
        self._workers: list[S3Export | RetentionPurge | TokenizerJanitor] = []

    @property
    def db(self) -> Database:
        assert self._db is not None, "runtime not started"
        return self._db

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "runtime not started"
        return self._http

    @property
    def upstream(self) -> Http1Client:
        """The LLM relay's HTTP/1.1 client."""
        assert self._upstream is not None, "runtime not started"
        return self._upstream

    @property
    def writer(self) -> BatchWriter:
        assert self._writer is not None, "runtime not started"
        return self._writer

    @property
    def config(self) -> ConfigService:
        assert self._config is not None, "runtime not started"
        return self._config

    @property
    def quotas(self) -> QuotaGate:
        assert self._quotas is not None, "runtime not started"
        return self._quotas

    @property
    def cloud(self) -> CloudAuth:
        assert self._cloud is not None, "runtime not started"
        return self._cloud

    @property
    def responses(self) -> ResponseIndex:
        assert self._responses is not None, "runtime not started"
        return self._responses

    @property
    def snapshot(self) -> Snapshot:
        return self.config.snapshot

    async def start(self) -> None:
        settings = self.settings
        try:
            self._db = await open_database(
                settings.resolved_database_url,
                migrate=settings.migrate,
                pool_size=settings.db_pool_size,
            )
            if not settings.migrate:
                await require_current(self._db)
        except SchemaMismatch as exc:
            log.error("irisgate cannot serve this database", reason=str(exc))
            raise
        await connections.check(self._db)
        self._config = ConfigService(self._db, settings)
        await self._config.start()
        self._http = upstream_session(settings)
        self._upstream = Http1Client(
            connect_timeout=settings.upstream_connect_timeout,
            read_timeout=settings.upstream_read_timeout,
        )
        self._cloud = CloudAuth(self._http)
        spool = Spool(
            settings.data_dir / "spool",
            fsync=settings.spool_fsync,
            max_bytes=settings.spool_max_mb << 20,
        )
        await asyncio.to_thread(spool.open)  # adopts the files of a process that died
        self._writer = BatchWriter(self._db, spool, linger_s=WRITE_LINGER_SECONDS)
        self._responses = ResponseIndex(self._db)
        self._writer.start()
        self._quotas = QuotaGate(self._db, settings.data_dir, settings.quota_max_reservation)
        self._quotas.metrics = self.hooks.metrics = self.metrics
        self._quotas.start()
        self.hooks.start()
        self._start_workers(self._writer)
        # genai-prices loads its price table on first use (~0.4 s): not on a user's request
        await asyncio.to_thread(genai_prices.data_snapshot.get_snapshot)
        # Everything loaded so far (price table, modules, config) lives as long as the process:
        # keep it out of the collector's full scans, which would otherwise pause requests.
        gc.collect()
        gc.freeze()
        log.info(
            "irisgate started",
            pid=os.getpid(),
            identity=settings.identity,
            database=self._db.dialect,
            config_version=self.snapshot.version,
        )

    def _start_workers(self, writer: BatchWriter) -> None:
        """Metrics read at scrape time, and the export, retention and tokenizer workers."""
        self.metrics.watch(
            queue_depth=lambda: writer.queue_depth,
            queue_capacity=writer.queue_capacity,
            dropped_total=lambda: writer.skipped_total,
            spool_records=lambda: writer.spooled,
            spool_bytes=lambda: writer.spool.bytes,
            spool_full=lambda: writer.spool.full,
            config_version=lambda: self.snapshot.version,
        )
        self._workers = [
            S3Export(
                self.db,
                lambda: self.snapshot.config.s3_exporter,
                self.metrics,
                exit_after_upload=self.settings.test_exit_after_export_upload,
            ),
            RetentionPurge(self.db, lambda: self.snapshot.config.database.retention, self.metrics),
            TokenizerJanitor(),
        ]
        for worker in self._workers:
            worker.start()

    def observe(self, record: RequestRecord) -> None:
        """Metrics (and a trace span, when on) of every finished request, stored or not."""
        self.metrics.observe(record)
        if self.tracing is not None:
            self.tracing.span(record)

    def journal(self, record: RequestRecord) -> bool:
        """Put a request's record in the spool before the client has the last byte of its
        answer (so a crash from then on cannot lose it); `record(..., journaled=True)`
        follows when the request is done. False when the spool could not be written."""
        strip_for_zero_retention(record, self.snapshot.config.database.retention)
        return self.writer.journal(record)

    def record(self, record: RequestRecord, *, journaled: bool = False) -> None:
        """Hand a finished request over for storage; never blocks, never drops (see
        telemetry/writer.py). `journaled`: `journal` has put it in the spool as it is."""
        if record.response_id:
            self.responses.remember(record)
        strip_for_zero_retention(record, self.snapshot.config.database.retention)
        self.writer.submit(record, journaled=journaled)

    @property
    def recording_refused(self) -> bool:
        """Whether new requests must be refused because they could not be recorded (the
        database is unavailable and the spool is full)."""
        return self._writer is not None and self._writer.spool.full

    def defer(self, work: Coroutine[Any, Any, None]) -> None:
        """Finish a request's bookkeeping in the background (a usage estimate, then its quota
        settlement and record); `stop` waits for it before draining the writer."""
        task = asyncio.get_running_loop().create_task(work)
        self._deferred.add(task)
        task.add_done_callback(self._deferred_done)

    def _deferred_done(self, task: asyncio.Task[None]) -> None:
        self._deferred.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("finishing a request failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Graceful stop: finish deferred request bookkeeping, stop the exporters, report
        quota spending, finish queued records and hook events, then close everything."""
        if self._deferred:
            await asyncio.gather(*self._deferred, return_exceptions=True)
        await asyncio.gather(*(worker.stop() for worker in self._workers))
        if self._quotas is not None:
            await self._quotas.stop()
        await self.hooks.stop()
        if self._writer is not None:
            await self._writer.drain_and_stop()
        if self._config is not None:
            await self._config.stop()
        if self._cloud is not None:
            await self._cloud.close()
        if self._http is not None:
            await self._http.close()
        if self._upstream is not None:
            await self._upstream.close()
        await self.resolver.close()
        if self._db is not None:
            await self._db.close()
        if self.tracing is not None:
            self.tracing.close()
