"""What a request may cost, reserved at admission before the answer is known.

With an output limit, the estimate is the prompt (its JSON size / 4 as tokens: more than the
real count, on purpose) plus the limit, priced like the real answer will be: an upper bound.
Output-limit fields by API: `max_tokens` (Anthropic, OpenAI chat), `max_completion_tokens`
(OpenAI chat), `max_output_tokens` (OpenAI Responses), `generationConfig.maxOutputTokens`
(Gemini).

Without an output limit, the answer's length is unknown: the estimate is the prompt plus the
model's *typical* output, learned from the answers this process has seen of that model (it
rises at once to a longer answer and decays a fifth of the way towards each shorter one;
`SEED_OUTPUT_TOKENS` before the first), capped by `--quota-max-reservation`. A request for a
model without a price reserves each bucket's `default_estimate` instead.

A request that asks for units (images) of a model priced per unit reserves exactly what they
cost (`n` images at the size and quality asked: usage/unitprices.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from irisgate.config.model import Provider
from irisgate.usage.pricing import Pricer
from irisgate.usage.tokens import Usage
from irisgate.usage.unitprices import Units

_LIMIT_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
#: output tokens assumed for a model before this process has seen one of its answers
SEED_OUTPUT_TOKENS = 4096
#: models whose typical output is remembered (one entry each; then the oldest goes)
_TYPICAL_MODELS = 1024


@dataclass(frozen=True, slots=True)
class Guess:
    amount: int | None  # nanodollars; None: the model has no price
    limited: bool  # from the request's output limit (an upper bound), not a typical answer
    model: str = ""  # provider/model whose answers teach the typical output


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


class TypicalOutput:
    """Output tokens of a typical answer, per model, from the answers this process saw."""

    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}

    def of(self, model: str) -> int:
        return round(self._tokens.get(model, SEED_OUTPUT_TOKENS))

    def learn(self, model: str, tokens: int) -> None:
        known = self._tokens.pop(model, None)
        if known is None and len(self._tokens) >= _TYPICAL_MODELS:
            del self._tokens[next(iter(self._tokens))]
        typical = tokens if known is None else max(tokens, known + (tokens - known) / 5)
        self._tokens[model] = typical


def estimate(
    pricer: Pricer,
    typical: TypicalOutput,
    *,
    provider: Provider,
    format_basis: str,
    model: str,
    body: dict[str, Any],
    body_size: int,
    cap: int,
    units: Units | None = None,
) -> Guess:
    """What this request may cost (see module doc)."""
    key = f"{provider.id}/{model}"
    # asked in units (images): priced per unit when the model is; a count known only from
    # the answer (seconds of audio) is guessed like tokens
    if units is not None and units.count:
        per_unit, _ = pricer.unit_cost(provider, format_basis, model, units)
        if per_unit is not None:
            return Guess(per_unit, limited=True, model=key)
    limit = output_limit(body)
    output = limit if limit is not None else typical.of(key)
    usage = Usage(input_tokens=body_size // 4 + 1, output_tokens=output)
    cost, _ = pricer.cost(provider, format_basis, model, usage)
    if limit is not None or cost is None:
        return Guess(cost, limited=limit is not None, model=key)
    return Guess(min(cost, cap), limited=False, model=key)
