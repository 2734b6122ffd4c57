"""OpenAI's audio API (`/v1/audio/transcriptions`, `/translations`, `/speech`), sans-io.

What it reports: a transcription by a token-billed model (`gpt-4o-transcribe` style) carries
`usage: {"type": "tokens", "input_tokens", "output_tokens", …}`, priced per token; one by a
duration-billed model (`whisper-1`) carries `usage: {"type": "duration", "seconds"}` or, with
`verbose_json`, a `duration`: irisgate has no per-second price to apply, so such a request is
recorded unpriced, as is speech (its answer is the audio itself and reports no usage).
A streamed transcription's usage is in its `transcript.text.done` event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.gateway.formats.streamresult import StreamResult, as_dict, as_int
from irisgate.usage.tokens import Usage


def usage_from_response(obj: Mapping[str, Any]) -> Usage:
    """Token usage of a transcription or translation body; empty when it reports seconds or
    nothing (see the module doc)."""
    usage = as_dict(obj.get("usage"))
    if usage.get("type") != "tokens":
        return Usage()
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
    )


class TranscriptStreamAccumulator:
    """A streamed transcription: its text and, from the done event, its usage."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._usage = Usage()
        self._done = False

    def feed_event(self, event_type: str, data: bytes) -> None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "transcript.text.delta" and isinstance(event.get("delta"), str):
            self._text.append(event["delta"])
        elif kind == "transcript.text.done":
            self._done = True
            self._usage = usage_from_response(event)

    def result(self) -> StreamResult:
        response = {"text": "".join(self._text)}
        return StreamResult(self._usage, response, 0, self._done)
