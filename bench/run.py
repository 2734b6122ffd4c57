"""irisgate benchmark: added latency, throughput, CPU and memory next to the upstream alone.

    .venv/bin/python bench/run.py [--duration SECONDS | --quick] [--json FILE]

Starts a fast fake LLM upstream (its own process), a fake tailscaled LocalAPI (so identity is
resolved by WhoIs, then cached) and one irisgate process with grants and capture (SQLite) on.
Every scenario (plain chat completion and 20-event stream, at 1 and 32 connections) is run with
wrk against the upstream directly, then through irisgate. irisgate is pinned to CPU 0; the
upstream, wrk and this script to CPU 1, for the baseline too. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from irisgate.testing.fake_localapi import FakeLocalAPI
from irisgate.testing.server import IrisgateServer, free_port

HERE = Path(__file__).resolve().parent
LUA = HERE / "post.lua"
GATEWAY_CPU, LOAD_CPU = 0, 1
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
PATH = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
LOGIN = "bench@example.com"
WARMUP_SECONDS = 2
NOISY_PCT = 10  # CPU used by other processes during a run, % of one core
LITELLM = "LiteLLM proxy on this machine, for scale: +7.6 ms p50, ~7.7 ms CPU/plain request, "
LITELLM += "~22 ms CPU/stream, ~128 req/s per worker, 373-495 MiB"

CONFIG = """{
  "providers": {"fake": {"baseurl": "%s", "apikey": "sk-bench-upstream",
                         "models": ["%s"], "compatibility": {"openai_chat": true}}},
  "grants": [{"src": ["*"], "app": {"tailscale.com/cap/aperture": [
    {"role": "user"}, {"models": "fake/*"}]}}],
}"""


@dataclass(frozen=True)
class Scenario:
    name: str
    connections: int

    @property
    def body(self) -> str:
        body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        if self.name == "stream":
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return json.dumps(body)


SCENARIOS = [Scenario(n, c) for c in (1, 32) for n in ("plain", "stream")]


@dataclass
class Measured:
    """One wrk run against one target, with the CPU the processes spent meanwhile."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float  # the measured process: irisgate, or the upstream for the baseline
    upstream_cpu_ms_per_req: float
    rss_peak_mib: float
    other_load_pct: float  # CPU used by processes not in the benchmark, % of one core

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --- processes -------------------------------------------------------------------------------


def cpu_ms(pid: int) -> float:
    """utime + stime of the whole process (all threads, live or finished) in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def own_cpu_ms() -> float:
    """CPU of this script (threads included: the fake LocalAPI) and its finished children (wrk)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime) * 1000


def machine_busy_ms() -> float:
    """Busy CPU time of the whole machine (all cores), from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) * TICK_MS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def settle(pid: int, timeout: float = 10.0) -> None:
    """Wait until `pid` is idle (background work such as capture writes has finished)."""
    deadline = time.monotonic() + timeout
    last = cpu_ms(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = cpu_ms(pid)
        if now - last <= TICK_MS:
            return
        last = now


class RssSampler:
    """Samples a process's RSS every 0.5 s in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))


def pinned(cpu: int, args: list[str]) -> list[str]:
    """`taskset` execs the command, so the pid the caller sees is the command's own."""
    return ["taskset", "-c", str(cpu), *args] if PINNING else args


PINNING = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        run = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, check=False)
        if run.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, check=False)
            subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, check=False)
        found = shutil.which("wrk")
    if not found:
        sys.exit("bench needs wrk: install it with `sudo apt-get install -y wrk` and run again")
    return found


