"""Agent Config: copy-paste setup for common LLM clients, for this instance and this caller.

Snippets use the address the browser reached irisgate at and a model the caller is granted
for the API each client speaks. irisgate identifies callers by their network identity, so
the API key in each snippet is any non-empty text: clients insist on having one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from irisgate.access.grants import Access
from irisgate.snapshot import Snapshot

#: The key the snippets give clients that require one (irisgate ignores it).
PLACEHOLDER_KEY = "irisgate"


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
    chat = _granted(snapshot, access, "openai_chat")
    responses = _granted(snapshot, access, "openai_responses")
    messages = _granted(snapshot, access, "anthropic_messages")
    gemini = _granted(snapshot, access, "gemini_generate_content")
    granted = list(dict.fromkeys([*chat, *responses, *messages, *gemini]))
    snippets: list[Snippet] = []
    missing: list[str] = []
    key = PLACEHOLDER_KEY
    if messages:
        model = messages[0]
        snippets.append(
            Snippet(
                "claude-code",
                "Claude Code",
                "Point Claude Code at irisgate; the token can be any text.",
                f"export ANTHROPIC_BASE_URL={base_url}\n"
                f"export ANTHROPIC_AUTH_TOKEN={key}\n"
                f"claude --model {model}",
            )
        )
    else:
        missing.append("Claude Code")
    if responses:
        model = responses[0]
        snippets.append(
            Snippet(
                "codex",
                "Codex",
                "Add this to ~/.codex/config.toml, then run `codex`.",
                f'model = "{model}"\nmodel_provider = "irisgate"\n\n'
                "[model_providers.irisgate]\n"
                'name = "irisgate"\n'
                f'base_url = "{base_url}/v1"\n'
                'wire_api = "responses"',
            )
        )
    else:
        missing.append("Codex")
    if gemini:
        snippets.append(
            Snippet(
                "gemini-cli",
                "Gemini CLI",
                "Point Gemini CLI at irisgate; the key can be any text.",
                f"export GOOGLE_GEMINI_BASE_URL={base_url}\n"
                f"export GEMINI_API_KEY={key}\n"
                f"gemini --model {gemini[0]}",
            )
        )
    else:
        missing.append("Gemini CLI")
    if chat:
        model = chat[0]
        snippets.append(
            Snippet(
                "opencode",
                "OpenCode",
                "Save as opencode.json in your project (or ~/.config/opencode/).",
                "{\n"
                '  "$schema": "https://opencode.ai/config.json",\n'
                '  "provider": {\n'
                '    "irisgate": {\n'
                '      "npm": "@ai-sdk/openai-compatible",\n'
                '      "name": "irisgate",\n'
                f'      "options": {{ "baseURL": "{base_url}/v1", "apiKey": "{key}" }},\n'
                f'      "models": {{ "{model}": {{}} }}\n'
                "    }\n"
                "  },\n"
                f'  "model": "irisgate/{model}"\n'
                "}",
            )
        )
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
        missing.extend(["OpenCode", "OpenAI SDK", "curl (OpenAI format)"])
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
