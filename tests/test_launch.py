"""`irisgate launch` against a running irisgate: what it asks, what it sets up, what it runs.

The real agents run in tests/agents (`make test-agents`). Here a stand-in program on PATH
reports the environment and files it was started with, so the exit code, the arguments and
the removal of the temporary settings folder are checked in `make test`.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from irisgate.testing.server import IrisgateServer

UPSTREAM = "http://127.0.0.1:9"  # never called: launch only reads the catalog


def launch_config() -> str:
    providers = {
        "openai": {
            "baseurl": UPSTREAM,
            "apikey": "sk-upstream",
            "models": ["gpt-5-mini", "gpt-5.1"],
            "compatibility": {"openai_chat": True, "openai_responses": True},
        },
        "old": {
            "baseurl": UPSTREAM,
            "apikey": "sk-old",
            "disabled": True,
            "models": ["claude-opus-4-1"],
            "compatibility": {"anthropic_messages": True},
        },
        "anthropic": {
            "baseurl": UPSTREAM,
            "apikey": "sk-ant",
            "authorization": "x-api-key",
            "models": ["claude-haiku-4-5", "claude-sonnet-4-5"],
            "compatibility": {"anthropic_messages": True},
        },
    }
    grants = [
        {
            "src": ["*"],
            "app": {
                "tailscale.com/cap/aperture": [
                    {"role": "user"},
                    {"models": "openai/gpt-5-mini"},
                    {"models": "anthropic/claude-sonnet-4-5"},
                    {"models": "old/**"},
                ]
            },
        }
    ]
    return json.dumps({"providers": providers, "grants": grants})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    with IrisgateServer(launch_config(), data_dir=tmp_path_factory.mktemp("gw")) as server:
        yield server


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "irisgate", "launch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_print_shows_the_setup_for_a_granted_model(gateway: IrisgateServer) -> None:
    shown = launch("--gateway", gateway.url, "--print", "claude-code", "-p", "hi there")
    assert shown.returncode == 0, shown.stderr
    # claude-opus-4-1 is granted but its provider is disabled; claude-haiku-4-5 is not granted
    assert shown.stdout.splitlines() == [
        "# irisgate launch claude-code: claude-sonnet-4-5 (anthropic_messages)",
        f"export ANTHROPIC_BASE_URL={gateway.url}",
        "export ANTHROPIC_AUTH_TOKEN=irisgate",
        "export ANTHROPIC_MODEL=claude-sonnet-4-5",
        "claude -p 'hi there'",
    ]


def test_print_takes_the_gateway_from_the_environment(gateway: IrisgateServer) -> None:
    shown = launch("--print", "codex", "exec", "hi", env={"IRISGATE_GATEWAY": gateway.url})
    assert shown.returncode == 0, shown.stderr
    command = shown.stdout.splitlines()[-1]
    assert command.startswith("codex -c 'model=\"gpt-5-mini\"' -c 'model_provider=\"irisgate\"'")
    assert f'base_url = "{gateway.url}/v1", wire_api = "responses"' in command
    assert command.endswith(" exec hi")


def test_print_shows_the_temporary_settings_file(gateway: IrisgateServer) -> None:
    shown = launch("--gateway", gateway.url, "--print", "--model", "gpt-5-mini", "opencode")
    assert shown.returncode == 0, shown.stderr
    exported = shown.stdout.split("export OPENCODE_CONFIG_CONTENT='", 1)[1].split("'\n", 1)[0]
    config = json.loads(exported)
    assert config["model"] == "irisgate/gpt-5-mini"
    assert config["provider"]["irisgate"]["options"]["baseURL"] == gateway.url + "/v1"
    assert config["provider"]["irisgate"]["npm"] == "@ai-sdk/openai-compatible"


def test_refusals_say_why(gateway: IrisgateServer) -> None:
    not_granted = launch("--gateway", gateway.url, "--print", "--model", "gpt-5.1", "codex")
    assert not_granted.returncode == 2
    assert "Codex cannot use 'gpt-5.1' here; models it can use: gpt-5-mini" in not_granted.stderr
    no_api = launch("--gateway", gateway.url, "--print", "gemini-cli")
    assert no_api.returncode == 2
    assert "no model you may use speaks the API Gemini CLI needs" in no_api.stderr
    unknown = launch("--gateway", gateway.url, "--print", "vim")
    assert "unknown agent 'vim' (known: claude-code, codex, gemini-cli, opencode)" in unknown.stderr
    unreachable = launch("--gateway", "http://127.0.0.1:9", "--print", "codex")
    assert unreachable.returncode == 2
    assert "cannot reach http://127.0.0.1:9/api/providers" in unreachable.stderr
    not_http = launch("--gateway", "file:///etc/passwd", "--print", "codex")
    assert "--gateway must be an http(s) URL" in not_http.stderr


@pytest.fixture(scope="module")
def translating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    """The same gateway with translation on for the Anthropic provider."""
    config = json.loads(launch_config())
    config["providers"]["anthropic"]["translate"] = True
    with IrisgateServer(json.dumps(config), data_dir=tmp_path_factory.mktemp("tr")) as server:
        yield server


def test_codex_on_a_translated_model_runs_without_openais_web_search(
    translating: IrisgateServer,
) -> None:
    """OpenAI's web search tool has no counterpart in another API: launch turns it off for
    a model only translation reaches, and only then."""
    url = translating.url
    shown = launch("--gateway", url, "--print", "--model", "claude-sonnet-4-5", "codex", "exec")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == (
        "# irisgate launch codex: claude-sonnet-4-5 (openai_responses)"
    )
    assert "-c 'web_search=\"disabled\"'" in shown.stdout.splitlines()[-1]
    direct = launch("--gateway", url, "--print", "--model", "gpt-5-mini", "codex", "exec")
    assert direct.returncode == 0, direct.stderr
    assert "web_search" not in direct.stdout


def stand_in(folder: Path, name: str) -> Path:
    """A program called `name` that reports its arguments, the variables launch sets and the
    Gemini settings file it was given, then exits 7."""
    script = folder / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib, sys\n"
        "home = os.environ.get('GEMINI_CLI_HOME', '')\n"
        "settings = pathlib.Path(home, '.gemini', 'settings.json') if home else None\n"
        "print(json.dumps({'argv': sys.argv[1:], 'home': home,\n"
        "    'model': os.environ.get('GEMINI_MODEL'),\n"
        "    'base': os.environ.get('GOOGLE_GEMINI_BASE_URL'),\n"
        "    'settings': json.loads(settings.read_text()) if settings else None}))\n"
        "sys.exit(7)\n",
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_launch_runs_the_agent_with_its_settings_and_returns_its_exit_code(
    tmp_path: Path, gateway: IrisgateServer
) -> None:
    config = json.loads(launch_config())
    config["providers"]["gemini"] = {
        "baseurl": UPSTREAM,
        "apikey": "AIza-upstream",
        "models": ["gemini-2.5-flash"],
        "compatibility": {"gemini_generate_content": True},
    }
    config["grants"][0]["app"]["tailscale.com/cap/aperture"].append({"models": "gemini/*"})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in(bin_dir, "gemini")
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    with IrisgateServer(json.dumps(config), data_dir=tmp_path / "gw") as gw:
        ran = launch(
            "--gateway",
            gw.url,
            "gemini-cli",
            "-p",
            "hi",
            "--skip-trust",
            env={"PATH": path, "TMPDIR": str(tmp_path)},
        )
    assert ran.returncode == 7, ran.stderr
    seen = json.loads(ran.stdout)
    assert seen["argv"] == ["-p", "hi", "--skip-trust"]
    assert seen["model"] == "gemini-2.5-flash" and seen["base"] == gw.url
    assert seen["settings"] == {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    assert Path(seen["home"]).parent == tmp_path
    assert not Path(seen["home"]).exists()  # removed after the run


def test_launch_without_the_agent_installed_says_how_to_install_it(
    tmp_path: Path, gateway: IrisgateServer
) -> None:
    ran = launch("--gateway", gateway.url, "codex", env={"PATH": str(tmp_path)})
    assert ran.returncode == 2
    assert "codex is not installed (npm install -g @openai/codex)" in ran.stderr


def test_launch_with_an_api_key_from_off_the_tailnet(tmp_path: Path) -> None:
    """A gateway in identity mode `keys` knows nobody without a key: launch sends the key
    (`--key` or IRISGATE_API_KEY) to read the catalog and gives it to the agent; `--print`
    never shows the secret."""
    with IrisgateServer(launch_config(), data_dir=tmp_path / "gw", identity="keys") as gw:
        made = subprocess.run(
            [
                *(sys.executable, "-m", "irisgate", "keys", "create", "ann@example.com"),
                *("--name", "laptop", "--data-dir", str(gw.data_dir)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        key = made.stdout.strip()
        refused = launch("--gateway", gw.url, "--print", "claude-code")
        assert refused.returncode == 2 and "HTTP 401" in refused.stderr
        shown = launch("--gateway", gw.url, "--print", "claude-code", env={"IRISGATE_API_KEY": key})
        assert shown.returncode == 0, shown.stderr
        assert "export ANTHROPIC_AUTH_TOKEN=$IRISGATE_API_KEY\n" in shown.stdout
        assert key not in shown.stdout
        flagged = launch("--gateway", gw.url, "--key", key, "--print", "codex")
        assert flagged.returncode == 0, flagged.stderr
        assert "gpt-5-mini" in flagged.stdout
