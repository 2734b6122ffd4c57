"""Token counts irisgate estimates itself, for streams that ended without the upstream's usage.

OpenAI streams (Chat Completions, Responses) report usage only in their last event, and an
Anthropic stream reports its output count only in `message_delta`; a stream cut before that
(the client went away, the upstream broke off) would otherwise record nothing, or only the
prompt. `UsageEstimate.run` counts what is missing with a real tokenizer
(`irisgate.usage.tokenizer`): the prompt from the request's text, the output from the text
the stream had relayed (`irisgate.gateway.formats.texts` says which text). What the upstream
did report (Anthropic's `message_start` prompt counts, cache reads and writes) is kept as is.

Each prompt item (message, input item) adds `ITEM_FRAMING` tokens and every prompt
`PROMPT_FRAMING` (the role and separator tokens OpenAI's chat format wraps around text).
The result is priced like reported usage and the record is marked `usage_estimated`.
`run` is CPU work (tokenizing): the recorder awaits it after the response has ended, never
on the request path, and it gives way to other tasks as it counts
(`tokenizer.count_tokens_async`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from irisgate.usage.tokenizer import count_tokens_async, encoding_for_model
from irisgate.usage.tokens import Usage

ITEM_FRAMING = 3
PROMPT_FRAMING = 3


class Prompt(NamedTuple):
    """A request's prompt text and how many conversation items carried it (each item costs a
    few tokens of framing on top of its text)."""

    texts: list[str]
    items: int


@dataclass(slots=True)
class UsageEstimate:
    """What to estimate for one request: `prompt` is None when the upstream reported the
    prompt's count (then `reported.input_tokens` stands), `answer` gives the relayed text."""

    model: str
    reported: Usage
    prompt: Callable[[], Prompt] | None
    answer: Callable[[], list[str]]

    async def run(self) -> Usage:
        """The usage with the missing counts filled in (raises `TokenizerUnavailable`)."""
        encoding = encoding_for_model(self.model)
        usage = replace(self.reported)
        if self.prompt is not None:
            texts, items = self.prompt()
            counted = await count_tokens_async(encoding, texts)
            usage.input_tokens = counted + ITEM_FRAMING * items + PROMPT_FRAMING
        usage.output_tokens = await count_tokens_async(encoding, self.answer())
        return usage
