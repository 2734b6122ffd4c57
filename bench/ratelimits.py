"""What rate limits cost, part by part: admission + settlement, and one background sync round.

    .venv/bin/python bench/ratelimits.py [--counters 1000] [--database URL]

- **request path**: `Limiter.admit` + `Limiter.settle` of one request taking three limits
  (requests and tokens per minute, concurrency), the work every request with rate limits does
  in the event loop, in microseconds (best of 5 rounds of 20,000).
- **sync round**: `RateSync.sync_once` with `--counters` limits in memory, all of them
  changed since the last round (the worst case: every active caller sent a request), on a
  fresh SQLite file (or `--database`, e.g. a PostgreSQL URL), in milliseconds (median of
  20). Each instance runs one every half second while its config has rate limits, whatever
  its request rate, so its cost per request falls as the rate rises.

`run.py --mode ratelimit` and `instructions.py --mode ratelimit` measure the whole process
with rate limits on; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from irisgate.config.model import RateLimit
from irisgate.quotas.ratelimits import Limiter
from irisgate.quotas.ratesync import RateSync
from irisgate.store.database import open_database

LIMITS = [
    ("rpm:bench@example.com", RateLimit("rpm:<user>", "requests", 10**9, 60, "minute")),
    ("tpm:bench@example.com", RateLimit("tpm:<user>", "tokens", 10**12, 60, "minute")),
    ("conc:bench@example.com", RateLimit("conc:<user>", "concurrent", 10**5)),
]


def request_path(rounds: int = 5, n: int = 20_000) -> float:
    """Best microseconds per admit + settle of one request taking `LIMITS`."""
    limiter = Limiter()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            now = time.time()
            permit = limiter.admit(LIMITS, 500, now, time.monotonic())
            limiter.settle(permit, 420, now)
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


async def sync_round(url: str, counters: int, rounds: int = 20) -> tuple[float, float]:
    """Median milliseconds of one sync round with `counters` changed limits: elapsed, and
    this process's CPU (the database server's work is not in it)."""
    db = await open_database(url)
    limiter = Limiter()
    sync = RateSync(db, limiter, lambda: True)
    limit = LIMITS[0][1]
    times: list[float] = []
    cpu: list[float] = []
    try:
        for _ in range(rounds):
            now, mono = time.time(), time.monotonic()
            for i in range(counters):
                limiter.admit([(f"rpm:user{i}@example.com", limit)], 0, now, mono)
            started, cpu_started = time.perf_counter(), time.process_time()
            await sync.sync_once()
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
    finally:
        await sync.stop()
        await db.close()
    return statistics.median(times), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counters", type=int, default=1000)
    parser.add_argument("--database", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()
    print(f"request path (3 limits): {request_path():.1f} µs per request (admit + settle)")
    with tempfile.TemporaryDirectory(prefix="irisgate-ratelimits-") as temp:
        url = args.database or f"sqlite:///{Path(temp) / 'bench.db'}"
        for counters in sorted({1, args.counters}):
            ms, cpu = asyncio.run(sync_round(url, counters))
            where = "PostgreSQL" if url.startswith("postgres") else "SQLite"
            print(
                f"sync round, {counters} changed limits ({where}): {ms:.2f} ms elapsed, "
                f"{cpu:.2f} ms CPU",
                flush=True,
            )
    sys.exit(0)


if __name__ == "__main__":
    main()
