"""Cost of a request in integer nanodollars, from genai-prices.

The cost basis of a provider is its `cost_basis`, else (while `auto_cost_basis` is on) the one
inferred from the API format. `model_cost_map` entries (first match wins) rename the model for
the price lookup and scale the result. A model without a known price is *unpriced*: its
tokens are recorded and its cost is None, never a guessed number.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from operator import attrgetter
from typing import Any

import genai_prices
from genai_prices import types as gp_types

from irisgate.config.model import Config, CostMapEntry, Provider
from irisgate.usage.tokens import Usage
from irisgate.usage.unitprices import Units, unit_price

#: cost basis -> genai-prices provider id (None: let genai-prices pick from the model name)
BASIS_PROVIDER: dict[str, str | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "vertex": "google",
    "bedrock": "aws",
    "bedrock-us": "aws",
    "bedrock-eu": "aws",
    "bedrock-ap": "aws",
    "azure": "azure",
    "azure-eu": "azure",
    "openrouter": "openrouter",
    "vercel": None,
}

NANO = Decimal(1_000_000_000)
#: (provider, format basis, model) lookups a `Pricer` remembers before starting over
_LOOKUPS = 4096

# Bedrock cross-region inference profiles (`us.`, `eu.`, `apac.`, ...) cost what the in-region
# model costs; `global.` profiles are priced apart, so that prefix is never stripped.
_BEDROCK_REGION = re.compile(r"(?:us|eu|apac|jp|au|ca|us-gov)\.(?=[a-z0-9-]+\.)")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?\Z")


def price_names(basis: str, model: str) -> tuple[str, ...]:
    """The names to try, in order, when pricing `model` under `basis`: the id as given, then
    vendor spellings genai-prices may know it by (Bedrock without the region prefix and the
    `-v1:0` version suffix, Vertex without `@date`). Each is the same model, so a match is
    never a different model's price; no match at all leaves the request unpriced."""
    names = [model]
    if basis.startswith("bedrock"):
        bare = _BEDROCK_REGION.sub("", model, count=1)
        names += [bare, _BEDROCK_VERSION.sub("", bare)]
    elif basis in ("vertex", "google") and "@" in model:
        names.append(model.partition("@")[0])
    return tuple(dict.fromkeys(names))


@lru_cache(maxsize=256)
def _go_glob(pattern: str) -> re.Pattern[str]:
    """Go path.Match: `*` any run of non-`/`, `?` one non-`/` character."""
    out = ["[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(out) + r"\Z")


@lru_cache(maxsize=4096)
def _model_price(provider_id: str | None, model: str) -> _Rates | None:
    probe = genai_prices.Usage(input_tokens=1)
    try:
        calc = genai_prices.calc_price(probe, model, provider_id=provider_id)
    except LookupError:
        return None
    return _Rates(calc.model_price)


def _base(price: Any) -> Decimal | None:
    if price is None:
        return None
    if isinstance(price, Decimal):
        return price
    base = getattr(price, "base", None)
    return base if isinstance(base, Decimal) else None


class Pricer:
    """Prices of one config version; lookups are cached per (basis, model)."""

    def __init__(self, config: Config) -> None:
        self._auto = config.auto_cost_basis
        #: (id(provider), format basis, model) -> (provider, `lookup`'s answer); the provider
        #: is kept so that its id cannot be reused by another object while it is remembered
        self._looked_up: dict[tuple[int, str, str], tuple[Provider, _Lookup]] = {}

    def basis_for(self, provider: Provider, format_basis: str) -> str | None:
        if provider.cost_basis:
            return provider.cost_basis
        return format_basis if self._auto else None

    def lookup(self, provider: Provider, format_basis: str, model: str) -> _Lookup:
        """(price, "<basis>/<pricing model>", adjustment); price None when unpriced.
        Remembered per provider, format basis and model (it depends on nothing else)."""
        key = (id(provider), format_basis, model)
        known = self._looked_up.get(key)
        if known is not None and known[0] is provider:
            return known[1]
        found = self._lookup(provider, format_basis, model)
        if len(self._looked_up) >= _LOOKUPS:
            self._looked_up.clear()
        self._looked_up[key] = (provider, found)
        return found

    def _lookup(self, provider: Provider, format_basis: str, model: str) -> _Lookup:
        basis = self.basis_for(provider, format_basis)
        if basis is None:
            return None, "", 1.0
        as_model, adjustment = model, 1.0
        entry = _first_match(provider.model_cost_map, model)
        if entry is not None:
            as_model, adjustment = entry.as_model, entry.adjustment
        provider_id = BASIS_PROVIDER.get(basis)
        for name in price_names(basis, as_model):
            price = _model_price(provider_id, name)
            if price is not None:
                return price, f"{basis}/{name}", adjustment
        return None, "", adjustment

    def cost(
        self, provider: Provider, format_basis: str, model: str, usage: Usage
    ) -> tuple[int | None, str]:
        """(nanodollars or None when unpriced, cost basis label)."""
        price, label, adjustment = self.lookup(provider, format_basis, model)
        if price is None:
            return None, ""
        total = price.cost(usage)
        if adjustment != 1.0:
            total *= Decimal(repr(adjustment))
        return int(total.to_integral_value(ROUND_HALF_EVEN)), label

    def unit_cost(
        self, provider: Provider, format_basis: str, model: str, units: Units
    ) -> tuple[int | None, str]:
        """(nanodollars or None when unpriced, cost basis label) of a request priced per
        unit (usage/unitprices.py); `model_cost_map` applies as for tokens."""
        basis = self.basis_for(provider, format_basis)
        if basis is None:
            return None, ""
        as_model, adjustment = model, 1.0
        entry = _first_match(provider.model_cost_map, model)
        if entry is not None:
            as_model, adjustment = entry.as_model, entry.adjustment
        price = unit_price(basis, as_model, units)
        if price is None:
            return None, ""
        total = price * units.count * NANO * Decimal(repr(adjustment))
        return int(total.to_integral_value(ROUND_HALF_EVEN)), f"{basis}/{as_model}"

    def per_token(self, provider: Provider, format_basis: str, model: str) -> dict[str, str] | None:
        """Per-token USD prices as decimal strings (the `/v1/models` `pricing` object)."""
        price, _, adjustment = self.lookup(provider, format_basis, model)
        if price is None:
            return None
        scale = Decimal(repr(adjustment))
        fields = {
            "input": ("input_mtok", 1_000_000),
            "output": ("output_mtok", 1_000_000),
            "input_cache_read": ("cache_read_mtok", 1_000_000),
            "input_cache_write": ("cache_write_mtok", 1_000_000),
            "input_cache_write_1h": ("cache_write_1h_mtok", 1_000_000),
            "image_input": ("input_image_mtok", 1_000_000),
            "image_output": ("output_image_mtok", 1_000_000),
            "web_search": ("web_searches_kcount", 1_000),
        }
        out: dict[str, str] = {}
        for key, (attr, per) in fields.items():
            value = _base(getattr(price.price, attr, None))
            if value is not None:
                out[key] = decimal_text(value * scale / per)
        return out


# Usage fields, their genai-prices names, and whether they are part of the prompt (input) or
# of the completion (output); the latter decides how the probes below stay consistent.
_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("cache_read_tokens", "cache_read_tokens", "input"),
    ("cache_write_5m_tokens", "cache_write_tokens", "input"),
    ("cache_write_1h_tokens", "cache_write_1h_tokens", "input"),
    ("image_input_tokens", "input_image_tokens", "input"),
    ("image_output_tokens", "output_image_tokens", "output"),
    ("web_search_count", "web_searches", "none"),
)
_STEP = 1000
#: a `Usage`'s counts of the `_FIELDS`, as one tuple
_field_counts = attrgetter(*(name for name, _, _ in _FIELDS))


