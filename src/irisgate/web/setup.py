"""Agent Config: copy-paste setup for common LLM clients, for this instance and this caller.

Snippets use the address the browser reached irisgate at and a model the caller is granted
for the API each client speaks. irisgate identifies callers by their network identity, so
the API key in each snippet is any non-empty text: clients insist on having one.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from irisgate.agentsetup import AGENTS, PLACEHOLDER_KEY, Setup, choose, setup
from irisgate.grants import Access
from irisgate.snapshot import Snapshot

#: the API formats the snippets use
_FLAGS = ("openai_chat", "openai_responses", "anthropic_messages", "gemini_generate_content")


@dataclass(frozen=True, slots=True)
class Snippet:
    id: str
    title: str
    intro: str
    code: str


@dataclass(frozen=True, slots=True)
class Guide:
    base_url: str
    has_providers: bool
    granted: list[str] = field(default_factory=list)
    snippets: list[Snippet] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # clients no granted model can serve


def _agent_snippet(found: Setup) -> Snippet:
    """A coding agent's setup as text: its files, then the shell lines that start it."""
    agent = found.agent
    parts = [f"# {f.user_path}\n{f.content}" for f in found.files]
    shell = [f"export {name}={shlex.quote(value)}" for name, value in found.env]
    parts.append("\n".join([*shell, agent.program]))
    if found.files:
        where = " and ".join(f.user_path for f in found.files)
        intro = f"Save the settings as {where} (merge them into yours), then start {agent.title}."
    else:
        intro = f"Point {agent.title} at irisgate; the token can be any text."
    intro += f" Or let irisgate do it: irisgate launch {agent.id}."
    if found.note:
        intro += " " + found.note
    return Snippet(agent.id, agent.title, intro, "\n".join(parts))


def _granted(snapshot: Snapshot, access: Access, flag: str) -> list[str]:
    found: list[str] = []
    for provider in snapshot.config.providers.values():
        if not provider.enabled or not provider.accepts(flag):
            continue
        for model in provider.models:
            if access.may_use_model(f"{provider.id}/{model}") and model not in found:
                found.append(model)
    return found


def guide(snapshot: Snapshot, access: Access, base_url: str) -> Guide:
    has_providers = any(p.enabled for p in snapshot.config.providers.values())
    offered = {flag: _granted(snapshot, access, flag) for flag in _FLAGS}
    chat = offered["openai_chat"]
    messages = offered["anthropic_messages"]
    granted = list(dict.fromkeys(m for models in offered.values() for m in models))
    snippets: list[Snippet] = []
    missing: list[str] = []
    key = PLACEHOLDER_KEY
    for agent in AGENTS.values():
        chosen = choose(agent, offered)
        if chosen is None:
            missing.append(agent.title)
        else:
            snippets.append(_agent_snippet(setup(agent, *chosen, base_url)))
    if chat:
        model = chat[0]
        snippets.append(
            Snippet(
                "openai-sdk",
                "OpenAI SDK (Python)",
                "pip install openai",
                "from openai import OpenAI\n\n"
                f'client = OpenAI(base_url="{base_url}/v1", api_key="{key}")\n'
                "reply = client.chat.completions.create(\n"
                f'    model="{model}",\n'
                '    messages=[{"role": "user", "content": "Hello"}],\n'
                ")\n"
                "print(reply.choices[0].message.content)",
            )
        )
        snippets.append(
            Snippet(
                "curl",
                "curl",
                "A plain HTTP request; no key needed.",
                f"curl {base_url}/v1/chat/completions \\\n"
                "  -H 'content-type: application/json' \\\n"
                f'  -d \'{{"model": "{model}", "messages": '
                '[{"role": "user", "content": "Hello"}]}\'',
            )
        )
    else:
        missing.extend(["OpenAI SDK", "curl (OpenAI format)"])
    if messages:
        snippets.append(
            Snippet(
                "anthropic-sdk",
                "Anthropic SDK (Python)",
                "pip install anthropic",
                "import anthropic\n\n"
                f'client = anthropic.Anthropic(base_url="{base_url}", api_key="{key}")\n'
                "reply = client.messages.create(\n"
                f'    model="{messages[0]}",\n'
                "    max_tokens=256,\n"
                '    messages=[{"role": "user", "content": "Hello"}],\n'
                ")\n"
                "print(reply.content[0].text)",
            )
        )
    else:
        missing.append("Anthropic SDK")
    return Guide(base_url, has_providers, granted, snippets, missing)
