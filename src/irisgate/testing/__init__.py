"""Wire-exact fakes of what irisgate talks to, for irisgate's tests and its users' own.

- `FakeLLM`: OpenAI (Chat Completions, Responses, models) and Anthropic (Messages,
  count_tokens) on one local HTTP server, with knobs for streaming, failures, delays, usage.
  The same server also speaks Gemini, Vertex AI and Bedrock (`fake_cloud`).
- `FakeGoogleOAuth`: Google's OAuth token endpoint for service-account (JWT bearer) grants.
- `FakeLocalAPI`: tailscaled's LocalAPI WhoIs on a unix socket.
- `McpToolServer`: a real MCP server (the `mcp` SDK) that checks the credential it receives.
- `FakeHttpApi`: an HTTP API that records requests, for HTTP connectors.
- `FakeHook`: guardrail webhooks (allow / block / modify / slow / failing) per path.
- `S3Server`: moto's S3 server in a child process (needs the `test` extra).

irisgate itself: `irisgate.testing.server.IrisgateServer` runs it as a process, as a user
starts it; `irisgate.testing.inprocess.InProcessIrisgate` runs its app in the test's process,
for tests of request handling (no process start).

The fakes run in a background thread (``start()``/``stop()`` or ``with``) so synchronous and
asynchronous tests can use them alike. Nothing here runs at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from irisgate.testing.fake_google_oauth import FakeGoogleOAuth
    from irisgate.testing.fake_hook import FakeHook
    from irisgate.testing.fake_http_api import FakeHttpApi
    from irisgate.testing.fake_llm import FakeLLM
    from irisgate.testing.fake_localapi import FakeLocalAPI
    from irisgate.testing.fake_reply import (
        CALL_TOOL_TRIGGER,
        Reply,
        ToolCall,
        count_prompt_tokens,
    )
    from irisgate.testing.fake_server import RecordedRequest, ServerThread
    from irisgate.testing.mcp_server import McpToolServer
    from irisgate.testing.s3 import S3Server

# Loaded on first use, so `python -m irisgate.testing.fake_llm` does not import itself twice.
_HOMES = {
    "FakeLLM": "fake_llm",
    "FakeHook": "fake_hook",
    "FakeGoogleOAuth": "fake_google_oauth",
    "RecordedRequest": "fake_server",
    "ServerThread": "fake_server",
    "FakeLocalAPI": "fake_localapi",
    "FakeHttpApi": "fake_http_api",
    "McpToolServer": "mcp_server",
    "S3Server": "s3",
    "CALL_TOOL_TRIGGER": "fake_reply",
    "Reply": "fake_reply",
    "ToolCall": "fake_reply",
    "count_prompt_tokens": "fake_reply",
}

__all__ = [
    "CALL_TOOL_TRIGGER",
    "FakeGoogleOAuth",
    "FakeHook",
    "FakeHttpApi",
    "FakeLLM",
    "FakeLocalAPI",
    "McpToolServer",
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
