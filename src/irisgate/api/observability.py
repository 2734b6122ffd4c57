"""`GET /metrics` (Prometheus text, for callers granted `read_metrics`) and `GET /readyz`.

`/healthz` (in routes.py) says the process is up. `/readyz` says this instance should get
traffic: the database answers, a config version is loaded, the capture queue has room (a
queue past `SATURATED` of its capacity means the database cannot keep up), the spool is
not full (when it is, new requests are refused) and the process is not shutting down
(drain.py). It answers 200 or 503 with the failing checks named; `spool` also says
how many records wait in the spool to be stored. On PostgreSQL it also reports the
connection pool's pressure (`database_pool`: connections in use of the most this process
opens, `busy` when all are in use: then work waits for a connection), which does not by
itself make the instance unready.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.handlers import ApiError, identify, json_response, runtime_of
from irisgate.store.availability import unavailable
from irisgate.telemetry.metrics import CONTENT_TYPE

#: capture queue fill ratio from which the instance reports itself not ready
SATURATED = 0.9
#: longest a readiness probe waits for the database (seconds)
DATABASE_TIMEOUT_S = 2.0


async def metrics(request: Request) -> Response:
    caller = await identify(request)
    if not caller.access.read_metrics:
        raise ApiError(403, "access denied: read_metrics not granted")
    body = runtime_of(request).metrics.exposition()
    return Response(body, media_type=CONTENT_TYPE)


async def readyz(request: Request) -> Response:
    runtime = runtime_of(request)
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S):
            async with runtime.db.connect() as conn:
                await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        runtime.db.availability.answered()
    except Exception as exc:  # any failure means not ready; the reason is reported
        checks["database"] = f"unreachable: {type(exc).__name__}"
        if unavailable(exc):
            runtime.db.availability.failed(exc)
    pool = runtime.db.pool_use()
    if pool is not None:
        in_use, most = pool
        checks["database_pool"] = f"{'busy' if in_use >= most else 'ok'}: {in_use}/{most}"
    checks["config"] = f"version {runtime.snapshot.version}"
    writer = runtime.writer
    depth, capacity = writer.queue_depth, writer.queue_capacity
    full = depth >= SATURATED * capacity
    checks["capture_queue"] = f"{'saturated' if full else 'ok'}: {depth}/{capacity}"
    spool = writer.spool
    checks["spool"] = (
        f"{'full' if spool.full else 'ok'}: {writer.spooled} records waiting, "
        f"{spool.bytes}/{spool.max_bytes} bytes"
    )
    ready = checks["database"] == "ok" and not full and not spool.full
    if runtime.drain.draining:  # load balancers: stop sending, this process is stopping
        checks["shutdown"] = f"draining: {runtime.drain.inflight} request(s) in flight"
        ready = False
    return json_response(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )


routes = [Route("/metrics", metrics), Route("/readyz", readyz)]
