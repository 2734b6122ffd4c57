"""Dashboard scale benchmark: page and API render times over 1,000,000 recorded requests.

    .venv/bin/python bench/dashboard.py [--requests 1000000] [--days 90] [--users 500]
                                        [--repeat 5] [--json FILE]

Seeds a fresh SQLite database the way the batch writer would leave it after that many
requests: the rollups the dashboard reads (`usage_daily`, `usage_agent_daily`, `sessions`) and
the `requests` rows themselves (without captures; the timeline and Session logs read those).
Seeding writes the tables directly, which only a benchmark may do. Then it starts irisgate on
that database (serve identity, an admin and a user) and times every page: the HTML, and each
`/api/` call the page's module makes, `--repeat` times. A page's time is its HTML plus its API
calls one after another (the browser makes some in parallel, so this is an upper bound).

Not a test: it prints the figures and exits 0 unless the harness could not run. The machine
may be shared; run it twice and compare before trusting one figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from irisgate.store.database import open_database
from irisgate.store.tables import (
    requests,
    sessions,
    tool_use_daily,
    usage_agent_daily,
    usage_daily,
    usage_facets_daily,
)
from irisgate.testing.server import IrisgateServer
from irisgate.usage.agents import agent_name

MODELS = [
    ("gpt-4o-mini", "openai"),
    ("gpt-5-mini", "openai"),
    ("gpt-5.1", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
    ("claude-opus-4-1", "anthropic"),
]
AGENTS = ["claude-cli", "codex_cli_rs", "OpenAI/Python", "Anthropic/Python", "opencode", "curl"]
ADMIN = "user000@example.com"
USER = "user001@example.com"
CONFIG = """{
  "providers": {"openai": {"baseurl": "http://127.0.0.1:9", "apikey": "sk-bench",
      "models": ["gpt-4o-mini", "gpt-5-mini", "gpt-5.1"],
      "compatibility": {"openai_chat": true, "openai_responses": true}},
    "anthropic": {"baseurl": "http://127.0.0.1:9", "apikey": "sk-bench",
      "authorization": "x-api-key",
      "models": ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"],
      "compatibility": {"anthropic_messages": true}}},
  "database": {"headers": {"filterable": [{"name": "x-team"}]}},
  "grants": [
    {"src": ["ADMIN"], "app": {"tailscale.com/cap/aperture": [
      {"role": "admin"}, {"models": "**"}, {"filterable_headers": ["x-team"]}]}},
    {"src": ["*"], "app": {"tailscale.com/cap/aperture": [{"role": "user"}, {"models": "**"}]}}],
}""".replace("ADMIN", ADMIN)


def _plan(total: int, days: int, users: int, rng: random.Random) -> list[tuple[Any, ...]]:
    """(day, login, model, provider, agent, session, count) groups adding up to `total`."""
    today = datetime.now(UTC).date()
    cells = []
    for u in range(users):
        login = f"user{u:03d}@example.com"
        agent = AGENTS[u % len(AGENTS)]
        for d in range(days):
            if rng.random() < 0.35:  # not every user works every day
                continue
            day = today - timedelta(days=d)
            for model, provider in rng.sample(MODELS, 3):
                cells.append([day, login, model, provider, agent, f"s-{u}-{d}", 1])
    per_cell, extra = divmod(total, len(cells))
    for i, cell in enumerate(cells):
        cell[6] = per_cell + (1 if i < extra else 0)
    return [tuple(c) for c in cells]


async def seed(url: str, total: int, days: int, users: int) -> dict[str, int]:
    rng = random.Random(5)
    plan = _plan(total, days, users, rng)
    db = await open_database(url)
    daily: list[dict[str, Any]] = []
    agents: dict[tuple[date, str, str], dict[str, Any]] = {}
    sess: dict[tuple[str, str], dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    tools: dict[tuple[Any, ...], dict[str, Any]] = {}
    facets: list[dict[str, Any]] = []
    n = 0
    for day, login, model, provider, agent, session, count in plan:
        inp, out = 900 * count, 300 * count
        sums = {
            "requests": count,
            "input_tokens": inp,
            "output_tokens": out,
            "cache_read_tokens": 400 * count,
            "reasoning_tokens": 50 * count,
            "total_tokens": inp + out,
            "cost_nanodollars": 2_000_000 * count,
        }
        daily.append(
            {"day": day, "login_name": login, "model": model, "provider": provider, **sums}
        )
        # the facets rollup: every request's row, and the row of its indexed x-team header
        facet = {"day": day, "login_name": login, "model": model, "provider": provider}
        facet |= {"agent": agent_name(agent + "/1.0"), "status": 200, **sums}
        team = f"team-{int(login[4:7]) % 10}"
        facets += [
            {**facet, "header": "", "value": ""},
            {**facet, "header": "x-team", "value": team},
        ]
        a = agents.setdefault(
            (day, login, agent), {"day": day, "login_name": login, "agent": agent}
        )
        for k, v in sums.items():
            a[k] = a.get(k, 0) + v
        start = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        s = sess.setdefault(
            (login, session),
            {
                "login_name": login,
                "session_id": session,
                "agent": agent,
                "first_at": start,
                "last_at": start,
            },
        )
        for k in (
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "reasoning_tokens",
            "total_tokens",
            "cost_nanodollars",
        ):
            s[k] = s.get(k, 0) + sums[k]
        for i in range(count):
            at = start + timedelta(seconds=20 * i)
            s["last_at"] = max(s["last_at"], at)
            n += 1
            if n % 4 == 0:
                key = (day, login, session, "model", "", "", model)
                t = tools.setdefault(key, {"calls": 0, "errors": 0, "first_at": at})
                t["calls"] += 1 + n % 3
                t["last_at"] = at
            rows.append(
                {
                    "request_id": f"req_bench{n:020d}",
                    "started_at": at,
                    "login_name": login,
                    "model": model,
                    "provider": provider,
                    "status": 200,
                    "input_tokens": 900,
                    "output_tokens": 300,
                    "total_tokens": 1200,
                    "cost_nanodollars": 2_000_000,
                    "session_id": session,
                    "user_agent": agent + "/1.0",
                    "path": "/v1/chat/completions",
                    # every fourth answer asks for 1-3 tools (the Tool Use page's data)
                    "tool_calls": 0 if n % 4 else 1 + n % 3,
                }
            )
    rows.sort(key=lambda r: r["started_at"])
    async with db.begin() as conn:
        for table, values in (
            (usage_daily, daily),
            (usage_agent_daily, list(agents.values())),
            (sessions, list(sess.values())),
            (usage_facets_daily, facets),
            (tool_use_daily, [dict(zip(TOOL_KEY, k, strict=True)) | v for k, v in tools.items()]),
        ):
            for i in range(0, len(values), 20_000):
                await conn.execute(table.insert(), values[i : i + 20_000])
        for i in range(0, len(rows), 50_000):
            await conn.execute(requests.insert(), rows[i : i + 50_000])
    await db.close()
    return {
        "requests": len(rows),
        "usage_daily_rows": len(daily),
        "usage_agent_daily_rows": len(agents),
        "sessions": len(sess),
        "tool_use_daily_rows": len(tools),
        "usage_facets_daily_rows": len(facets),
    }


TOOL_KEY = ("day", "login_name", "session_id", "kind", "connector", "tool", "model")


def _get(url: str, login: str) -> tuple[float, int]:
    req = urllib.request.Request(url, headers={"Tailscale-User-Login": login})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()
        status = resp.status
    return (time.perf_counter() - started) * 1000, status


def _ago(days: int) -> date:
    return datetime.now(UTC).date() - timedelta(days=days)


def pages(login: str) -> dict[str, list[str]]:
    """Each page's HTML path and the API calls its module makes on load (default filters)."""
    return {
        "My Dashboard": ["/ui/dashboard", f"/api/dashboard/{login}"],
        "Agent Config": ["/ui/agent-config"],
        "Models": ["/ui/models", "/api/models"],
        "Usage Overview": [
            "/ui/usage",
            "/api/usage/summary",
            "/api/usage/users?sort=total_tokens&order=desc&page=1&per_page=10",
        ],
        "Usage (agent, status, header)": [
            "/ui/usage?agent=claude-cli&status=2xx&header=x-team&header_value=team-3",
            "/api/usage/filters",
            "/api/usage/summary?agent=claude-cli&status=2xx&header=x-team&header_value=team-3",
            "/api/usage/users?agent=claude-cli&status=2xx&header=x-team&header_value=team-3"
            "&sort=total_tokens&order=desc&page=1&per_page=10",
        ],
        "Tool Use": ["/ui/tool-use", "/api/usage/tools"],
        "Tool Use (90 days)": ["/ui/tool-use", f"/api/usage/tools?since={_ago(89)}"],
        "Tool Use (user, model)": [
            "/ui/tool-use",
            "/api/usage/tools?user=user007@example.com&model=gpt-5.1",
        ],
        "User Activity": ["/ui/admin/user-activity", "/api/usage/active-users"],
        "User Activity (4 of 7)": [
            "/ui/admin/user-activity",
            f"/api/usage/active-users?group=4of7&since={_ago(89)}",
        ],
        "User Dashboard": [
            "/ui/dashboard/user042@example.com",
            "/api/dashboard/user042@example.com",
        ],
        "Model Activity": ["/ui/admin/model-activity", "/api/usage/models"],
        "Agent Activity": ["/ui/admin/agent-activity", "/api/usage/agents"],
        "Session Logs": ["/ui/admin/sessions", "/api/sessions?page=1&per_page=20"],
        "Settings": ["/ui/admin/settings", "/api/config", "/api/config/versions"],
        "API Docs": ["/ui/admin/api-docs", "/api/openapi.json"],
        "Usage CSV (90 days)": [f"/api/usage/export.csv?since={_ago(89)}"],
        "Usage CSV (filtered)": [
            f"/api/usage/export.csv?since={_ago(89)}&agent=claude-cli&status=200"
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="irisgate-dash-bench-") as tmp:
        data = Path(tmp)
        started = time.monotonic()
        counts = asyncio.run(
            seed(f"sqlite:///{data / 'irisgate.db'}", args.requests, args.days, args.users)
        )
        print(f"seeded {counts} in {time.monotonic() - started:.0f} s", flush=True)
        config = data / "config.hujson"
        with IrisgateServer(CONFIG, data_dir=data, identity="serve") as gw:
            results: dict[str, Any] = {"seed": counts, "pages": {}}
            print(f"{'page':22} {'median ms':>10} {'max ms':>8}  slowest call (median ms)")
            for name, paths in pages(ADMIN).items():
                totals: list[float] = []
                per_call: dict[str, list[float]] = {p: [] for p in paths}
                for _ in range(args.repeat):
                    total = 0.0
                    for path in paths:
                        ms, status = _get(gw.url + path, ADMIN)
                        if status != 200:
                            print(f"{path}: HTTP {status}", file=sys.stderr)
                            return 1
                        per_call[path].append(ms)
                        total += ms
                    totals.append(total)
                slowest = max(per_call, key=lambda p: statistics.median(per_call[p]))
                median = statistics.median(totals)
                print(
                    f"{name:22} {median:10.0f} {max(totals):8.0f}  {slowest} "
                    f"({statistics.median(per_call[slowest]):.0f})",
                    flush=True,
                )
                results["pages"][name] = {
                    "median_ms": median,
                    "max_ms": max(totals),
                    "calls": {p: statistics.median(v) for p, v in per_call.items()},
                }
            ms, _ = _get(gw.url + f"/api/dashboard/{USER}", USER)
            results["user_dashboard_ms"] = ms
        del config
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
