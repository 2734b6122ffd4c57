"""Throughput of `irisgate serve --workers N` next to one process, on this machine.

    .venv/bin/python bench/workers.py [--duration SECONDS | --quick] [--workers 1,2]

The same fake upstream, fake tailscaled and config as bench/run.py (identity, grants, capture
to SQLite all on), with wrk at 32 and 64 connections, plain and streamed chat completions.
The upstream and wrk stay pinned to CPU 1 as in bench/run.py; irisgate is not pinned, so one
process can have CPU 0 to itself and a second worker has to share CPU 1 with the load. That
is what a second worker can buy on a 2-core machine. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from irisgate.testing.fake_localapi import FakeLocalAPI
from irisgate.testing.server import IrisgateServer, free_port
from procstat import cpu_ms, settle
from run import (
    WARMUP_SECONDS,
    Scenario,
    check_once,
    count_recorded,
    ensure_wrk,
    log_problems,
    make_config,
    start_upstream,
    wrk,
)

SCENARIOS = [Scenario(n, c) for c in (32, 64) for n in ("plain", "stream")]


def family(pid: int) -> list[int]:
    """`pid` and its child processes (the workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(FileNotFoundError):
        return [pid, *(int(p) for p in path.read_text().split())]
    return [pid]


def family_cpu_ms(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            total += cpu_ms(pid)
    return total


def run_workers(tmp: Path, workers: int, seconds: int, upstream: str) -> list[str]:
    """One irisgate with `workers` processes through every scenario; the report lines."""
    localapi = FakeLocalAPI(tmp / f"tailscaled-{workers}.sock")
    localapi.add_user("127.0.0.1", "bench@example.com", "Bench User")
    gateway = IrisgateServer(
        make_config("core", upstream, ""),
        data_dir=tmp / f"data-{workers}",
        identity="tailscale",
        tailscaled_socket=str(tmp / f"tailscaled-{workers}.sock"),
        extra_args=("--workers", str(workers)) if workers > 1 else (),
    )
    lines: list[str] = []
    answered = cut_off = 0
    try:
        localapi.start()
        gateway.start()
        assert gateway.process is not None
        deadline = time.monotonic() + 30
        while len(family(gateway.process.pid)) < workers + (workers > 1):
            if time.monotonic() > deadline:
                sys.exit("the workers did not all start within 30 s")
            time.sleep(0.1)
        pids = family(gateway.process.pid)
        for sc in SCENARIOS[:2]:
            check_once(gateway, sc)
            answered += 1
            answered += wrk(gateway.url, sc, WARMUP_SECONDS, gateway=True)["requests"]
            cut_off += sc.connections
        for sc in SCENARIOS:
            for pid in pids:
                settle(pid)
            cpu0 = family_cpu_ms(pids)
            stats = wrk(gateway.url, sc, seconds, gateway=True)
            for pid in pids:
                settle(pid)
            done = max(stats["requests"], 1)
            answered += stats["requests"]
            cut_off += sc.connections
            rps = stats["requests"] / (stats["duration_us"] / 1e6)
            cpu = (family_cpu_ms(pids) - cpu0) / done
            lines.append(
                f"{workers:>7} {sc.name:<7} {sc.connections:>5} | {rps:>8.0f} "
                f"{stats['p50_us'] / 1000:>7.2f} {stats['p99_us'] / 1000:>7.2f} | {cpu:>7.2f}"
            )
        status = gateway.stop()
        recorded = count_recorded(tmp / f"data-{workers}")
        lines.append(
            f"{workers:>7} exit {status}; recorded {recorded} of {answered} answered"
            f" (+ up to {cut_off} cut off by wrk)"
        )
        problems = log_problems(gateway.logs())
        lines.append(f"{workers:>7} {len(problems)} warning/error lines in irisgate's log")
        lines += [f"        {line[:200]}" for line in problems[:5]]
    finally:
        gateway.stop()
        localapi.stop()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--quick", action="store_true", help="2 seconds per scenario")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (1,2)")
    args = parser.parse_args()
    seconds = 2 if args.quick else args.duration
    counts = [int(n) for n in args.workers.split(",")]
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="irisgate-bench-workers-") as tmp:
        up_port = free_port()
        upstream = start_upstream(up_port, Path(tmp) / "upstream.log")
        try:
            head = f"{'workers':>7} {'kind':<7} {'conns':>5} | {'req/s':>8} {'p50':>7} "
            head += f"{'p99':>7} | {'CPU/req':>7}"
            rows = [head, "-" * len(head)]
            for count in counts:
                rows += run_workers(Path(tmp), count, seconds, f"http://127.0.0.1:{up_port}")
        finally:
            upstream.terminate()
            upstream.wait()
    print("\n".join(rows))
    print("p50/p99 in ms (wrk); CPU/req: ms of CPU of all irisgate processes per response")
    return 0


if __name__ == "__main__":
    sys.exit(main())
