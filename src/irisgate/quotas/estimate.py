"""What a request may cost, reserved at admission before the answer is known.

The estimate is the prompt (its JSON size / 4 as tokens: more than the real count, on
purpose) plus the request's output limit, priced like the real answer will be. A request
without an output limit, or for a model without a price, reserves each bucket's
`default_estimate` instead. Output-limit fields by API: `max_tokens` (Anthropic, OpenAI chat),
`max_completion_tokens` (OpenAI chat), `max_output_tokens` (OpenAI Responses),
`generationConfig.maxOutputTokens` (Gemini).
"""

from __future__ import annotations

from typing import Any

from irisgate.config.model import Provider
from irisgate.usage.pricing import Pricer
from irisgate.usage.tokens import Usage

_LIMIT_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def output_limit(body: dict[str, Any]) -> int | None:
    for key in _LIMIT_KEYS:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    generation = body.get("generationConfig")
    if isinstance(generation, dict):
        value = generation.get("maxOutputTokens")
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def estimate(
    pricer: Pricer,
    *,
    provider: Provider,
    format_basis: str,
    model: str,
    body: dict[str, Any],
    body_size: int,
) -> int | None:
    """Nanodollars this request may cost at most (roughly), or None when unknown."""
    limit = output_limit(body)
    if limit is None:
        return None
    usage = Usage(input_tokens=body_size // 4 + 1, output_tokens=limit)
    cost, _ = pricer.cost(provider, format_basis, model, usage)
    return cost
