"""The model picker's list: the caller's granted models whose provider speaks an API the chat
can hold a conversation over, i.e. an API format with a chat adapter
(`chat_adapter` on the format plug-in, gateway/formats/chatwire.py).

When the config curates the picker (`chat.models`), only the models matching one of its
entries are offered, in the entries' order, with the entry's label: a narrowing of what the
caller is granted, never a widening. A model left out cannot be used in chat at all.
"""

from __future__ import annotations

from typing import Any

from irisgate.access.grants import Access, glob_matches
from irisgate.chat.capabilities import accepts_images, supports_reasoning
from irisgate.config.model import ChatModel, Provider
from irisgate.gateway.formats import cloud, registry
from irisgate.gateway.formats.base import ApiFormat
from irisgate.gateway.formats.chatwire import ChatAdapter
from irisgate.snapshot import Snapshot

#: the API formats in the order the chat prefers them when a provider speaks several
FORMATS: tuple[ApiFormat, ...] = (
    registry.OPENAI_CHAT,
    registry.ANTHROPIC_MESSAGES,
    registry.OPENAI_RESPONSES,
    cloud.GEMINI,
    cloud.VERTEX_GENERATE,
    cloud.VERTEX_RAW_PREDICT,
    cloud.BEDROCK_CONVERSE,
    cloud.BEDROCK_INVOKE,
)


def chat_format(provider: Provider, model: str) -> ApiFormat | None:
    """The format the chat speaks to this provider about `model`: the first the provider
    accepts whose chat adapter serves the model."""
    return next(
        (
            f
            for f in FORMATS
            if f.chat_adapter is not None
            and provider.accepts(f.flag)
            and f.chat_adapter.serves(model)
        ),
        None,
    )


def _entry(provider: Provider, model: str, fmt: ApiFormat, adapter: ChatAdapter) -> dict[str, Any]:
    features = adapter.features
    return {
        "id": f"{provider.id}/{model}",
        "model": model,
        "provider": provider.id,
        "provider_name": provider.name or provider.id,
        "api": fmt.name,
        "api_title": fmt.title,
        "stream": "stream" in features,
        "tools": "tools" in features,
        "reasoning": "reasoning" in features and supports_reasoning(model),
        "images": "images" in features and accepts_images(model),
        "effort_off": adapter.effort_off,
        "label": "",
    }


def _offered(snapshot: Snapshot, access: Access) -> list[tuple[dict[str, Any], ChatAdapter]]:
    out: list[tuple[dict[str, Any], ChatAdapter]] = []
    for model, providers in snapshot.routes.models().items():
        for provider in providers:
            if not provider.enabled or not access.may_use_model(f"{provider.id}/{model}"):
                continue
            fmt = chat_format(provider, model)
            if fmt is None or fmt.chat_adapter is None:
                continue
            out.append((_entry(provider, model, fmt, fmt.chat_adapter), fmt.chat_adapter))
    return out


def _curated(
    entries: list[tuple[dict[str, Any], ChatAdapter]], curation: tuple[ChatModel, ...]
) -> list[tuple[dict[str, Any], ChatAdapter]]:
    """The entries matching `chat.models`, in its order, each once, labelled by the first
    entry it matches."""
    out: list[tuple[dict[str, Any], ChatAdapter]] = []
    taken: set[str] = set()
    for chosen in curation:
        for entry, adapter in entries:
            if entry["id"] not in taken and glob_matches(chosen.model, entry["id"]):
                taken.add(entry["id"])
                out.append(({**entry, "label": chosen.label}, adapter))
    return out


def _entries(snapshot: Snapshot, access: Access) -> list[tuple[dict[str, Any], ChatAdapter]]:
    offered = _offered(snapshot, access)
    curation = snapshot.config.chat_models
    return offered if curation is None else _curated(offered, curation)


def chat_models(snapshot: Snapshot, access: Access) -> list[dict[str, Any]]:
    """One entry per (provider, model) the caller may chat with, in the providers' order.

    `id` is the provider-qualified name (`openai/gpt-4o-mini`) so that a turn reaches exactly
    the provider the user picked; `api` and `api_title` name the API the chat speaks to it;
    `stream`, `tools`, `reasoning` and `images` what the chat offers with it: what the API
    has and, for reasoning and images, what the model does (`irisgate.chat.capabilities`);
    `label` the name `chat.models` gives it ('' for none).
    """
    return [entry for entry, _ in _entries(snapshot, access)]


def chat_model(
    snapshot: Snapshot, access: Access, model_id: str
) -> tuple[dict[str, Any], ChatAdapter] | None:
    """The picker's entry for `model_id` and its chat adapter; None when not offered."""
    return next(((e, a) for e, a in _entries(snapshot, access) if e["id"] == model_id), None)
