"""irisgate benchmark: added latency, throughput, CPU and memory next to the upstream alone.

    .venv/bin/python bench/run.py [--duration SECONDS | --quick] [--json FILE] [--mode MODE]

Starts a fast fake LLM upstream (its own process), a fake tailscaled LocalAPI (so identity is
resolved by WhoIs, then cached) and one irisgate process with grants and capture (SQLite) on.
Every scenario (plain chat completion and 20-event stream, streamed Gemini generateContent and
streamed Bedrock InvokeModel, at 1 and 32 connections) is run with wrk against the upstream
directly, then through irisgate. irisgate is pinned to CPU 0; the upstream, wrk and this script
to CPU 1, for the baseline too. `--mode quota` adds a quota bucket to the grant of the OpenAI
models (checked and debited on every request), `--mode ratelimit` three rate limits (requests
and tokens per minute, concurrency: checked and counted on every request), `--mode hook` one
pre-request hook that allows everything (a fast aiohttp server on CPU 1). See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from irisgate.testing.fake_localapi import FakeLocalAPI
from irisgate.testing.server import IrisgateServer, free_port
from procstat import (
    RssSampler,
    cpu_ms,
    machine_busy_ms,
    own_cpu_ms,
    rss_mib,
    settle,
    switches,
)

HERE = Path(__file__).resolve().parent
GATEWAY_CPU, LOAD_CPU = 0, 1
PINNING = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
PATH, MODEL, LOGIN = "/v1/chat/completions", "gpt-4o-mini", "bench@example.com"
RESPONSES_PATH = "/v1/responses"
#: served by an Anthropic Messages provider with `translate` on: the `translated` scenarios
#: ask it through Chat Completions (bench/instructions.py only: there is no direct baseline)
TRANSLATED_MODEL = "claude-haiku-4-5"
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
BEDROCK_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1%3A0"
BEDROCK_PATH = f"/model/{BEDROCK_MODEL}/invoke-with-response-stream"  # irisgate: /bedrock + this
WARMUP_SECONDS = 2
NOISY_PCT = 10  # CPU used by other processes during a run, % of one core
LITELLM = (
    "For scale, LiteLLM's proxy on this machine: +7.6 ms p50, ~7.7 ms CPU per plain and ~22 ms "
    "per streamed request, ~128 requests/s per worker, 373-495 MiB"
)
CONFIG = """{
  "providers": {
    "fake": {"baseurl": "%(up)s", "apikey": "sk-bench-upstream",
             "models": ["%(model)s"], "compatibility": {"openai_chat": true}},
    "gemini": {"baseurl": "%(up)s", "apikey": "bench-gemini-key", "authorization": "x-goog-api-key",
               "models": ["gemini-2.5-flash"], "compatibility": {"gemini_generate_content": true}},
    "fakeant": {"baseurl": "%(up)s", "apikey": "sk-ant-bench", "authorization": "x-api-key",
                "models": ["%(translated)s"], "compatibility": {"anthropic_messages": true},
                "translate": true},
    "bedrock": {"baseurl": "%(up)s", "apikey": "bench-bedrock-key",
                "models": ["us.anthropic.claude-haiku-4-5-20251001-v1:0"],
                "compatibility": {"bedrock_model_invoke": true}, "cost_basis": "bedrock-us"},
  },
  "grants": [{"src": ["*"], "app": {"tailscale.com/cap/aperture": [
    {"role": "user"}, {"models": "fake/*"%(wiring)s}, {"models": "gemini/*"},
    {"models": "fakeant/*"}, {"models": "bedrock/*"}]}}],%(sections)s
}"""
MODES = ("core", "quota", "ratelimit", "hook", "key")
#: `--mode key`: the irisgate API key every request through irisgate carries (made at start)
CLIENT_AUTH: dict[str, str] = {}
#: a bucket that never runs dry during a run: every request is checked, reserved and debited
QUOTA = """
  "quotas": {"bench:<user>": {"capacity": "$1000000.00", "rate": "$1000000.00/hour"}},"""
#: limits that never refuse during a run: every request is checked against a requests-per-
#: minute, a tokens-per-minute and a concurrency limit, and the counts synced in the background
RATE_LIMITS = """
  "rate_limits": {"rpm:<user>": {"requests": 1000000000, "per": "minute"},
                  "tpm:<user>": {"tokens": 1000000000000, "per": "minute"},
                  "conc:<user>": {"concurrent": 100000}},"""
HOOK = """
  "hooks": {"allow": {"url": "%s", "timeout": "5s"}},"""


def make_config(mode: str, upstream: str, hook_url: str) -> str:
    wiring, sections = "", ""
    if mode == "quota":
        wiring, sections = ', "quotas": [{"bucket": "bench:<user>"}]', QUOTA
    elif mode == "ratelimit":
        wiring = ', "rate_limits": ["rpm:<user>", "tpm:<user>", "conc:<user>"]'
        sections = RATE_LIMITS
    elif mode == "hook":
        wiring = ', "send_hooks": [{"name": "allow", "events": ["pre_request"], '
        wiring += '"send": ["request_body"]}]'
        sections = HOOK % hook_url
    return CONFIG % {
        "up": upstream,
        "model": MODEL,
        "translated": TRANSLATED_MODEL,
        "wiring": wiring,
        "sections": sections,
    }


@dataclass(frozen=True)
class Scenario:
    #: "plain", "stream", "gemini" (streamed), "bedrock" (streamed), or "translated" and
    #: "translated-stream" (a Chat Completions client of an Anthropic model) and
    #: "responses-stream" (a Responses client of it, streamed: Codex on Claude)
    name: str
    connections: int

    @property
    def body(self) -> str:
        if self.name == "gemini":
            return json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        if self.name == "bedrock":
            return json.dumps(
                {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 100,
                    "messages": [{"role": "user", "content": "hi"}],
                }
            )
        if self.name == "responses-stream":
            return json.dumps({"model": TRANSLATED_MODEL, "input": "hi", "stream": True})
        model = TRANSLATED_MODEL if self.name.startswith("translated") else MODEL
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if self.name in ("stream", "translated-stream"):
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return json.dumps(body)

    def path(self, *, gateway: bool) -> str:
        if self.name == "gemini":
            return GEMINI_PATH
        if self.name == "bedrock":
            return ("/bedrock" if gateway else "") + BEDROCK_PATH
        return RESPONSES_PATH if self.name == "responses-stream" else PATH

    @property
    def streams(self) -> bool:
        return self.name not in ("plain", "translated")

    def __str__(self) -> str:
        return f"{self.name} @{self.connections}"


SCENARIOS = [Scenario(n, c) for c in (1, 32) for n in ("plain", "stream", "gemini", "bedrock")]


@dataclass
class Measured:
    """One wrk run against one target, with what the processes spent meanwhile."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float  # the measured process: irisgate, or the upstream for the baseline
    upstream_cpu_ms_per_req: float
    rss_peak_mib: float
    other_load_pct: float  # CPU used by processes outside the benchmark, % of one core
    switches_per_req: float  # context switches of the measured process's threads

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    rows: list[tuple[Scenario, Measured, Measured]] = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)
    # answered: complete responses through irisgate; cut_off: at most one in flight per
    # connection when wrk stops, which irisgate records too (as a client that went away)
    capture: dict[str, int] = field(default_factory=lambda: {"answered": 0, "cut_off": 0})
    exit_status: int | None = None
    log_problems: list[str] = field(default_factory=list)