def start_upstream(port: int, log: Path) -> subprocess.Popen[bytes]:
    """The fake upstream; its log (tracebacks of streams wrk cuts off) goes to `log`."""
    args = [sys.executable, str(HERE / "upstream.py"), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(pinned(LOAD_CPU, args), stdout=out, stderr=out)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"fake upstream exited with {proc.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("fake upstream did not listen within 20 s")


# --- load ------------------------------------------------------------------------------------


def wrk(base: str, scenario: Scenario, seconds: int) -> dict[str, int]:
    args = [ensure_wrk(), "-t1", f"-c{scenario.connections}", f"-d{seconds}s", "--latency"]
    args += ["--timeout", "10s", "-s", str(LUA), base + PATH]
    env = {**os.environ, "BENCH_BODY": scenario.body}
    out = subprocess.run(
        pinned(LOAD_CPU, args), env=env, capture_output=True, text=True, check=False
    )
    stats: dict[str, int] = {}
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            stats |= {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    if out.returncode != 0 or "p99_us" not in stats:
        sys.exit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return stats


def measure(base: str, scenario: Scenario, seconds: int, pid: int, upstream: int) -> Measured:
    settle(pid)
    settle(upstream)
    cpu0, up0, ours0, busy0 = cpu_ms(pid), cpu_ms(upstream), own_cpu_ms(), machine_busy_ms()
    start = time.monotonic()
    with RssSampler(pid) as rss:
        stats = wrk(base, scenario, seconds)
        settle(pid)  # capture writes happen after the response: they are part of the cost
    used, up_used = cpu_ms(pid) - cpu0, cpu_ms(upstream) - up0
    ours = own_cpu_ms() - ours0 + used + (up_used if upstream != pid else 0)
    other = (machine_busy_ms() - busy0 - ours) / (time.monotonic() - start) / 10
    done = max(stats["requests"], 1)
    errors = sum(stats[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Measured(
        requests=stats["requests"],
        seconds=stats["duration_us"] / 1e6,
        errors=errors,
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        cpu_ms_per_req=used / done,
        upstream_cpu_ms_per_req=up_used / done,
        rss_peak_mib=rss.peak,
        other_load_pct=max(other, 0.0),
    )


def check_once(base: str, scenario: Scenario, gateway: IrisgateServer) -> None:
    request = urllib.request.Request(
        base + PATH, data=scenario.body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        log = gateway.logs()[-4000:]
        sys.exit(f"{base}{PATH} answered {exc.code}: {body}\n--- irisgate log ---\n{log}")


def log_problems(log: str) -> list[str]:
    """irisgate's warning and error lines (JSON log lines and uvicorn's plain ones)."""
    bad = ('"level": "warning"', '"level": "error"', '"level":"warning"', '"level":"error"')
    return [
        line for line in log.splitlines()
        if line.startswith(("WARNING", "ERROR")) or any(b in line for b in bad)
    ]


def count_recorded(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "irisgate.db") as db:
        row = db.execute("SELECT count(*) FROM requests").fetchone()
    return int(row[0])


# --- report ----------------------------------------------------------------------------------


def table(rows: list[tuple[Scenario, Measured, Measured]]) -> str:
    head = (
        f"{'scenario':<8} {'conns':>5} | {'direct req/s':>12} {'p50':>6} {'p99':>6} {'up CPU':>6} "
        f"| {'irisgate req/s':>14} {'p50':>6} {'p99':>6} | {'+p50':>6} {'+p99':>6} "
        f"| {'CPU/req':>7} | {'RSS peak':>8}"
    )
    lines = [head, "-" * len(head)]
    for sc, d, g in rows:
        lines.append(
            f"{sc.name:<8} {sc.connections:>5} | {d.rps:>12,.0f} {d.p50_ms:>6.2f} {d.p99_ms:>6.2f} "
            f"{d.cpu_ms_per_req:>6.3f} | {g.rps:>14,.0f} {g.p50_ms:>6.2f} {g.p99_ms:>6.2f} "
            f"| {g.p50_ms - d.p50_ms:>6.2f} {g.p99_ms - d.p99_ms:>6.2f} "
            f"| {g.cpu_ms_per_req:>7.3f} | {g.rss_peak_mib:>8.1f}"
        )
    lines.append("latency in ms (wrk, full response incl. the last stream event); CPU in ms per")
    lines.append("request (utime+stime from /proc); up CPU = the upstream's, called directly; MiB")
    noisy = [
        f"{sc.name} @{sc.connections} ({d.other_load_pct:.0f}% / {g.other_load_pct:.0f}%)"
        for sc, d, g in rows
        if max(d.other_load_pct, g.other_load_pct) > NOISY_PCT
    ]
    if noisy:
        lines.append("NOISY: other processes used CPU (% of a core, direct / irisgate) during "
                     + ", ".join(noisy) + ": numbers are not trustworthy, run again when idle")
    return "\n".join(lines)


def targets(
    rows: list[tuple[Scenario, Measured, Measured]], rss: dict[str, float], capture: dict[str, int]
) -> list[tuple[str, str, bool]]:
    out: list[tuple[str, str, bool]] = []
    for sc, d, g in rows:
        tag = f"{sc.name} @{sc.connections}"
        if sc.connections == 1:
            added50, added99 = g.p50_ms - d.p50_ms, g.p99_ms - d.p99_ms
            out.append((f"added p50 <= 0.5 ms ({tag})", f"{added50:.3f} ms", added50 <= 0.5))
            out.append((f"added p99 <= 2 ms ({tag})", f"{added99:.3f} ms", added99 <= 2.0))
        limit = 0.5 if sc.name == "plain" else 1.0
        cpu = g.cpu_ms_per_req
        out.append((f"CPU <= {limit} ms/request ({tag})", f"{cpu:.3f} ms", cpu <= limit))
        if sc.name == "plain" and sc.connections > 1:
            out.append((f">= 1,500 req/s ({tag})", f"{g.rps:,.0f}/s", g.rps >= 1500))
        out.append((f"no failed requests ({tag})", f"{d.errors} / {g.errors}", not g.errors))
    peak = max(g.rss_peak_mib for _, _, g in rows)
    growth = rss["after"] - rss["warm"]
    out.append(("RSS <= 150 MiB (peak)", f"{peak:.1f} MiB", peak <= 150))
    out.append(("RSS flat: after - warm <= 10 MiB", f"{growth:+.1f} MiB", growth <= 10))
    recorded, answered = capture["recorded"], capture["answered"]
    ok = answered <= recorded <= answered + capture["cut_off"]
    out.append(("every request recorded", f"{recorded:,} rows / {answered:,} answered", ok))
    return out


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--quick", action="store_true", help="2 seconds per scenario")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    seconds = 2 if args.quick else args.duration
    ensure_wrk()
    if PINNING:
        os.sched_setaffinity(0, {LOAD_CPU})
    with tempfile.TemporaryDirectory(prefix="irisgate-bench-") as tmp:
        return bench(Path(tmp), seconds, args.json)


def bench(tmp: Path, seconds: int, json_path: Path | None) -> int:
    up_port = free_port()
    upstream = start_upstream(up_port, tmp / "upstream.log")
    direct = f"http://127.0.0.1:{up_port}"
    localapi = FakeLocalAPI(tmp / "tailscaled.sock")
    localapi.add_user("127.0.0.1", LOGIN, "Bench User")
    gateway = IrisgateServer(
        CONFIG % (direct, MODEL),
        data_dir=tmp / "data",
        identity="tailscale",
        tailscaled_socket=str(tmp / "tailscaled.sock"),
    )
    gateway.args = pinned(GATEWAY_CPU, gateway.args)
    rows: list[tuple[Scenario, Measured, Measured]] = []
    try:
        localapi.start()
        gateway.start()
        assert gateway.process is not None
        pid = gateway.process.pid
        # answered: complete responses; cut_off: at most one in flight per connection when wrk
        # stops, which irisgate records too (as a client that went away)
        capture = {"answered": 2, "cut_off": 0}
        for sc in SCENARIOS[:2]:
            check_once(gateway.url, sc, gateway)
        print(f"irisgate pid {pid} on CPU {GATEWAY_CPU}; upstream pid {upstream.pid}, wrk and "
              f"this script on CPU {LOAD_CPU}" if PINNING else "not pinned (fewer than 2 CPUs)")
        rss = {"start": rss_mib(pid)}
        for sc in (Scenario("plain", 32), Scenario("stream", 32)):  # warm-up, not reported
            wrk(direct, sc, WARMUP_SECONDS)
            capture["answered"] += wrk(gateway.url, sc, WARMUP_SECONDS)["requests"]
            capture["cut_off"] += sc.connections
        settle(pid)
        rss["warm"] = rss_mib(pid)
        for sc in SCENARIOS:
            print(f"{sc.name} @{sc.connections} conns, {seconds} s each: direct, irisgate",
                  flush=True)
            d = measure(direct, sc, seconds, upstream.pid, upstream.pid)
            g = measure(gateway.url, sc, seconds, pid, upstream.pid)
            capture["answered"] += g.requests
            capture["cut_off"] += sc.connections
            rows.append((sc, d, g))
        rss["after"] = rss_mib(pid)
        exit_code = gateway.stop()
        capture["recorded"] = count_recorded(tmp / "data")
    finally:
        gateway.stop()
        localapi.stop()
        upstream.terminate()
        upstream.wait()
    print()
    print(table(rows))
    print(f"irisgate RSS: {rss['start']:.1f} MiB at start, {rss['warm']:.1f} after warm-up, "
          f"{rss['after']:.1f} after the run")
    problems = log_problems(gateway.logs())
    print(f"irisgate stopped by SIGTERM, exit status {exit_code}; {len(problems)} warning/error "
          "lines in its log" + "".join(f"\n  {line[:200]}" for line in problems[:5]))
    print(f"capture: {capture['recorded']:,} requests recorded, {capture['answered']:,} answered "
          f"through irisgate, up to {capture['cut_off']} more cut off in flight when wrk stopped")
    print()
    checks = targets(rows, rss, capture)
    for name, value, ok in checks:
        print(f"  {'PASS' if ok else 'MISS'}  {name:<38} {value}")
    print(f"\n{LITELLM}")
    if json_path is not None:
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "seconds_per_scenario": seconds,
            "pinning": PINNING,
            "scenarios": [
                {"scenario": sc.name, "connections": sc.connections,
                 "direct": asdict(d) | {"rps": d.rps}, "irisgate": asdict(g) | {"rps": g.rps}}
                for sc, d, g in rows
            ],
            "rss_mib": rss,
            "capture": capture,
            "targets": [{"target": n, "value": v, "pass": ok} for n, v, ok in checks],
        }
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
