"""Scale-out benchmark: N irisgate instances on one PostgreSQL, U users, one quota each.

    .venv/bin/python bench/scaleout.py --instances 8 --users 100 [--requests 4000]

Creates a throwaway database on the PostgreSQL server (`IRISGATE_BENCH_POSTGRES_URL`,
default the local server's `postgres` database, which must allow CREATE DATABASE), starts
the fake upstream (bench/upstream.py) and N irisgate processes in `serve` identity mode (the
user comes from the `Tailscale-User-Login` header, so any number of users costs nothing to
set up). Every request charges two buckets, a shared `team` and its user's `user-<user>`,
and is captured. The load goes round the instances, each request from one of the U users
(in turn), `--concurrency` at a time.

Prints throughput, the database's commits per request, how often a backend of the database
waited for a lock (sampled every 20 ms) and the rows each table had updated or inserted per
request, then stops the instances (SIGTERM) and checks that every bucket was debited
exactly the recorded costs. Nothing is pinned: on a 2-core machine, 8 instances and the
load share the cores, so throughput says little; the per-request database figures are what
this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from irisgate.testing.server import IrisgateServer, free_port
from run import start_upstream

ADMIN_URL = os.environ.get(
    "IRISGATE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CAPACITY = "$1000000"  # never runs dry: every request is admitted, reserved and debited
TABLES = ("quota_buckets", "quota_leases", "usage_daily", "usage_agent_daily", "sessions")


def config(upstream: str) -> str:
    quotas = [{"bucket": "team"}, {"bucket": "user-<user>"}]
    return json.dumps(
        {
            "providers": {
                "fake": {
                    "baseurl": upstream,
                    "apikey": "sk-bench-upstream",
                    "models": ["gpt-4o-mini"],
                    "compatibility": {"openai_chat": True},
                }
            },
            "grants": [
                {
                    "src": ["*"],
                    "app": {
                        "tailscale.com/cap/aperture": [
                            {"role": "user"},
                            {"models": "**", "quotas": quotas},
                        ]
                    },
                }
            ],
            "quotas": {
                "team": {"capacity": CAPACITY, "rate": "$0/day"},
                "user-<user>": {"capacity": CAPACITY, "rate": "$0/day"},
            },
        }
    )


@dataclass
class Result:
    instances: int
    users: int
    requests: int
    failed: int
    seconds: float
    requests_per_s: float
    commits: int
    commits_per_request: float
    commits_per_s: float
    lock_wait_samples_pct: float
    waiting_backends_mean: float
    waiting_on: dict[str, int]
    rows_per_request: dict[str, float]
    exact: bool


async def load(urls: list[str], users: int, total: int, concurrency: int) -> int:
    """`total` chat completions, `concurrency` at a time; returns how many failed."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello from the scale-out bench"}],
        "max_tokens": 20,
    }
    failed = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal failed
            while not queue.empty():
                i = queue.get_nowait()
                headers = {"Tailscale-User-Login": f"user{i % users}@example.com"}
                url = urls[i % len(urls)] + "/v1/chat/completions"
                try:
                    async with http.post(url, json=body, headers=headers) as resp:
                        await resp.read()
                        failed += resp.status != 200
                except aiohttp.ClientError:  # e.g. a kept-alive connection closed meanwhile
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


async def counters(conn: asyncpg.Connection) -> tuple[int, dict[str, int]]:
    commits = await conn.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    rows = await conn.fetch(
        "SELECT relname, n_tup_upd + n_tup_ins + n_tup_del AS n FROM pg_stat_user_tables"
    )
    return int(commits), {row["relname"]: int(row["n"]) for row in rows}


async def sample_locks(url: str, stop: asyncio.Event) -> tuple[int, int, int, Counter[str]]:
    """(samples, samples with a backend waiting for a lock, waiting backends summed, what the
    waiting backends were running and what the first backend blocking each ran last, with
    its state: the statements' first words)."""
    conn = await asyncpg.connect(url)
    samples = waited = waiting = 0
    statements: Counter[str] = Counter()
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT left(a.query, 40) AS q, (SELECT left(b.query, 40) || ' ['"
                " || b.state || ']' FROM pg_stat_activity b"
                " WHERE b.pid = (pg_blocking_pids(a.pid))[1]) AS blocker"
                " FROM pg_stat_activity a"
                " WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'"
            )
            n = len(rows)
            statements.update(
                f"{' '.join(row['q'].split())} <- {' '.join((row['blocker'] or '?').split())}"
                for row in rows
            )
            samples, waited, waiting = samples + 1, waited + (n > 0), waiting + n
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    return samples, waited, waiting, statements