def _genai_usage(**counts: int) -> genai_prices.Usage:
    writes = counts.pop("cache_write_tokens", 0) + counts.get("cache_write_1h_tokens", 0)
    return genai_prices.Usage(cache_write_tokens=writes, **counts)


def _exact(price: gp_types.ModelPrice, **counts: int) -> Decimal:
    calc: Decimal = price.calc_price(_genai_usage(**counts))["total_price"]
    return calc * NANO


class _Rates:
    """A model's price as nanodollars per unit of each usage field, per input-size tier.

    genai-prices is exact but costs tens of microseconds a call; a price is linear in every
    usage field within one tier (tiers switch on the prompt size), so the per-unit rates are
    measured once per tier by probing genai-prices itself, and a request's cost is then a
    handful of multiplications. tests/usage checks this against genai-prices directly.
    """

    def __init__(self, price: gp_types.ModelPrice) -> None:
        self.price = price
        starts = {
            tier.start
            for value in vars(price).values()
            if isinstance(value, gp_types.TieredPrices)
            for tier in value.tiers
        }
        self._starts = sorted(starts)
        self._tiers: dict[int, tuple[Decimal, ...] | None] = {}

    def cost(self, usage: Usage) -> Decimal:
        tier = bisect_left(self._starts, usage.input_tokens)  # tier starts below the prompt
        rates = self._tiers.get(tier, ())
        if rates == ():
            rates = self._tiers[tier] = self._measure(tier)
        if rates is None:  # genai-prices would not take the probes: price exactly
            return _exact(
                self.price,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_5m_tokens,
                cache_write_1h_tokens=usage.cache_write_1h_tokens,
                input_image_tokens=usage.image_input_tokens,
                output_image_tokens=usage.image_output_tokens,
                web_searches=usage.web_search_count,
            )
        total = rates[0] * usage.input_tokens + rates[1] * usage.output_tokens
        counts = _field_counts(usage)
        if any(counts):  # most requests have none of them
            for rate, count in zip(rates[2:], counts, strict=True):
                if count:
                    total += rate * count
        return total

    def _measure(self, tier: int) -> tuple[Decimal, ...] | None:
        low = self._starts[tier - 1] if tier else 0
        high = self._starts[tier] if tier < len(self._starts) else low + 10 * _STEP
        prompt = low + max(2 * _STEP, (high - low) // 2) if tier else min(high, 10 * _STEP)
        prompt = max(prompt, 2 * _STEP)
        base = {"input_tokens": prompt, "output_tokens": 2 * _STEP}
        try:
            at_base = _exact(self.price, **base)
            per_input = at_base - _exact(self.price, **{**base, "input_tokens": prompt - _STEP})
            per_output = at_base - _exact(self.price, **{**base, "output_tokens": _STEP})
            rates = [per_input / _STEP, per_output / _STEP]
            for _, genai_name, _ in _FIELDS:
                probe = {**base, genai_name: _STEP}
                rates.append((_exact(self.price, **probe) - at_base) / _STEP)
        except (ValueError, ArithmeticError):
            return None
        return tuple(rates)


#: `Pricer.lookup`'s answer: (price, "<basis>/<pricing model>", adjustment)
_Lookup = tuple[_Rates | None, str, float]


def decimal_text(value: Decimal) -> str:
    """At least 8 decimals, more when needed, never exponent notation."""
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(8, '0')}"


def _first_match(entries: tuple[CostMapEntry, ...], model: str) -> CostMapEntry | None:
    for entry in entries:
        if _go_glob(entry.match).match(model):
            return entry
    return None
