"""`GET /api/models`: every configured model grouped by provider, for the Models page.

Per model: the API formats its provider accepts (every format: OpenAI, Anthropic, Gemini,
Vertex, Bedrock), whether the caller may use it, prices in USD per million tokens (web search
per thousand) as decimal strings, and the minimal request the Models page's Test button sends
(`test`: the first accepted format's `probe` that can ask the model). Price keys that the
pricing data lacks are left out rather than shown as zero.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from irisgate.config.model import Provider
from irisgate.gateway.formats.base import ApiFormat
from irisgate.gateway.formats.registry import FORMATS, OPENAI_CHAT
from irisgate.handlers import json_response, require_role, runtime_of

#: per-token price keys of `Pricer.per_token`, and the unit they are shown in
_PER_MILLION = (
    "input",
    "output",
    "input_cache_read",
    "input_cache_write",
    "input_cache_write_1h",
    "image_input",
    "image_output",
)


def _money(value: Decimal) -> str:
    """`value` without trailing zeros but with at least two decimals: 0.15, 3.00, 0.075."""
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def prices_per_million(per_token: dict[str, str] | None) -> dict[str, str] | None:
    if per_token is None:
        return None
    out = {
        key: _money(Decimal(per_token[key]) * 1_000_000) for key in _PER_MILLION if key in per_token
    }
    if "web_search" in per_token:
        out["web_search_per_thousand"] = _money(Decimal(per_token["web_search"]) * 1000)
    return out


def formats_of(provider: Provider) -> list[ApiFormat]:
    """The API formats a provider accepts, in catalog order (`registry.FORMATS`)."""
    return [f for f in FORMATS if provider.accepts(f.flag)]


def cost_basis_of(formats: list[ApiFormat]) -> str:
    """The cost basis a provider's prices are looked up by: its first format's, as the
    gateway prices its requests (a provider's `cost_basis` setting wins in the pricer)."""
    return formats[0].cost_basis if formats else OPENAI_CHAT.cost_basis


def _test(formats: list[ApiFormat], model: str) -> dict[str, Any] | None:
    """The first accepted format's minimal request that can ask `model`."""
    for fmt in formats:
        probe = fmt.probe(model)
        if probe is not None:
            return {"format": fmt.flag, "path": probe[0], "body": probe[1]}
    return None


async def list_models(request: Request) -> Response:
    caller = await require_role(request)
    snapshot = runtime_of(request).snapshot
    groups: list[dict[str, Any]] = []
    for provider in snapshot.config.providers.values():
        formats = formats_of(provider)
        basis = cost_basis_of(formats)
        models = []
        for model in provider.models:
            pricing = snapshot.pricer.per_token(provider, basis, model)
            models.append(
                {
                    "id": model,
                    "granted": caller.access.may_use_model(f"{provider.id}/{model}"),
                    "formats": [f.flag for f in formats],
                    "prices_per_million": prices_per_million(pricing),
                    "test": _test(formats, model),
                }
            )
        groups.append(
            {
                "provider": provider.id,
                "name": provider.name or provider.id,
                "description": provider.description,
                "enabled": provider.enabled,
                "unavailable_reason": provider.unavailable_reason,
                "apis": [f.catalog_entry() for f in formats],
                "models": models,
            }
        )
    return json_response({"providers": groups})
