"""Wire-exact fakes of what irisgate talks to, for irisgate's tests and its users' own.

- `FakeLLM`: OpenAI (Chat Completions, Responses, models) and Anthropic (Messages,
  count_tokens) on one local HTTP server, with knobs for streaming, failures, delays, usage.
- `FakeLocalAPI`: tailscaled's LocalAPI WhoIs on a unix socket.
- `S3Server`: moto's S3 server in a child process (needs the `test` extra).

Both run in a background thread (``start()``/``stop()`` or ``with``) so synchronous and
asynchronous tests can use them alike. Nothing here runs at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from irisgate.testing.fake_llm import FakeLLM
    from irisgate.testing.fake_localapi import FakeLocalAPI
    from irisgate.testing.fake_reply import (
        CALL_TOOL_TRIGGER,
        Reply,
        ToolCall,
        count_prompt_tokens,
    )
    from irisgate.testing.fake_server import RecordedRequest, ServerThread
    from irisgate.testing.s3 import S3Server

# Loaded on first use, so `python -m irisgate.testing.fake_llm` does not import itself twice.
_HOMES = {
    "FakeLLM": "fake_llm",
    "RecordedRequest": "fake_server",
    "ServerThread": "fake_server",
    "FakeLocalAPI": "fake_localapi",
    "S3Server": "s3",
    "CALL_TOOL_TRIGGER": "fake_reply",
    "Reply": "fake_reply",
    "ToolCall": "fake_reply",
    "count_prompt_tokens": "fake_reply",
}

__all__ = [
    "CALL_TOOL_TRIGGER",
    "FakeLLM",
    "FakeLocalAPI",
    "RecordedRequest",
    "Reply",
    "S3Server",
    "ServerThread",
    "ToolCall",
    "count_prompt_tokens",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
