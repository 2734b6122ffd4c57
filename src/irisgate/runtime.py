"""Everything one irisgate process holds while it runs, built by `Runtime.open` and closed
by `stop()`.

The request path reads `runtime.snapshot` (the current config version, swapped atomically by
the config service) and hands finished records to `runtime.record`, which never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import Coroutine
from typing import Any

import aiohttp
import genai_prices.data_snapshot
import structlog

from irisgate.access.health import Health, HealthCollector
from irisgate.alerts.delivery import Deliveries
from irisgate.alerts.watch import AlertWatch, Probes
from irisgate.cloudauth.provider import CloudAuth
from irisgate.configservice import ConfigService
from irisgate.drain import Drain
from irisgate.exporters.s3 import S3Export
from irisgate.hooks.runner import HookRunner
from irisgate.identity.keyring import KeyedResolver, KeyRing
from irisgate.identity.resolver import IdentityResolver
from irisgate.quotas.gate import QuotaGate
from irisgate.quotas.rategate import RateGate
from irisgate.settings import Settings
from irisgate.snapshot import Snapshot
from irisgate.store import connections
from irisgate.store.database import Database, SchemaMismatch, open_database, require_current
from irisgate.telemetry.folding import RollupFold
from irisgate.telemetry.metrics import Metrics
from irisgate.telemetry.record import RequestRecord, index_headers
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
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=60, resolver=resolver)
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
    """Everything one irisgate process holds while it serves: built whole by `open` in the
    app's lifespan (every part is there from construction on) and closed by `stop`."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: KeyedResolver,
        drain: Drain,
        metrics: Metrics,
        tracing: Tracing | None,
        db: Database,
        config: ConfigService,
        http: aiohttp.ClientSession,
        upstream: Http1Client,
        cloud: CloudAuth,
        writer: BatchWriter,
        responses: ResponseIndex,
        quotas: QuotaGate,
        rates: RateGate,
        hooks: HookRunner,
        health: Health,
        alerts: AlertWatch,
        deliveries: Deliveries,
        workers: list[S3Export | RetentionPurge | RollupFold | TokenizerJanitor],
    ) -> None:
        self.settings = settings
        #: the identity mode's resolver behind the API key ring (`resolver.ring`)
        self.resolver = resolver
        self.drain = drain  # requests in flight; shutdown refuses new ones, then cuts
        self.metrics = metrics  # per app, so several apps in one process count apart
        self.tracing = tracing
        self.db = db
        self.config = config
        self.http = http  # cloud token endpoints and connector upstreams
        self.upstream = upstream  # the LLM relay's and the hooks' HTTP/1.1 client
        self.cloud = cloud
        self.writer = writer
        self.responses = responses
        self.quotas = quotas
        self.rates = rates  # rate limits: requests, tokens, requests in flight
        self.hooks = hooks
        self.health = health  # providers' and keys' health in this process (failover)
        self.alerts = alerts  # observations in, alerts raised once (irisgate.alerts)
        self.deliveries = deliveries  # alerts out to webhooks and e-mail, with retries
        self._workers = workers
        self._deferred: set[asyncio.Task[None]] = set()

    @property
    def snapshot(self) -> Snapshot:
        return self.config.snapshot

    @classmethod
    async def open(cls, settings: Settings, resolver: IdentityResolver, drain: Drain) -> Runtime:
        """Open the database, load the config, start the writer, quotas, hooks and workers;
        what was opened is closed again when a later step fails."""
        async with contextlib.AsyncExitStack() as opened:
            db = await _open_database(settings, opened)
            await resolver.open(db)
            config = await ConfigService.open(db, settings)
            opened.push_async_callback(config.stop)
            ring = await KeyRing.open(db, settings.config_poll_seconds, settings.key_owner_max_age)
            opened.push_async_callback(ring.stop)
            http = upstream_session(settings)
            opened.push_async_callback(http.close)
            upstream = Http1Client(
                connect_timeout=settings.upstream_connect_timeout,
                read_timeout=settings.upstream_read_timeout,
            )
            opened.push_async_callback(upstream.close)
            cloud = CloudAuth(http)
            opened.push_async_callback(cloud.close)
            spool = Spool(
                settings.data_dir / "spool",
                fsync=settings.spool_fsync,
                max_bytes=settings.spool_max_mb << 20,
            )
            await asyncio.to_thread(spool.open)  # adopts the files of a process that died
            writer = BatchWriter(db, spool, linger_s=WRITE_LINGER_SECONDS)
            writer.start()
            opened.push_async_callback(writer.drain_and_stop)
            metrics = Metrics()
            health = Health(cool_down=settings.circuit_cool_down)
            deliveries = Deliveries(db, lambda: config.snapshot.config.alerts, http)
            alerts = AlertWatch(
                db,
                lambda: config.snapshot.config.alerts,
                Probes(
                    providers=lambda: health.views(
                        [(p.id, p.key_count) for p in config.snapshot.config.providers.values()],
                        config.snapshot.version,
                    ),
                    database_down=lambda: db.availability.down,
                    database_outages=lambda: db.availability.outages_total,
                    spool_full=lambda: writer.spool.full,
                    export_every=lambda: _export_every(config),
                ),
                raised=deliveries.wake,
            )
            alerts.start()
            opened.push_async_callback(alerts.stop)
            deliveries.start()
            opened.push_async_callback(deliveries.stop)
            quotas = QuotaGate(
                db,
                settings.data_dir,
                settings.quota_max_reservation,
                metrics,
                observe=alerts.balance,
            )
            quotas.start()
            opened.push_async_callback(quotas.stop)
            rates = RateGate(
                db, quotas.typical, lambda: bool(config.snapshot.config.rate_limits), metrics
            )
            rates.start()
            opened.push_async_callback(rates.stop)
            hooks = HookRunner(
                upstream, settings.max_hook_answer, metrics, observe=alerts.hook_outcome
            )
            hooks.start()
            opened.push_async_callback(hooks.stop)
            _watch(metrics, writer, config)
            metrics.registry.register(
                HealthCollector(
                    health,
                    lambda: [
                        (p.id, p.key_count) for p in config.snapshot.config.providers.values()
                    ],
                    lambda: config.snapshot.version,
                )
            )
            workers = _workers(settings, db, config, metrics, alerts)
            for worker in workers:
                worker.start()
                opened.push_async_callback(worker.stop)
            # genai-prices loads its price table on first use (~0.4 s): not on a user's request
            await asyncio.to_thread(genai_prices.data_snapshot.get_snapshot)
            opened.pop_all()  # from here on, `stop` closes everything
        runtime = cls(
            settings,
            resolver=KeyedResolver(resolver, ring),
            drain=drain,
            metrics=metrics,
            tracing=Tracing() if settings.otel else None,
            db=db,
            config=config,
            http=http,
            upstream=upstream,
            cloud=cloud,
            writer=writer,
            responses=ResponseIndex(db),
            quotas=quotas,
            rates=rates,
            hooks=hooks,
            health=health,
            alerts=alerts,
            deliveries=deliveries,
            workers=workers,
        )
        # Everything loaded so far (price table, modules, config) lives as long as the process:
        # keep it out of the collector's full scans, which would otherwise pause requests.
        gc.collect()
        gc.freeze()
        log.info(
            "irisgate started",
            pid=os.getpid(),
            identity=settings.identity,
            database=db.dialect,
            config_version=runtime.snapshot.version,
        )
        return runtime

    def observe(self, record: RequestRecord) -> None:
        """Metrics (and a trace span, when on) of every finished request, stored or not."""
        self.metrics.observe(record)
        if self.tracing is not None:
            self.tracing.span(record)

    def journal(self, record: RequestRecord) -> bool:
        """Put a request's record in the spool before the client has the last byte of its
        answer (so a crash from then on cannot lose it); `record(..., journaled=True)`
        follows when the request is done. False when the spool could not be written."""
        self._prepare_for_storage(record)
        return self.writer.journal(record)

    def record(self, record: RequestRecord, *, journaled: bool = False) -> None:
        """Hand a finished request over for storage; never blocks, never drops (see
        telemetry/writer.py). `journaled`: `journal` has put it in the spool as it is."""
        if record.response_id:
            self.responses.remember(record)
        self._prepare_for_storage(record)
        self.writer.submit(record, journaled=journaled)

    def _prepare_for_storage(self, record: RequestRecord) -> None:
        """Index the filterable headers, then drop what zero retention never stores."""
        database = self.snapshot.config.database
        index_headers(record, database.filterable_headers)
        strip_for_zero_retention(record, database.retention)

    @property
    def recording_refused(self) -> bool:
        """Whether new requests must be refused because they could not be recorded (the
        database is unavailable and the spool is full)."""
        return self.writer.spool.full

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
        await self.deliveries.stop()
        await self.alerts.stop()
        await self.quotas.stop()
        await self.rates.stop()
        await self.hooks.stop()
        await self.writer.drain_and_stop()
        await self.config.stop()
        await self.resolver.ring.stop()
        await self.cloud.close()
        await self.http.close()
        await self.upstream.close()
        await self.db.close()
        if self.tracing is not None:
            self.tracing.close()