def pinned(cpu: int, args: list[str]) -> list[str]:
    """`taskset` execs the command, so the pid the caller sees is the command's own."""
    return ["taskset", "-c", str(cpu), *args] if PINNING else args


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing it with apt-get", file=sys.stderr, flush=True)
        for command in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"]) * 2:
            subprocess.run(command, capture_output=True, check=False)
            if found := shutil.which("wrk"):
                break
    if not found:
        sys.exit("bench needs wrk: install it with `sudo apt-get install -y wrk` and run again")
    return found


def start_upstream(
    port: int, log: Path, args: list[str] | None = None
) -> subprocess.Popen[bytes]:
    """The fake upstream (or `args`, another server on `port`); its output (tracebacks of
    streams wrk cuts off) goes to `log`."""
    args = args or [sys.executable, str(HERE / "upstream.py"), "--port", str(port)]
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



def wrk(base: str, scenario: Scenario, seconds: int, *, gateway: bool) -> dict[str, int]:
    """Run wrk (1 thread) and return what bench/post.lua's done() printed."""
    args = [ensure_wrk(), "-t1", f"-c{scenario.connections}", f"-d{seconds}s", "--latency"]
    path = scenario.path(gateway=gateway)
    args += ["--timeout", "10s", "-s", str(HERE / "post.lua"), base + path]
    env = {**os.environ, "BENCH_BODY": scenario.body}
    if gateway and "key" in CLIENT_AUTH:
        env["BENCH_AUTH"] = f"Bearer {CLIENT_AUTH['key']}"
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


