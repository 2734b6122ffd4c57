"""Prices per unit rather than per token: what a request delivered that is counted in images
or in seconds of audio, and what one unit costs.

genai-prices prices tokens; GPT Image models report tokens and are priced that way. DALL·E
models report none: they are priced per image by size and quality, from OpenAI's published
list prices below (openai.com/api/pricing, as of 2025-12); so are transcriptions and
translations by `whisper-1`, per second of audio ($0.006 a minute). A model, size or quality not in
the table leaves the request *unpriced* (cost null), never a guessed number; a provider's
`model_cost_map` renames and scales these prices as it does token prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Units:
    """Something priced per unit: `unit` (`image`), how many, and the options the unit's
    price depends on (an image's size and quality; "" for the model's default)."""

    unit: str
    count: int
    options: tuple[str, ...] = ()


#: the default size and quality of each model's images (what OpenAI uses when not asked)
_DEFAULTS: dict[str, tuple[str, str]] = {
    "dall-e-2": ("1024x1024", "standard"),
    "dall-e-3": ("1024x1024", "standard"),
}
#: (model, size, quality) -> USD per image (OpenAI list prices)
_IMAGE_PRICES: dict[tuple[str, str, str], Decimal] = {
    ("dall-e-2", "256x256", "standard"): Decimal("0.016"),
    ("dall-e-2", "512x512", "standard"): Decimal("0.018"),
    ("dall-e-2", "1024x1024", "standard"): Decimal("0.020"),
    ("dall-e-3", "1024x1024", "standard"): Decimal("0.040"),
    ("dall-e-3", "1024x1792", "standard"): Decimal("0.080"),
    ("dall-e-3", "1792x1024", "standard"): Decimal("0.080"),
    ("dall-e-3", "1024x1024", "hd"): Decimal("0.080"),
    ("dall-e-3", "1024x1792", "hd"): Decimal("0.120"),
    ("dall-e-3", "1792x1024", "hd"): Decimal("0.120"),
}
#: model -> USD per second of audio transcribed or translated (OpenAI list prices)
_SECOND_PRICES: dict[str, Decimal] = {
    "whisper-1": Decimal("0.0001"),
}
#: the cost bases whose list prices these are
_BASES = frozenset({"openai", "azure", "azure-eu"})


def unit_price(basis: str, model: str, units: Units) -> Decimal | None:
    """USD for one of `units` of `model` under cost basis `basis`; None when not known."""
    if basis not in _BASES:
        return None
    if units.unit == "second":
        return _SECOND_PRICES.get(model)
    if units.unit != "image" or model not in _DEFAULTS:
        return None
    size, quality = (*units.options, "", "")[:2]
    default_size, default_quality = _DEFAULTS[model]
    if quality in ("", "auto"):
        quality = default_quality
    key = (model, size or default_size, quality)
    return _IMAGE_PRICES.get(key)