def _export_every(config: ConfigService) -> int | None:
    """The S3 export's interval (export backlog alerts); None when export is off."""
    exporter = config.snapshot.config.s3_exporter
    return exporter.every_seconds if exporter is not None else None


def _watch(metrics: Metrics, writer: BatchWriter, config: ConfigService) -> None:
    """What the metrics read at scrape time."""
    metrics.watch(
        queue_depth=lambda: writer.queue_depth,
        queue_capacity=writer.queue_capacity,
        dropped_total=lambda: writer.skipped_total,
        spool_records=lambda: writer.spooled,
        spool_bytes=lambda: writer.spool.bytes,
        spool_full=lambda: writer.spool.full,
        config_version=lambda: config.snapshot.version,
    )


async def _open_database(settings: Settings, opened: contextlib.AsyncExitStack) -> Database:
    """The database, migrated (or checked to be current, with `--no-migrate`); `opened`
    closes it."""
    try:
        db = await open_database(
            settings.resolved_database_url,
            migrate=settings.migrate,
            pool_size=settings.db_pool_size,
        )
        opened.push_async_callback(db.close)
        if not settings.migrate:
            await require_current(db)
    except SchemaMismatch as exc:
        log.error("irisgate cannot serve this database", reason=str(exc))
        raise
    await connections.check(db)
    return db


def _workers(
    settings: Settings, db: Database, config: ConfigService, metrics: Metrics, alerts: AlertWatch
) -> list[S3Export | RetentionPurge | RollupFold | TokenizerJanitor]:
    """The export, retention, rollup fold and tokenizer workers (not started)."""
    return [
        S3Export(
            db,
            lambda: config.snapshot.config.s3_exporter,
            metrics,
            exit_after_upload=settings.test_exit_after_export_upload,
            observe=alerts.export,
        ),
        RetentionPurge(db, lambda: config.snapshot.config.database.retention, metrics),
        RollupFold(db),
        TokenizerJanitor(),
    ]