async def measured(url: str, urls: list[str], args: argparse.Namespace) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        await asyncio.sleep(1.0)  # let start-up traffic settle
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        commits0, rows0 = await counters(conn)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_locks(url, stop))
        started = time.perf_counter()
        failed = await load(urls, args.users, args.requests, args.concurrency)
        seconds = time.perf_counter() - started
        await asyncio.sleep(1.0)  # the last flushes and record batches
        stop.set()
        samples, waited, waiting, statements = await sampler
        await asyncio.sleep(0.6)  # statistics reach pg_stat_* within 500 ms
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        commits1, rows1 = await counters(conn)
    finally:
        await conn.close()
    return {
        "failed": failed,
        "seconds": seconds,
        "commits": commits1 - commits0,
        "samples": (samples, waited, waiting),
        "waiting_on": dict(statements.most_common(4)),
        "rows": {t: rows1.get(t, 0) - rows0.get(t, 0) for t in TABLES},
    }


async def exact(url: str) -> bool:
    """Every bucket debited exactly the recorded costs of the requests that charged it."""
    conn = await asyncpg.connect(url)
    try:
        costs = {
            row["login_name"]: int(row["cost"])
            for row in await conn.fetch(
                "SELECT login_name, SUM(cost_nanodollars) AS cost FROM requests GROUP BY 1"
            )
        }
        balances = {
            row["name"]: int(row["balance_nanodollars"])
            for row in await conn.fetch("SELECT name, balance_nanodollars FROM quota_buckets")
        }
        leases = await conn.fetchval("SELECT count(*) FROM quota_leases")
    finally:
        await conn.close()
    full = 1_000_000 * 1_000_000_000
    expected = {f"user-{login}": full - cost for login, cost in costs.items()}
    expected["team"] = full - sum(costs.values())
    return leases == 0 and balances == expected


async def admin(sql: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run(args: argparse.Namespace, tmp: Path) -> Result:
    name = f"irisgate_bench_{secrets.token_hex(4)}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    port = free_port()
    upstream = start_upstream(port, tmp / "upstream.log")
    servers = [
        IrisgateServer(
            config(f"http://127.0.0.1:{port}"),
            data_dir=tmp / f"gw{n}",
            identity="serve",
            database=url,
            env={"IRISGATE_LOG_LEVEL": "warning"},
        )
        for n in range(args.instances)
    ]
    try:
        servers[0].start(timeout=120)  # imports the config; the others find it
        for server in servers[1:]:
            server.start(timeout=120)
        got = asyncio.run(measured(url, [s.url for s in servers], args))
        for server in servers:
            server.stop(timeout=120)
        ok = asyncio.run(exact(url))
    finally:
        for server in servers:
            server.stop()
        upstream.terminate()
        upstream.wait()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    samples, waited, waiting = got["samples"]
    done = args.requests
    return Result(
        instances=args.instances,
        users=args.users,
        requests=done,
        failed=got["failed"],
        seconds=round(got["seconds"], 2),
        requests_per_s=round(done / got["seconds"], 1),
        commits=got["commits"],
        commits_per_request=round(got["commits"] / done, 3),
        commits_per_s=round(got["commits"] / got["seconds"], 1),
        lock_wait_samples_pct=round(100 * waited / max(samples, 1), 1),
        waiting_backends_mean=round(waiting / max(samples, 1), 3),
        waiting_on=got["waiting_on"],
        rows_per_request={t: round(n / done, 3) for t, n in got["rows"].items()},
        exact=ok,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="irisgate-scaleout-") as tmp:
        result = run(args, Path(tmp))
    for key, value in asdict(result).items():
        print(f"{key:>24}: {value}")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))
    return 0 if result.failed == 0 and result.exact else 1


if __name__ == "__main__":
    sys.exit(main())