def measure(
    base: str, scenario: Scenario, seconds: int, pid: int, upstream: int, *, gateway: bool
) -> Measured:
    """wrk against `base`; CPU, RSS and context switches of `pid` (and the upstream's CPU)."""
    settle(pid)
    settle(upstream)
    cpu0, up0, ours0, busy0 = cpu_ms(pid), cpu_ms(upstream), own_cpu_ms(), machine_busy_ms()
    switches0, start = switches(pid), time.monotonic()
    with RssSampler(pid) as rss:
        stats = wrk(base, scenario, seconds, gateway=gateway)
        settle(pid)  # capture writes happen after the response: they are part of the cost
    used, up_used = cpu_ms(pid) - cpu0, cpu_ms(upstream) - up0
    ours = own_cpu_ms() - ours0 + used + (up_used if upstream != pid else 0)
    other_pct = (machine_busy_ms() - busy0 - ours) / (time.monotonic() - start) / 10
    done = max(stats["requests"], 1)
    return Measured(
        requests=stats["requests"],
        seconds=stats["duration_us"] / 1e6,
        errors=sum(stats[k] for k in ("connect", "read", "write", "status", "timeout")),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        cpu_ms_per_req=used / done,
        upstream_cpu_ms_per_req=up_used / done,
        rss_peak_mib=rss.peak,
        other_load_pct=max(other_pct, 0.0),
        switches_per_req=(switches(pid) - switches0) / done,
    )


