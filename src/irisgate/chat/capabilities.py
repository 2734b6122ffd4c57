"""What a chat model accepts beyond text: a reasoning-effort control and image input.

Neither the configuration nor genai-prices (prices only) says which models reason or see, so
the chat decides by the model's name, with rules for the families whose documentation says
so. Only the name after the last ``/`` counts (``openrouter``-style ``vendor/model`` names
work too), case-insensitively, without a Bedrock id's region and vendor prefixes
(``us.anthropic.claude-sonnet-4-5-…`` counts as ``claude-sonnet-4-5-…``). A model no rule
knows gets neither control: the chat then never sends a parameter or an image part an
upstream might reject.

Reasoning (sent as ``reasoning_effort`` on OpenAI chat, a ``thinking`` budget on Anthropic):
  OpenAI o-series (``o1``, ``o3``, ``o4-mini``…) and ``gpt-5`` or later (not ``*-chat*``);
  Gemini 2.5 or later (their OpenAI-compatible endpoint takes ``reasoning_effort``);
  Claude 3.7 Sonnet and every Claude 4 or later (``claude-sonnet-4-5``, ``claude-opus-4``…).

Images:
  OpenAI ``gpt-4o*``, ``gpt-4.1*``, ``gpt-4.5*``, ``gpt-4-turbo*``, ``gpt-5`` or later, and
  the o-series except ``o1-mini``/``o1-preview``/``o3-mini``; no audio, realtime, search,
  transcription or speech variant. Every Gemini 1.5 or later. Every Claude 3 or later except
  Claude 3.5 Haiku.
"""

from __future__ import annotations

import re

_AUDIO = re.compile(r"audio|realtime|transcribe|tts|search|embedding|moderation|image")
_O_SERIES = re.compile(r"^o(\d+)(?:-|$)")
_GPT = re.compile(r"^gpt-(\d+(?:\.\d+)?)")
_GEMINI = re.compile(r"^gemini-(\d+(?:\.\d+)?)")
# claude-3-7-sonnet…, claude-3-5-haiku…, claude-sonnet-4-5…, claude-opus-4…
_CLAUDE_OLD = re.compile(r"^claude-(\d+)(?:-(\d+))?-(opus|sonnet|haiku)")
_CLAUDE_NEW = re.compile(r"^claude-(opus|sonnet|haiku)-(\d+)")
_O_WITHOUT_IMAGES = ("o1-mini", "o1-preview", "o3-mini")


# Bedrock ids: an optional cross-region prefix, the vendor, then the model
# (us.anthropic.claude-sonnet-4-5-20250929-v1:0, anthropic.claude-3-5-haiku-20241022-v1:0)
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?[a-z0-9-]+\.(?=claude-|gemini-|gpt-|o\d)")


def _name(model: str) -> str:
    return _BEDROCK_PREFIX.sub("", model.rsplit("/", 1)[-1].lower())


def _claude(name: str) -> tuple[float, str] | None:
    """(version, family) of a Claude model name, e.g. (3.7, "sonnet") or (4.5, "haiku")."""
    new = _CLAUDE_NEW.match(name)
    if new is not None:
        minor = re.match(r"^claude-\w+-\d+-(\d)(?:-|$)", name)
        return float(new.group(2)) + (int(minor.group(1)) / 10 if minor else 0), new.group(1)
    old = _CLAUDE_OLD.match(name)
    if old is not None:
        return float(old.group(1)) + int(old.group(2) or 0) / 10, old.group(3)
    return None


def _version(pattern: re.Pattern[str], name: str) -> float | None:
    found = pattern.match(name)
    return float(found.group(1)) if found is not None else None


def supports_reasoning(model: str) -> bool:
    """Whether the chat offers a reasoning-effort control for this model."""
    name = _name(model)
    if _AUDIO.search(name):
        return False
    if _O_SERIES.match(name):
        return True
    gpt = _version(_GPT, name)
    if gpt is not None:
        return gpt >= 5 and "-chat" not in name
    gemini = _version(_GEMINI, name)
    if gemini is not None:
        return gemini >= 2.5
    claude = _claude(name)
    return claude is not None and (claude[0] >= 4 or claude == (3.7, "sonnet"))


def accepts_images(model: str) -> bool:
    """Whether the chat lets the user attach images for this model."""
    name = _name(model)
    if _AUDIO.search(name):
        return False
    if _O_SERIES.match(name):
        return not name.startswith(_O_WITHOUT_IMAGES)
    gpt = _version(_GPT, name)
    if gpt is not None:
        return gpt >= 5 or name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-4-turbo"))
    gemini = _version(_GEMINI, name)
    if gemini is not None:
        return gemini >= 1.5
    claude = _claude(name)
    return claude is not None and claude[0] >= 3 and claude != (3.5, "haiku")
