"""OpenAI's audio API (`/v1/audio/transcriptions`, `/translations`, `/speech`), sans-io.

What it reports: a transcription by a token-billed model (`gpt-4o-transcribe` style) carries
`usage: {"type": "tokens", "input_tokens", "output_tokens", …}`, priced per token; one by a
duration-billed model (`whisper-1`) carries `usage: {"type": "duration", "seconds"}` or, with
`verbose_json`, a `duration`: priced per second of audio (usage/unitprices.py). An answer
that says neither (`text`, `srt`, `vtt` answers of whisper-1) is recorded unpriced, never
free. Speech answers with the audio itself and reports no usage: it is counted in characters
of its `input`, for which irisgate has no price, so it is recorded unpriced too.
A streamed transcription's usage is in its `transcript.text.done` event."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from irisgate.gateway.formats.streamresult import StreamResult, as_dict, as_int
from irisgate.usage.estimate import Prompt
from irisgate.usage.tokens import Usage
from irisgate.usage.unitprices import Units

#: the longest audio one answer is believed to report (OpenAI takes files up to 25 MB)
_MAX_SECONDS = 24 * 3600


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


def speech_input(body: Mapping[str, Any]) -> Prompt:
    """Speech's `input` (the text to say); nothing for a transcription's form."""
    text = body.get("input")
    return Prompt([text], 1) if isinstance(text, str) and text else Prompt([], 0)


def requested_units(request: Mapping[str, Any]) -> Units:
    """What a request asks for: speech its input's characters; a transcription an unknown
    number of seconds (0: its audio's length is known from the answer only)."""
    text = request.get("input")
    if isinstance(text, str):
        return Units("character", len(text))
    return Units("second", 0)


def answered_units(request: Mapping[str, Any], response: Mapping[str, Any]) -> Units:
    """What an answer without token usage delivered: speech its input's characters; a
    transcription or translation the seconds of audio its answer reports, rounded up
    (0 when it reports none)."""
    if isinstance(request.get("input"), str):
        return requested_units(request)
    usage = as_dict(response.get("usage"))
    seconds = usage.get("seconds") if usage.get("type") == "duration" else None
    if seconds is None:
        seconds = response.get("duration")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return Units("second", 0)
    if not 0 < seconds <= _MAX_SECONDS:  # also NaN
        return Units("second", 0)
    return Units("second", math.ceil(seconds))


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