def check_once(gateway: IrisgateServer, scenario: Scenario) -> None:
    """One request through irisgate, so a refusal is shown with its reason and the log."""
    request = urllib.request.Request(
        gateway.url + scenario.path(gateway=True),
        scenario.body.encode(),
        {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        body, log = exc.read().decode(errors="replace"), gateway.logs()[-4000:]
        sys.exit(f"irisgate answered {exc.code}: {body}\n--- irisgate log ---\n{log}")


def make_key(gateway: IrisgateServer) -> str:
    """An API key of the bench user (POST /api/keys as 127.0.0.1, that user by WhoIs)."""
    request = urllib.request.Request(
        gateway.url + "/api/keys", b'{"name": "bench"}', {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        secret: str = json.loads(resp.read())["secret"]
    return secret


def log_problems(log: str) -> list[str]:
    """irisgate's warning and error lines (JSON log lines and uvicorn's plain ones)."""
    bad = re.compile(r'^(WARNING|ERROR)|"level": ?"(warning|error|critical)"')
    return [line for line in log.splitlines() if bad.search(line)]


def count_recorded(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / "irisgate.db")) as db:
        return int(db.execute("SELECT count(*) FROM requests").fetchone()[0])


def run(tmp: Path, seconds: int, mode: str = "core") -> Results:
    """Start everything, warm up, measure every scenario, stop irisgate, count its records."""
    up_port = free_port()
    upstream = start_upstream(up_port, tmp / "upstream.log")
    direct = f"http://127.0.0.1:{up_port}"
    hook: subprocess.Popen[bytes] | None = None
    hook_port = free_port()
    if mode == "hook":
        hook_args = [sys.executable, "-m", "irisgate.testing.fake_hook", "--port", str(hook_port)]
        hook = start_upstream(hook_port, tmp / "hook.log", hook_args)
    localapi = FakeLocalAPI(tmp / "tailscaled.sock")
    localapi.add_user("127.0.0.1", LOGIN, "Bench User")
    gateway = IrisgateServer(
        make_config(mode, direct, f"http://127.0.0.1:{hook_port}/allow"),
        data_dir=tmp / "data",
        identity="tailscale",
        tailscaled_socket=str(tmp / "tailscaled.sock"),
    )
    gateway.args = pinned(GATEWAY_CPU, gateway.args)
    res = Results()
    try:
        localapi.start()
        gateway.start()
        assert gateway.process is not None
        pid = gateway.process.pid
        if mode == "key":
            CLIENT_AUTH["key"] = make_key(gateway)
        for sc in SCENARIOS[:4]:
            check_once(gateway, sc)
            res.capture["answered"] += 1
        print(f"irisgate (pid {pid}) on CPU {GATEWAY_CPU}; upstream (pid {upstream.pid}), wrk "
              f"and this script on CPU {LOAD_CPU}" if PINNING else "not pinned (< 2 CPUs)")
        res.rss["start"] = rss_mib(pid)
        for sc in SCENARIOS[4:]:  # warm-up at 32 connections, not reported
            wrk(direct, sc, WARMUP_SECONDS, gateway=False)
            answered = wrk(gateway.url, sc, WARMUP_SECONDS, gateway=True)["requests"]
            res.capture["answered"] += answered
            res.capture["cut_off"] += sc.connections
        settle(pid)
        res.rss["warm"] = rss_mib(pid)
        for sc in SCENARIOS:
            print(f"{sc} connections, {seconds} s each: direct, irisgate", flush=True)
            d = measure(direct, sc, seconds, upstream.pid, upstream.pid, gateway=False)
            g = measure(gateway.url, sc, seconds, pid, upstream.pid, gateway=True)
            res.capture["answered"] += g.requests
            res.capture["cut_off"] += sc.connections
            res.rows.append((sc, d, g))
        res.rss["after"] = rss_mib(pid)
        res.exit_status = gateway.stop()
        res.capture["recorded"] = count_recorded(tmp / "data")
        res.log_problems = log_problems(gateway.logs())
    finally:
        gateway.stop()
        localapi.stop()
        upstream.terminate()
        upstream.wait()
        if hook is not None:
            hook.terminate()
            hook.wait()
    return res



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
        f"{sc} ({d.other_load_pct:.0f}% / {g.other_load_pct:.0f}%)"
        for sc, d, g in rows
        if max(d.other_load_pct, g.other_load_pct) > NOISY_PCT
    ]
    if noisy:
        lines.append("NOISY: other processes used CPU (% of a core, direct / irisgate) during "
                     + ", ".join(noisy) + ": these numbers are not trustworthy, run when idle")
    return "\n".join(lines)


def targets(res: Results) -> list[tuple[str, str, bool]]:
    out: list[tuple[str, str, bool]] = []
    for sc, d, g in res.rows:
        if sc.connections == 1:
            added50, added99 = g.p50_ms - d.p50_ms, g.p99_ms - d.p99_ms
            out.append((f"added p50 <= 0.5 ms ({sc})", f"{added50:.3f} ms", added50 <= 0.5))
            out.append((f"added p99 <= 2 ms ({sc})", f"{added99:.3f} ms", added99 <= 2.0))
        limit, cpu = (1.0 if sc.streams else 0.5), g.cpu_ms_per_req
        out.append((f"CPU <= {limit} ms/request ({sc})", f"{cpu:.3f} ms", cpu <= limit))
        if sc.name == "plain" and sc.connections > 1:
            out.append((f">= 1,500 req/s ({sc})", f"{g.rps:,.0f}/s", g.rps >= 1500))
        errors = f"{d.errors} direct / {g.errors} irisgate"
        out.append((f"no failed requests ({sc})", errors, d.errors + g.errors == 0))
    peak = max(g.rss_peak_mib for _, _, g in res.rows)
    growth = res.rss["after"] - res.rss["warm"]
    out.append(("RSS <= 150 MiB (peak)", f"{peak:.1f} MiB", peak <= 150))
    out.append(("RSS flat: after - warm-up <= 10 MiB", f"{growth:+.1f} MiB", growth <= 10))
    recorded, answered = res.capture["recorded"], res.capture["answered"]
    ok = answered <= recorded <= answered + res.capture["cut_off"]
    out.append(("every request recorded", f"{recorded:,} rows / {answered:,} answered", ok))
    out.append(("clean stop: SIGTERM exits 0", f"exit status {res.exit_status}",
                res.exit_status == 0))
    return out


def report(res: Results, seconds: int, json_path: Path | None) -> None:
    print(f"\n{table(res.rows)}")
    print(f"irisgate RSS: {res.rss['start']:.1f} MiB at start, {res.rss['warm']:.1f} after "
          f"warm-up, {res.rss['after']:.1f} after the run")
    print("irisgate context switches per request: "
          + ", ".join(f"{sc} {g.switches_per_req:.1f}" for sc, _, g in res.rows))
    print(f"irisgate stopped by SIGTERM (exit status {res.exit_status}); "
          f"{len(res.log_problems)} warning/error lines in its log"
          + "".join(f"\n  {line[:200]}" for line in res.log_problems[:5]))
    cap = res.capture
    print(f"capture: {cap['recorded']:,} requests recorded, {cap['answered']:,} answered through "
          f"irisgate, up to {cap['cut_off']} more cut off in flight when wrk stopped\n")
    checks = targets(res)
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
                for sc, d, g in res.rows
            ],
            "rss_mib": res.rss,
            "capture": cap,
            "targets": [{"target": n, "value": v, "pass": ok} for n, v, ok in checks],
        }
        json_path.write_text(json.dumps(result, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (10)")
    parser.add_argument("--quick", action="store_true", help="2 seconds per scenario")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--mode", choices=MODES, default="core", help="core, quota, ratelimit, hook or key"
    )
    args = parser.parse_args()
    seconds = 2 if args.quick else args.duration
    ensure_wrk()
    if PINNING:
        os.sched_setaffinity(0, {LOAD_CPU})
    with tempfile.TemporaryDirectory(prefix="irisgate-bench-") as tmp:
        results = run(Path(tmp), seconds, args.mode)
    print(f"mode: {args.mode}")
    report(results, seconds, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
