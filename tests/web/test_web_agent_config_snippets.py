"""The Agent Config page's SDK and curl snippets run as written and reach the model.

The coding agents' snippets are run with the real agents by `make test-agents`
(tests/agents); these need only what `make test` has: the official SDKs and curl.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer

ANSWER = " ".join(f"tok{i}" for i in range(20))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IrisgateServer, FakeLLM]]:
    providers = {
        "openai": {
            "baseurl": "",
            "apikey": "sk-upstream-openai",
            "models": ["gpt-4o-mini"],
            "compatibility": {"openai_chat": True},
        },
        "anthropic": {
            "baseurl": "",
            "apikey": "sk-ant-upstream",
            "authorization": "x-api-key",
            "models": ["claude-haiku-4-5"],
            "compatibility": {"anthropic_messages": True},
        },
    }
    grants = [{"src": ["*"], "app": {"tailscale.com/cap/aperture": [
        {"role": "user"}, {"models": "**"}
    ]}}]  # fmt: skip
    with FakeLLM() as fake:
        for provider in providers.values():
            provider["baseurl"] = fake.base_url
        config = json.dumps({"providers": providers, "grants": grants})
        with IrisgateServer(config, data_dir=tmp_path_factory.mktemp("gw")) as server:
            yield server, fake


def snippet(server: IrisgateServer, panel: str) -> str:
    page = httpx2.get(server.url + "/ui/agent-config", timeout=30)
    assert page.status_code == 200
    found = re.search(rf'id="panel-{panel}".*?<pre><code>(.*?)</code></pre>', page.text, re.S)
    assert found, f"no {panel} snippet"
    return html.unescape(found.group(1))


@pytest.mark.parametrize(
    ("panel", "path"),
    [("openai-sdk", "/v1/chat/completions"), ("anthropic-sdk", "/v1/messages")],
)
def test_sdk_snippets_run_as_written(
    gateway: tuple[IrisgateServer, FakeLLM], panel: str, path: str, tmp_path: Path
) -> None:
    server, fake = gateway
    script = tmp_path / "snippet.py"
    script.write_text(snippet(server, panel), encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == ANSWER
    assert fake.last_request.path == path


def test_curl_snippet_runs_as_written(gateway: tuple[IrisgateServer, FakeLLM]) -> None:
    server, fake = gateway
    ran = subprocess.run(
        ["bash", "-c", snippet(server, "curl")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["choices"][0]["message"]["content"] == ANSWER
    assert fake.last_request.path == "/v1/chat/completions"
