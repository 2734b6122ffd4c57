"""Costs must equal genai-prices' own calculation to the nanodollar, for every token type and
both sides of a tiered (long-context) price; unknown models are unpriced, never guessed."""

from __future__ import annotations

import random
from decimal import Decimal

import genai_prices
import pytest

from irisgate.config.model import Config, CostMapEntry, Provider, Secret
from irisgate.usage.pricing import Pricer
from irisgate.usage.tokens import Usage

MODELS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("anthropic", "claude-haiku-4-5"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-5-mini"),
    ("openai", "o3"),
    ("google", "gemini-2.5-pro"),
    ("google", "gemini-2.5-flash"),
]


def provider(basis: str | None = None, cost_map: tuple[CostMapEntry, ...] = ()) -> Provider:
    return Provider(
        id="p",
        baseurl="http://upstream.invalid",
        apikey=Secret("k", "k"),
        models=("m",),
        cost_basis=basis,
        model_cost_map=cost_map,
    )


def genai_nanodollars(basis: str, model: str, u: Usage) -> int:
    price = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_5m_tokens + u.cache_write_1h_tokens,
            cache_write_1h_tokens=u.cache_write_1h_tokens,
            web_searches=u.web_search_count,
        ),
        model,
        provider_id=basis,
    )
    return int((price.total_price * Decimal(1_000_000_000)).to_integral_value())


@pytest.mark.parametrize(("basis", "model"), MODELS)
def test_cost_equals_genai_prices(basis: str, model: str) -> None:
    rng = random.Random(f"{basis}/{model}")
    pricer = Pricer(Config(providers={}, grants=()))
    for _ in range(150):
        prompt = rng.choice([rng.randint(0, 5000), rng.randint(150_000, 400_000)])
        usage = Usage(
            input_tokens=prompt,
            output_tokens=rng.randint(0, 8000),
            cache_read_tokens=rng.randint(0, prompt // 3),
            cache_write_5m_tokens=rng.randint(0, prompt // 4),
            cache_write_1h_tokens=rng.randint(0, prompt // 4),
            web_search_count=rng.randint(0, 3) if basis != "google" else 0,
        )
        cost, label = pricer.cost(provider(basis), "openai", model, usage)
        assert label == f"{basis}/{model}"
        assert cost is not None
        assert abs(cost - genai_nanodollars(basis, model, usage)) <= 1, usage


def test_basis_inferred_from_format_and_switched_off() -> None:
    usage = Usage(input_tokens=1000, output_tokens=100)
    cost, label = Pricer(Config(providers={}, grants=())).cost(
        provider(), "anthropic", "claude-sonnet-4-5", usage
    )
    assert label == "anthropic/claude-sonnet-4-5"
    assert cost == genai_nanodollars("anthropic", "claude-sonnet-4-5", usage)
    no_auto = Pricer(Config(providers={}, grants=(), auto_cost_basis=False))
    assert no_auto.cost(provider(), "anthropic", "claude-sonnet-4-5", usage) == (None, "")


def test_model_cost_map_first_match_wins_with_adjustment() -> None:
    cost_map = (
        CostMapEntry(match="my-tune-*", as_model="claude-sonnet-4-5", adjustment=1.5),
        CostMapEntry(match="my-*", as_model="claude-haiku-4-5"),
    )
    usage = Usage(input_tokens=1000, output_tokens=100)
    pricer = Pricer(Config(providers={}, grants=()))
    cost, label = pricer.cost(provider("anthropic", cost_map), "openai", "my-tune-7", usage)
    assert label == "anthropic/claude-sonnet-4-5"
    expected = genai_nanodollars("anthropic", "claude-sonnet-4-5", usage) * 1.5
    assert cost is not None and abs(cost - expected) <= 1
    _, label = pricer.cost(provider("anthropic", cost_map), "openai", "my-other", usage)
    assert label == "anthropic/claude-haiku-4-5"


def test_unknown_model_is_unpriced_not_guessed() -> None:
    pricer = Pricer(Config(providers={}, grants=()))
    usage = Usage(input_tokens=10, output_tokens=10)
    assert pricer.cost(provider("openai"), "openai", "llama-local-7b", usage) == (None, "")
    assert pricer.per_token(provider("openai"), "openai", "llama-local-7b") is None


def test_per_token_prices_are_decimal_strings() -> None:
    pricer = Pricer(Config(providers={}, grants=()))
    prices = pricer.per_token(provider("anthropic"), "anthropic", "claude-sonnet-4-5")
    assert prices is not None
    assert prices["input"] == "0.00000300"
    assert prices["output"] == "0.00001500"
    assert prices["input_cache_read"] == "0.00000030"
    assert prices["input_cache_write"] == "0.00000375"
    assert prices["input_cache_write_1h"] == "0.00000600"


def test_lookups_are_remembered_per_provider_object() -> None:
    pricer = Pricer(Config(providers={}, grants=()))
    openai_basis, anthropic_basis = provider("openai"), provider("anthropic")  # same id "p"
    first = pricer.lookup(anthropic_basis, "openai", "claude-sonnet-4-5")
    assert first[1] == "anthropic/claude-sonnet-4-5"
    assert pricer.lookup(anthropic_basis, "openai", "claude-sonnet-4-5") is first
    assert pricer.lookup(openai_basis, "openai", "claude-sonnet-4-5")[1] == ""  # not OpenAI's
    assert pricer.lookup(provider(), "anthropic", "claude-sonnet-4-5")[1] == first[1]
    assert pricer.lookup(provider(), "openai", "claude-sonnet-4-5") == (None, "", 1.0)
