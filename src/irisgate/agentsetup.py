"""How each coding agent is pointed at irisgate, written once for its two users.

The Agent Config page (`irisgate.web.setup`) shows a `Setup` as copy-paste text: variables
to export and files to save. `irisgate launch` (`irisgate.launch`) applies the same `Setup`
to one run of the agent: the variables go into its environment, files into a temporary
folder named by a variable (or straight into a variable), removed after the run, so the
person's own settings are never rewritten.

What each agent needs, checked against the pinned versions in tests/agents (`make
test-agents`):

- Claude Code speaks Anthropic Messages: `ANTHROPIC_BASE_URL` (the root; it appends
  `/v1/messages`), a token in `ANTHROPIC_AUTH_TOKEN`, the model in `ANTHROPIC_MODEL`.
- Codex speaks OpenAI Responses through a `model_providers` entry with `wire_api =
  "responses"` (in `~/.codex/config.toml`, or as `-c` overrides, which launch uses). On a
  model only translation reaches, its web search is turned off (`web_search = "disabled"`):
  that tool is OpenAI's own, run by OpenAI, and no other API can carry it.
- Gemini CLI speaks the Gemini API at `GOOGLE_GEMINI_BASE_URL`, with `GEMINI_API_KEY` and
  `GEMINI_MODEL`; since 0.61 it also needs `security.auth.selectedType: "gemini-api-key"` in
  its settings (else it exits 41, "Invalid auth method selected"), and headless runs in a
  folder not yet trusted need `--skip-trust` (else exit 55).
- OpenCode takes a provider in its JSON config: the bundled `@ai-sdk/openai-compatible`
  for a Chat Completions model, else `@ai-sdk/anthropic` for a Messages model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The key agents are given where they insist on one (irisgate identifies the caller by
#: network identity and ignores it).
PLACEHOLDER_KEY = "irisgate"


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    title: str
    program: str
    package: str  # the npm package that installs `program`
    flags: tuple[str, ...]  # the API formats it can use, preferred first


AGENTS: dict[str, Agent] = {
    agent.id: agent
    for agent in (
        Agent(
            "claude-code",
            "Claude Code",
            "claude",
            "@anthropic-ai/claude-code",
            ("anthropic_messages",),
        ),
        Agent("codex", "Codex", "codex", "@openai/codex", ("openai_responses",)),
        Agent(
            "gemini-cli", "Gemini CLI", "gemini", "@google/gemini-cli", ("gemini_generate_content",)
        ),
        Agent(
            "opencode", "OpenCode", "opencode", "opencode-ai", ("openai_chat", "anthropic_messages")
        ),
    )
}


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """A settings file of an agent.

    `user_path` is where a person saves it. At launch it goes where `launch_var` says: with a
    `launch_relative` path the variable names a temporary folder holding the file there;
    without one the variable holds the content itself; without a variable launch does not
    need the file (its `Setup.launch_args` say the same).
    """

    user_path: str
    content: str
    launch_var: str = ""
    launch_relative: str = ""


@dataclass(frozen=True, slots=True)
class Setup:
    agent: Agent
    flag: str  # the API format the agent will use
    model: str
    env: tuple[tuple[str, str], ...]
    files: tuple[ConfigFile, ...] = ()
    launch_args: tuple[str, ...] = ()  # launch puts these before the caller's arguments
    note: str = ""  # what else a person should know


def choose(
    agent: Agent, offered: Mapping[str, Sequence[str]], model: str | None = None
) -> tuple[str, str] | None:
    """(API format, model) the agent should use among `offered` (format -> granted models):
    `model` if given and usable, else the first model of its most preferred format."""
    for flag in agent.flags:
        models = offered.get(flag, ())
        if model is None and models:
            return flag, models[0]
        if model is not None and model in models:
            return flag, model
    return None


def setup(
    agent: Agent,
    flag: str,
    model: str,
    base_url: str,
    key: str = PLACEHOLDER_KEY,
    *,
    translated: bool = False,
) -> Setup:
    """How `agent` reaches `model` over `flag` at `base_url` (irisgate's root URL);
    `translated`: only through translation (docs/translation.md)."""
    base_url = base_url.rstrip("/")
    if agent.id == "claude-code":
        return _claude_code(agent, flag, model, base_url, key)
    if agent.id == "codex":
        return _codex(agent, flag, model, base_url, translated)
    if agent.id == "gemini-cli":
        return _gemini_cli(agent, flag, model, base_url, key)
    return _opencode(agent, flag, model, base_url, key)


def _claude_code(agent: Agent, flag: str, model: str, base_url: str, key: str) -> Setup:
    env = (
        ("ANTHROPIC_BASE_URL", base_url),
        ("ANTHROPIC_AUTH_TOKEN", key),
        ("ANTHROPIC_MODEL", model),
    )
    return Setup(agent, flag, model, env)


def _codex(agent: Agent, flag: str, model: str, base_url: str, translated: bool) -> Setup:
    provider = {"name": "irisgate", "base_url": f"{base_url}/v1", "wire_api": "responses"}
    # OpenAI's own web search tool cannot be translated to another API
    no_search = ('web_search = "disabled"\n',) if translated else ()
    content = (
        f"model = {_toml(model)}\n"
        'model_provider = "irisgate"\n'
        + "".join(no_search)
        + "\n[model_providers.irisgate]\n"
        + "".join(f"{name} = {_toml(value)}\n" for name, value in provider.items())
    )
    inline = ", ".join(f"{name} = {_toml(value)}" for name, value in provider.items())
    args = (
        "-c",
        f"model={_toml(model)}",
        "-c",
        'model_provider="irisgate"',
        *(("-c", 'web_search="disabled"') if translated else ()),
        "-c",
        f"model_providers.irisgate={{ {inline} }}",
    )
    return Setup(agent, flag, model, (), (ConfigFile("~/.codex/config.toml", content),), args)


def _gemini_cli(agent: Agent, flag: str, model: str, base_url: str, key: str) -> Setup:
    settings = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
    env = (
        ("GOOGLE_GEMINI_BASE_URL", base_url),
        ("GEMINI_API_KEY", key),
        ("GEMINI_MODEL", model),
    )
    file = ConfigFile(
        "~/.gemini/settings.json",
        json.dumps(settings, indent=2) + "\n",
        launch_var="GEMINI_CLI_HOME",
        launch_relative=".gemini/settings.json",
    )
    note = "Headless runs (gemini -p) in a folder you have not trusted need --skip-trust."
    return Setup(agent, flag, model, env, (file,), note=note)


def _opencode(agent: Agent, flag: str, model: str, base_url: str, key: str) -> Setup:
    package = "@ai-sdk/openai-compatible" if flag == "openai_chat" else "@ai-sdk/anthropic"
    config = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "irisgate": {
                "npm": package,
                "name": "irisgate",
                "options": {"baseURL": f"{base_url}/v1", "apiKey": key},
                "models": {model: {}},
            }
        },
        "model": f"irisgate/{model}",
    }
    file = ConfigFile(
        "opencode.json",
        json.dumps(config, indent=2) + "\n",
        launch_var="OPENCODE_CONFIG_CONTENT",
    )
    return Setup(agent, flag, model, (), (file,))


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these values)."""
    return json.dumps(value)
