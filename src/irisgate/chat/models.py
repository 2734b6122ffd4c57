"""The model picker's list: the caller's granted models whose provider speaks a chat API the
browser can stream from the gateway (OpenAI chat completions, else Anthropic messages)."""

from __future__ import annotations

from typing import Any

from irisgate.access.grants import Access
from irisgate.chat.capabilities import accepts_images, supports_reasoning
from irisgate.snapshot import Snapshot

#: Chat-capable APIs in order of preference: (compatibility flag, gateway path).
CHAT_APIS: tuple[tuple[str, str], ...] = (
    ("openai_chat", "/v1/chat/completions"),
    ("anthropic_messages", "/v1/messages"),
)


def chat_models(snapshot: Snapshot, access: Access) -> list[dict[str, Any]]:
    """One entry per (provider, model) the caller may chat with, in the providers' order.

    `id` is the provider-qualified name (`openai/gpt-4o-mini`) so that a turn reaches exactly
    the provider the user picked; `api` says which wire format the browser speaks to it;
    `reasoning` and `images` whether the composer offers an effort control and image
    attachments (`irisgate.chat.capabilities`).
    """
    out: list[dict[str, Any]] = []
    for model, providers in snapshot.routes.models().items():
        for provider in providers:
            fqn = f"{provider.id}/{model}"
            if not provider.enabled or not access.may_use_model(fqn):
                continue
            api = next(((flag, path) for flag, path in CHAT_APIS if provider.accepts(flag)), None)
            if api is None:
                continue
            out.append(
                {
                    "id": fqn,
                    "model": model,
                    "provider": provider.id,
                    "provider_name": provider.name or provider.id,
                    "api": api[0],
                    "path": api[1],
                    "reasoning": supports_reasoning(model),
                    "images": accepts_images(model),
                }
            )
    return out
