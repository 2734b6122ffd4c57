"""A database outage under full load: irisgate's memory, its spool, and what gets recorded.

    .venv/bin/python bench/outage.py [--outage SECONDS] [--connections N]

Starts the bench's fake upstream and fake tailscaled, a private PostgreSQL server
(`irisgate.testing.postgres`, needs Debian's postgresql package) and irisgate on it, pinned
like bench/run.py (irisgate on CPU 0, the rest on CPU 1). wrk sends plain chat completions at
full load for the whole run; after 10 s the PostgreSQL server is stopped for `--outage`
seconds (60), then started again, and the load goes on 20 s more. Every second it prints
irisgate's resident memory and the spool's size; at the end, how many requests wrk got
answered and how many records the database holds once the spool is drained. Not a test:
it never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg

from irisgate.testing.fake_localapi import FakeLocalAPI
from irisgate.testing.postgres import PostgresCluster
from irisgate.testing.server import IrisgateServer, free_port
from procstat import rss_mib
from run import (
    GATEWAY_CPU,
    LOAD_CPU,
    LOGIN,
    PINNING,
    Scenario,
    ensure_wrk,
    make_config,
    pinned,
    start_upstream,
    wrk,
)

BEFORE_S, AFTER_S = 10, 20


def spool_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.spool") if p.exists())


async def stored(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM requests"))
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage", type=int, default=60, help="seconds without PostgreSQL")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    args = parser.parse_args()
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="irisgate-outage-") as tmp, PostgresCluster() as pg:
        return run(Path(tmp), pg, args.outage, args.connections)


def run(tmp: Path, pg: PostgresCluster, outage: int, connections: int) -> int:
    up_port = free_port()
    upstream = start_upstream(up_port, tmp / "upstream.log")
    localapi = FakeLocalAPI(tmp / "tailscaled.sock")
    localapi.add_user("127.0.0.1", LOGIN, "Bench User")
    gateway = IrisgateServer(
        make_config("core", f"http://127.0.0.1:{up_port}", ""),
        data_dir=tmp / "data",
        identity="tailscale",
        tailscaled_socket=str(tmp / "tailscaled.sock"),
        database=pg.url,
    )
    gateway.args = pinned(GATEWAY_CPU, gateway.args)
    total = BEFORE_S + outage + AFTER_S
    answered: dict[str, int] = {}
    try:
        localapi.start()
        gateway.start()
        assert gateway.process is not None
        pid = gateway.process.pid
        print(f"irisgate pid {pid} on CPU {GATEWAY_CPU}, load on CPU {LOAD_CPU}"
              if PINNING else "not pinned (< 2 CPUs)")
        load = threading.Thread(
            target=lambda: answered.update(
                wrk(gateway.url, Scenario("plain", connections), total, gateway=True)
            )
        )
        load.start()
        start = time.monotonic()
        peak = {"before": 0.0, "outage": 0.0, "after": 0.0}
        down = up = False
        print(" t/s  phase    RSS MiB  spool MiB")
        while load.is_alive():
            elapsed = time.monotonic() - start
            if not down and elapsed >= BEFORE_S:
                pg.stop()
                down = True
            if down and not up and elapsed >= BEFORE_S + outage:
                pg.start()
                up = True
            phase = "after" if up else "outage" if down else "before"
            rss = rss_mib(pid)
            peak[phase] = max(peak[phase], rss)
            spool = spool_bytes(tmp / "data" / "spool") / (1 << 20)
            print(f"{elapsed:4.0f}  {phase:<7} {rss:8.1f}  {spool:9.1f}", flush=True)
            time.sleep(1)
        load.join()
        deadline = time.monotonic() + 120
        while spool_bytes(tmp / "data" / "spool") > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        recorded = asyncio.run(stored(pg.url))
        exit_status = gateway.stop()
    finally:
        gateway.stop()
        localapi.stop()
        upstream.terminate()
    print(f"\npeak RSS MiB: before {peak['before']:.1f}, during the {outage} s outage "
          f"{peak['outage']:.1f}, after {peak['after']:.1f}")
    errors = sum(answered.get(k, 0) for k in ("connect", "read", "write", "status", "timeout"))
    print(f"wrk: {answered.get('requests', 0):,} answers, {errors:,} errors; recorded "
          f"{recorded:,} (more than answered: requests wrk cut off when it stopped), "
          f"exit status {exit_status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
