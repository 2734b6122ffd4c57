"""Which chat models get a reasoning-effort control and image attachments (name rules)."""

from __future__ import annotations

import pytest

from irisgate.chat.capabilities import accepts_images, supports_reasoning


@pytest.mark.parametrize(
    ("model", "reasoning", "images"),
    [
        ("gpt-4o-mini", False, True),
        ("gpt-4o-2024-08-06", False, True),
        ("gpt-4.1-nano", False, True),
        ("gpt-4-turbo", False, True),
        ("gpt-3.5-turbo", False, False),
        ("gpt-4o-audio-preview", False, False),
        ("gpt-4o-realtime-preview", False, False),
        ("gpt-5", True, True),
        ("gpt-5-mini", True, True),
        ("gpt-5.5", True, True),
        ("gpt-5-chat-latest", False, True),
        ("o1", True, True),
        ("o1-mini", True, False),
        ("o3-mini", True, False),
        ("o3", True, True),
        ("o4-mini", True, True),
        ("openai/gpt-5-mini", True, True),  # vendor-prefixed names (OpenRouter style)
        ("gemini-2.0-flash", False, True),
        ("gemini-2.5-pro", True, True),
        ("claude-3-opus-20240229", False, True),
        ("claude-3-5-haiku-20241022", False, False),
        ("claude-3-5-sonnet-latest", False, True),
        ("claude-3-7-sonnet-20250219", True, True),
        ("claude-sonnet-4-20250514", True, True),
        ("claude-haiku-4-5", True, True),
        ("claude-opus-4-1", True, True),
        ("claude-sonnet-5", True, True),
        ("llama3.1:8b", False, False),
        ("text-embedding-3-small", False, False),
    ],
)
def test_model_name_rules(model: str, reasoning: bool, images: bool) -> None:
    assert supports_reasoning(model) is reasoning
    assert accepts_images(model) is images
