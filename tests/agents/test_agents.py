"""The real coding agents, from npm at the versions pinned in package.json, through irisgate.

`make test-agents` installs them (`npm ci` here) and runs this module; `make test` skips it
(set `IRISGATE_TEST_AGENTS=1` to run it by hand). Each agent runs headless with a prompt that
makes the fake vendor answer with a tool call, so every run is a tool turn: the agent calls a
tool, sends its result back and gets a text answer. Each agent is started twice:

- as the Agent Config page says (its snippet parsed from the page: settings files saved in a
  fresh home, variables exported, the program started);
- through `irisgate launch AGENT ARGS...`.

Both must exit 0 and leave irisgate's records of a tool turn: requests on the agent's own API
path, answered 200, priced, one of them with a tool call. Through translation
(docs/translation.md) Claude Code also runs a tool turn on an OpenAI and on a Gemini 3 model,
and Codex on an Anthropic model with reasoning effort on.
"""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

HERE = Path(__file__).resolve().parent
BIN = HERE / "node_modules" / ".bin"
PROMPT = "call tool: list the files here"
RUN_TIMEOUT_S = 300

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("IRISGATE_TEST_AGENTS") != "1",
        reason="the real agents run with `make test-agents` (IRISGATE_TEST_AGENTS=1)",
    ),
    pytest.mark.timeout(RUN_TIMEOUT_S + 120),
]


@dataclass(frozen=True)
class Case:
    agent: str  # irisgate's name (launch, the page's panel id)
    headless: tuple[str, ...]  # the agent's own arguments for one prompt without a terminal
    path: str  # the API path its requests use
    user_agent: str  # how its User-Agent starts


CASES = [
    Case("claude-code", ("-p", PROMPT, "--max-turns", "4"), "/v1/messages", "claude-cli/"),
    Case("codex", ("exec", "--skip-git-repo-check", PROMPT), "/v1/responses", "codex_exec/"),
    Case(
        "gemini-cli",
        ("-p", PROMPT, "--skip-trust"),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        "GeminiCLI",
    ),
    Case("opencode", ("run", PROMPT), "/v1/chat/completions", "opencode/"),
]


def agents_config(upstream: str, models: str = "**") -> str:
    config = {
        "providers": {
            "openai": {
                "baseurl": upstream,
                "apikey": "sk-upstream-openai",
                "models": ["gpt-5-mini"],
                "compatibility": {"openai_chat": True, "openai_responses": True},
            },
            "anthropic": {
                "baseurl": upstream,
                "apikey": "sk-ant-upstream",
                "authorization": "x-api-key",
                "models": ["claude-sonnet-4-5"],
                "compatibility": {"anthropic_messages": True},
            },
            "gemini": {
                "baseurl": upstream,
                "apikey": "AIza-upstream",
                "authorization": "x-goog-api-key",
                "models": ["gemini-2.5-flash"],
                "compatibility": {"gemini_generate_content": True},
            },
        },
        "grants": [
            {
                "src": ["*"],
                "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": models}]},
            }
        ],
    }
    return json.dumps(config, indent=2)


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        agents_config(fake_llm.base_url), data_dir=tmp_path_factory.mktemp("irisgate")
    )
    with server:
        yield server


