"""Token counts of one request, the same shape for every API format.

Semantics (chosen so that every format means the same thing and genai-prices prices it right):
`input_tokens` is the whole prompt, cached parts included (OpenAI's `prompt_tokens`; for
Anthropic `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`);
`output_tokens` is the whole completion, reasoning included. The other fields are subsets
(cache, reasoning, images) or counts (web searches).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    image_input_tokens: int = 0
    image_output_tokens: int = 0
    web_search_count: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    def is_empty(self) -> bool:
        # asked twice per request: plain attribute reads (tests/usage checks every field is here)
        return not (
            self.input_tokens
            or self.output_tokens
            or self.cache_read_tokens
            or self.cache_write_5m_tokens
            or self.cache_write_1h_tokens
            or self.reasoning_tokens
            or self.image_input_tokens
            or self.image_output_tokens
            or self.web_search_count
        )

    def as_dict(self) -> dict[str, int]:
        return dict(zip(FIELD_NAMES, _counts(self), strict=True))


#: the `Usage` field names, in declaration order
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Usage))
#: a `Usage`'s counts as one tuple, in `FIELD_NAMES` order
_counts = attrgetter(*FIELD_NAMES)
