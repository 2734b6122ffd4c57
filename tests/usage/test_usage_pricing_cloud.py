"""Bedrock and Vertex model ids price as the model they name; ids genai-prices does not know
stay unpriced (cost None) instead of borrowing another model's price."""

from __future__ import annotations

import genai_prices
import pytest

from irisgate.config.model import Config, Provider, Secret
from irisgate.usage.pricing import Pricer, price_names
from irisgate.usage.tokens import Usage

USAGE = Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=200)


def provider(basis: str) -> Provider:
    return Provider(
        id="p", baseurl="https://x", apikey=Secret("k", "k"), models=(), cost_basis=basis
    )


def genai_nanodollars(provider_id: str, model: str) -> int:
    usage = genai_prices.Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=200)
    price = genai_prices.calc_price(usage, model, provider_id=provider_id)
    return round(price.total_price * 1_000_000_000)


@pytest.mark.parametrize(
    ("basis", "model", "provider_id", "reference"),
    [
        (
            "bedrock-us",
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
            "aws",
            "anthropic.claude-haiku-4-5-20251001-v1:0",
        ),
        (
            "bedrock-eu",
            "eu.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "aws",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "bedrock-ap",
            "apac.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "aws",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        (
            "bedrock",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "aws",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("bedrock", "amazon.nova-pro-v1:0", "aws", "amazon.nova-pro-v1:0"),
        ("vertex", "claude-sonnet-4-5@20250929", "google", "claude-sonnet-4-5"),
        ("vertex", "gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("google", "gemini-2.5-flash", "google", "gemini-2.5-flash"),
    ],
)
def test_cloud_ids_priced_as_their_model(
    basis: str, model: str, provider_id: str, reference: str
) -> None:
    cost, label = Pricer(Config(providers={}, grants=())).cost(
        provider(basis), "openai", model, USAGE
    )
    assert cost == genai_nanodollars(provider_id, reference)
    assert label.startswith(f"{basis}/")


def test_global_and_regional_profiles_are_priced_apart() -> None:
    pricer = Pricer(Config(providers={}, grants=()))
    regional, _ = pricer.cost(
        provider("bedrock"), "", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", USAGE
    )
    global_, _ = pricer.cost(
        provider("bedrock"), "", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", USAGE
    )
    assert regional is not None and global_ is not None and regional != global_


@pytest.mark.parametrize(
    ("basis", "model"),
    [
        ("bedrock-us", "us.anthropic.claude-unknown-9-v1:0"),
        ("bedrock", "claude-haiku-4-5"),  # a bare Anthropic name is not a Bedrock model id
        ("vertex", "gemini-9-ultra@20990101"),
        ("google", "gemini-2.5-flash-001"),
    ],
)
def test_unmatched_ids_are_unpriced(basis: str, model: str) -> None:
    assert Pricer(Config(providers={}, grants=())).cost(provider(basis), "", model, USAGE) == (
        None,
        "",
    )


def test_price_names() -> None:
    assert price_names("bedrock-us", "us.anthropic.claude-x-20250101-v1:0") == (
        "us.anthropic.claude-x-20250101-v1:0",
        "anthropic.claude-x-20250101-v1:0",
        "anthropic.claude-x-20250101",
    )
    assert price_names("bedrock", "global.amazon.nova-2-lite-v1:0")[:2] == (
        "global.amazon.nova-2-lite-v1:0",
        "global.amazon.nova-2-lite",
    )
    assert price_names("vertex", "claude-opus-4-1@20250805") == (
        "claude-opus-4-1@20250805",
        "claude-opus-4-1",
    )
    assert price_names("openai", "gpt-5@x") == ("gpt-5@x",)
