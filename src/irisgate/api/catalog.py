"""`GET /api/models`: every configured model grouped by provider, for the Models page.

Per model: the API formats its provider accepts, whether the caller may use it, and prices in
USD per million tokens (web search per thousand) as decimal strings. Price keys that the
pricing data lacks are left out rather than shown as zero.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from irisgate.gateway.formats.registry import ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_RESPONSES
from irisgate.web.http import json_response, require_role, runtime_of

_FORMATS = (OPENAI_CHAT, OPENAI_RESPONSES, ANTHROPIC_MESSAGES)
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


async def list_models(request: Request) -> Response:
    caller = await require_role(request)
    snapshot = runtime_of(request).snapshot
    groups: list[dict[str, Any]] = []
    for provider in snapshot.config.providers.values():
        formats = [f for f in _FORMATS if provider.accepts(f.flag)]
        basis = formats[0].cost_basis if formats else OPENAI_CHAT.cost_basis
        models = []
        for model in provider.models:
            pricing = snapshot.pricer.per_token(provider, basis, model)
            models.append(
                {
                    "id": model,
                    "granted": caller.access.may_use_model(f"{provider.id}/{model}"),
                    "formats": [f.flag for f in formats],
                    "prices_per_million": prices_per_million(pricing),
                }
            )
        groups.append(
            {
                "provider": provider.id,
                "name": provider.name or provider.id,
                "description": provider.description,
                "enabled": provider.enabled,
                "unavailable_reason": provider.unavailable_reason,
                "models": models,
            }
        )
    return json_response({"providers": groups})