def clean_env(home: Path, work: Path) -> dict[str, str]:
    """The environment of one run in `work`: a fresh home, no vendor credentials of this
    machine, the pinned agents first on PATH, nothing phoning home that need not. `PWD` as a
    shell sets it: OpenCode finds its project settings from it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "CODEX_", "OPENCODE")
        )
    }
    env.update(
        HOME=str(home),
        PWD=str(work),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        OPENCODE_DISABLE_AUTOUPDATE="1",
        NO_COLOR="1",
    )
    return env


def snippet(gateway: IrisgateServer, agent: str) -> str:
    page = httpx2.get(gateway.url + "/ui/agent-config", timeout=30)
    assert page.status_code == 200, page.text
    found = re.search(
        rf'id="panel-{re.escape(agent)}".*?<pre><code>(.*?)</code></pre>', page.text, re.S
    )
    assert found, f"no {agent} snippet on the Agent Config page"
    return html.unescape(found.group(1))


def apply_snippet(text: str, home: Path, work: Path, env: dict[str, str]) -> list[str]:
    """Do what the snippet says: save each `# PATH` file (`~/` in the fresh home, else in the
    working folder), export each variable; the last line is the command."""
    head, _, shell = text.rpartition("\n\n") if text.startswith("# ") else ("", "", text)
    parts = re.split(r"^# (\S+)\n", head, flags=re.M)
    for path, content in zip(parts[1::2], parts[2::2], strict=True):
        target = home / path[2:] if path.startswith("~/") else work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content.rstrip("\n") + "\n", encoding="utf-8")
    lines = shell.strip().splitlines()
    for line in lines[:-1]:
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0]
    return shlex.split(lines[-1])


def records_since(gateway: IrisgateServer, seen: set[str], case: Case) -> list[dict[str, Any]]:
    """The agent's new records, once they include a tool call and the turn after it."""
    deadline = time.monotonic() + 60
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        answer = httpx2.get(gateway.url + "/api/requests", params={"limit": 200}, timeout=30)
        rows = [r for r in answer.json()["requests"] if r["request_id"] not in seen]
        calls = [r for r in rows if r["tool_calls"]]
        if calls and len(rows) >= 2:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"{case.agent}: no tool turn recorded: {rows}")


def request_ids(gateway: IrisgateServer) -> set[str]:
    answer = httpx2.get(gateway.url + "/api/requests", params={"limit": 200}, timeout=30)
    return {r["request_id"] for r in answer.json()["requests"]}


def check_run(
    gateway: IrisgateServer, run: subprocess.CompletedProcess[str], seen: set[str], case: Case
) -> None:
    assert run.returncode == 0, f"{case.agent} exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    rows = records_since(gateway, seen, case)
    for row in rows:
        assert row["path"].startswith(case.path), row
        assert row["user_agent"].startswith(case.user_agent), row
        assert row["status"] == 200, row
        assert row["cost_nanodollars"] and row["cost_nanodollars"] > 0, row
    assert "tok0 tok1" in run.stdout  # the fake's text answer after the tool turn


