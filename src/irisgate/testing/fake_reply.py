"""What the fake model answers, decided before any byte is written (sans-io).

Both vendor dialects (`fake_openai`, `fake_anthropic`) render the same `Reply`; this module
owns the rules that make a fake answer deterministic, so tests can predict every number:

Prompt tokens
    `count_prompt_tokens(body)` is the number of whitespace-separated words in every text of
    the prompt: the strings in `system`, `instructions`, `messages` and `input`, following
    `content`, `text` and `output` keys through nested lists and objects (so message strings,
    content parts, tool results and function-call outputs all count; tool definitions, roles
    and model names do not). It is at least 1. `FakeLLM.prompt_tokens` overrides it.

Cached prompt tokens
    The counted words are the *uncached* part of the prompt. Cache knobs add on top, so the
    whole prompt is always ``counted + cached (+ cache writes)``: OpenAI reports
    ``prompt_tokens = counted + cached + writes`` with ``cached_tokens = cached`` and
    ``cache_write_tokens = write_5m + write_1h`` (OpenAI has one kind); Anthropic reports
    ``input_tokens = counted`` beside ``cache_read_input_tokens = cached`` and
    ``cache_creation_input_tokens = write_5m + write_1h``.

Completion tokens
    One token per streamed piece: the number of text pieces, or of tool-argument pieces for a
    tool call, plus the thinking pieces (Anthropic) and the `reasoning_tokens` knob (OpenAI).

Text pieces
    `reply_text=None` generates `n_chunks` pieces ``"tok0"``, ``" tok1"``, ... A given
    `reply_text` is cut into `n_chunks` slices of near-equal length (fewer when it has fewer
    characters). Tool arguments are cut the same way; thinking text is cut at words.
"""

from __future__ import annotations

import os
import random
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

CALL_TOOL_TRIGGER = "call tool"
"""Text in the final user message that makes the fake answer with a tool call."""

_PROMPT_FIELDS = ("system", "instructions", "messages", "input")
_TEXT_KEYS = ("content", "text", "output")
_WORD = re.compile(r"\s*\S+")


def count_words(text: str) -> int:
    """Number of whitespace-separated words in `text`."""
    return len(text.split())


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key in _TEXT_KEYS:
            if key in value:
                yield from _texts(value[key])


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt size of a request body by the documented word rule (at least 1)."""
    words = sum(count_words(t) for name in _PROMPT_FIELDS for t in _texts(body.get(name)))
    return max(words, 1)


def last_user_text(items: Any) -> str | None:
    """Text of the final conversation item when it is a user message, else None.

    `items` is OpenAI `messages`, Responses `input` or Anthropic `messages`; a bare string
    (Responses `input`) is a user message.
    """
    if isinstance(items, str):
        return items
    if not isinstance(items, list) or not items:
        return None
    last = items[-1]
    if not isinstance(last, dict) or last.get("role", "user") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return None


def wants_tool_call(items: Any) -> bool:
    """Whether the final user message asks for a tool call (contains `CALL_TOOL_TRIGGER`)."""
    text = last_user_text(items)
    return text is not None and CALL_TOOL_TRIGGER in text.lower()


def arguments_for_schema(schema: Any) -> dict[str, Any]:
    """Plausible arguments for a JSON schema: one value per required (else every) property."""
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    if not isinstance(props, dict):
        return {}
    required = schema.get("required")
    names = required if isinstance(required, list) and required else list(props)
    return {name: _sample_value(props.get(name)) for name in names if isinstance(name, str)}


def _sample_value(prop: Any) -> Any:
    if not isinstance(prop, dict):
        return "fake"
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    samples: dict[str, Any] = {
        "string": "fake",
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }
    return samples.get(kind, "fake") if isinstance(kind, str) else "fake"


def split_even(text: str, n: int) -> tuple[str, ...]:
    """`text` cut into `n` consecutive slices of near-equal length (fewer if text is short)."""
    n = max(0, min(n, len(text)))
    if n == 0:
        return ()
    size, extra = divmod(len(text), n)
    out: list[str] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return tuple(out)


def split_words(text: str) -> tuple[str, ...]:
    """`text` cut before each word, keeping the whitespace with the word that follows it."""
    return tuple(_WORD.findall(text))


@lru_cache(maxsize=64)
def generated_pieces(n: int) -> tuple[str, ...]:
    """The default reply: ``("tok0", " tok1", ...)``, `n` pieces."""
    return tuple(f"tok{i}" if i == 0 else f" tok{i}" for i in range(n))


_ALNUM = string.ascii_letters + string.digits


def padding(max_len: int = 16) -> str:
    """Random letters and digits, 1 to `max_len` of them: the size-hiding stream padding."""
    return "".join(random.choices(_ALNUM, k=random.randint(1, max_len)))


def new_id(prefix: str, width: int = 24) -> str:
    """A vendor-looking unique id: `prefix` and `width` random hex characters."""
    return prefix + os.urandom((width + 1) // 2).hex()[:width]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The one tool call of a reply; `argument_pieces` join to a compact JSON object."""

    id: str
    name: str
    argument_pieces: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.argument_pieces)

    @property
    def input(self) -> Any:
        return orjson.loads(self.arguments) if self.argument_pieces else {}


@dataclass(frozen=True, slots=True)
class Reply:
    """One planned answer: pieces to stream and the token counts to report."""

    model: str
    created: int
    pieces: tuple[str, ...] = ()
    tool_call: ToolCall | None = None
    thinking_pieces: tuple[str, ...] = ()
    prompt_tokens: int = 1
    cached_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def thinking(self) -> str:
        return "".join(self.thinking_pieces)

    @property
    def visible_tokens(self) -> int:
        """Tokens of the answer itself: text pieces or tool-argument pieces."""
        if self.tool_call is not None:
            return len(self.tool_call.argument_pieces)
        return len(self.pieces)

    @property
    def openai_completion_tokens(self) -> int:
        return self.visible_tokens + self.reasoning_tokens

    @property
    def openai_prompt_tokens(self) -> int:
        return self.prompt_tokens + self.cached_tokens + self.cache_creation_tokens

    @property
    def anthropic_output_tokens(self) -> int:
        return self.visible_tokens + len(self.thinking_pieces)

    @property
    def cache_creation_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens


def make_tool_call(
    id_prefix: str,
    name: str,
    arguments: Mapping[str, Any],
    n_pieces: int,
) -> ToolCall:
    """A tool call whose compact JSON arguments are cut into at most `n_pieces` slices."""
    text = orjson.dumps(dict(arguments)).decode()
    return ToolCall(new_id(id_prefix), name, split_even(text, max(n_pieces, 1)))


def text_pieces(reply_text: str | None, n_chunks: int) -> tuple[str, ...]:
    """The text pieces of a reply by the documented rule."""
    if reply_text is None:
        return generated_pieces(max(n_chunks, 0))
    return split_even(reply_text, n_chunks)


def first_function(tools: Any, nested_key: str | None, schema_key: str) -> tuple[str, Any]:
    """Name and schema of the first usable tool definition, or ``("", None)``.

    `nested_key` names the nested object holding the definition (OpenAI chat: "function"),
    `schema_key` the schema field ("parameters", "input_schema").
    """
    if not isinstance(tools, Sequence):
        return "", None
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        spec = tool.get(nested_key) if nested_key else tool
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            if nested_key is None and "type" in tool and schema_key not in tool:
                continue  # a server tool (web search, code execution): not ours to call
            return spec["name"], spec.get(schema_key)
    return "", None