@pytest.mark.parametrize("case", CASES, ids=[c.agent for c in CASES])
def test_agent_config_snippet_runs_a_tool_turn(
    gateway: IrisgateServer, case: Case, tmp_path: Path
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir(parents=True)
    env = clean_env(home, work)
    command = apply_snippet(snippet(gateway, case.agent), home, work, env)
    seen = request_ids(gateway)
    run = subprocess.run(
        [*command, *case.headless],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    check_run(gateway, run, seen, case)


@pytest.mark.parametrize("case", CASES, ids=[c.agent for c in CASES])
def test_irisgate_launch_runs_a_tool_turn(
    gateway: IrisgateServer, case: Case, tmp_path: Path
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir(parents=True)
    env = clean_env(home, work)
    seen = request_ids(gateway)
    launch = [sys.executable, "-m", "irisgate", "launch", "--gateway", gateway.url, case.agent]
    run = subprocess.run(
        [*launch, *case.headless],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    check_run(gateway, run, seen, case)


@pytest.fixture(scope="module")
def messages_only(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """A gateway granting only an Anthropic Messages model."""
    server = IrisgateServer(
        agents_config(fake_llm.base_url, "anthropic/**"),
        data_dir=tmp_path_factory.mktemp("irisgate-messages"),
    )
    with server:
        yield server


def test_opencode_uses_the_anthropic_provider_without_a_chat_model(
    messages_only: IrisgateServer, tmp_path: Path
) -> None:
    case = Case("opencode", ("run", PROMPT), "/v1/messages", "opencode/")
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir(parents=True)
    env = clean_env(home, work)
    text = snippet(messages_only, "opencode")
    assert '"npm": "@ai-sdk/anthropic"' in text
    command = apply_snippet(text, home, work, env)
    seen = request_ids(messages_only)
    run = subprocess.run(
        [*command, *case.headless],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    check_run(messages_only, run, seen, case)


def translating_server(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory, provider: str, model: str
) -> IrisgateServer:
    """A gateway whose only model is `provider`'s `model`, with `translate` on."""
    config = json.loads(agents_config(fake_llm.base_url))
    only = config["providers"][provider]
    flag = "openai_chat" if provider == "openai" else next(iter(only["compatibility"]))
    only.update(models=[model], compatibility={flag: True}, translate=True)
    config["providers"] = {provider: only}
    return IrisgateServer(json.dumps(config), data_dir=tmp_path_factory.mktemp(provider))


@pytest.fixture(scope="module")
def translating(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """A gateway whose only model is an OpenAI Chat Completions one."""
    with translating_server(fake_llm, tmp_path_factory, "openai", "gpt-5-mini") as server:
        yield server


@pytest.fixture(scope="module")
def translating_gemini(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """A gateway whose only model is a Gemini 3 one (it signs its function calls)."""
    with translating_server(fake_llm, tmp_path_factory, "gemini", GEMINI_3) as server:
        yield server


@pytest.fixture(scope="module")
def translating_anthropic(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    """A gateway whose only model is an Anthropic Messages one."""
    with translating_server(fake_llm, tmp_path_factory, "anthropic", "claude-sonnet-4-5") as server:
        yield server


GEMINI_3 = "gemini-3-pro-preview"


def run_translated(
    gateway: IrisgateServer, case: Case, model: str, tmp_path: Path
) -> list[dict[str, Any]]:
    """`irisgate launch` runs `case` on `model`, of another API; its records of a tool turn."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir(parents=True)
    env = clean_env(home, work)
    seen = request_ids(gateway)
    launch = [sys.executable, "-m", "irisgate", "launch", "--gateway", gateway.url]
    run = subprocess.run(
        [*launch, "--model", model, case.agent, *case.headless],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    check_run(gateway, run, seen, case)
    return records_since(gateway, seen, case)


def test_claude_code_runs_a_tool_turn_on_an_openai_model(
    translating: IrisgateServer, tmp_path: Path
) -> None:
    """Claude Code speaks Anthropic Messages; irisgate translates to Chat Completions."""
    case = Case("claude-code", ("-p", PROMPT, "--max-turns", "4"), "/v1/messages", "claude-cli/")
    rows = run_translated(translating, case, "gpt-5-mini", tmp_path)
    assert {row["upstream_format"] for row in rows} == {"openai_chat"}


def test_claude_code_runs_a_tool_turn_on_a_gemini_model(
    translating_gemini: IrisgateServer, tmp_path: Path
) -> None:
    """Claude Code on Gemini 3 through generateContent: the call's thought signature goes to
    Claude Code in a thinking block and comes back with the call (Gemini 3 refuses the
    tool turn without it)."""
    case = Case("claude-code", ("-p", PROMPT, "--max-turns", "4"), "/v1/messages", "claude-cli/")
    rows = run_translated(translating_gemini, case, GEMINI_3, tmp_path)
    assert {row["upstream_format"] for row in rows} == {"gemini_generate_content"}
    assert {row["model"] for row in rows} == {GEMINI_3}


def test_codex_runs_a_tool_turn_on_an_anthropic_model(
    translating_anthropic: IrisgateServer, tmp_path: Path
) -> None:
    """Codex speaks OpenAI Responses (with reasoning effort, which it sends by default for
    the models it knows); irisgate translates to Anthropic Messages with thinking on, and the
    thinking's signature rides through Codex in `encrypted_content` (the fake, as Anthropic,
    refuses the tool turn without it). Its sub-agent tools (a `namespace` tool) go along;
    launch turns its web search, OpenAI's own tool, off."""
    effort = ("-c", 'model_reasoning_effort="medium"')
    headless = ("exec", "--skip-git-repo-check", *effort, PROMPT)
    case = Case("codex", headless, "/v1/responses", "codex_exec/")
    rows = run_translated(translating_anthropic, case, "claude-sonnet-4-5", tmp_path)
    assert {row["upstream_format"] for row in rows} == {"anthropic_messages"}
    for row in rows:  # thinking was on for each request
        url = f"{translating_anthropic.url}/api/requests/{row['request_id']}"
        sent = json.loads(httpx2.get(url, timeout=30).json()["upstream_request_body"])
        assert sent["thinking"]["type"] == "enabled", sent.get("thinking")
