"""Connector tools in the chat: what the Tools menu offers and what a call gives back.

The tool loop runs in the browser (`chat.js`), because every model round must stay an
ordinary streamed gateway request of the user (identity, grants, quotas, hooks, capture,
cost, Stop). Between rounds the browser asks irisgate to run the calls the model made; both
the listing and the calls go through the `/v1/mcp` aggregator (`Aggregator.tools_for` and
`Aggregator.call_for`), so the grant checks, the per-user credentials and the record of each
call are exactly those of `/v1/mcp`. A call must also name a tool switched on in the
conversation (`irisgate.chat.routes`).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import mcp_types as types
import orjson

from irisgate.chat.parts import OUTPUT_LIMIT
from irisgate.connectors.aggregate import McpCaller
from irisgate.handlers import Caller
from irisgate.snapshot import Snapshot


def mcp_caller(caller: Caller, snapshot: Snapshot) -> McpCaller:
    return McpCaller(caller.identity, caller.access, snapshot)


def tool_entry(tool: types.Tool) -> dict[str, Any]:
    """One tool of the Tools menu (its `name` is the `<connector>_<tool>` of `/v1/mcp`)."""
    connector, _, short = tool.name.partition("_")
    return {
        "name": tool.name,
        "connector": connector,
        "tool": short,
        "title": tool.title or "",
        "description": tool.description or "",
        "input_schema": tool.input_schema,
    }


def _size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data)


def _content_text(item: Any) -> str:
    if isinstance(item, types.TextContent):
        return item.text
    if isinstance(item, types.ImageContent | types.AudioContent):
        kind = "image" if isinstance(item, types.ImageContent) else "audio"
        return f"[{kind} {item.mime_type}, {_size(item.data)} bytes]"
    if isinstance(item, types.EmbeddedResource):
        resource = item.resource
        if isinstance(resource, types.TextResourceContents):
            return resource.text
        return f"[resource {resource.uri} ({resource.mime_type or 'binary'})]"
    if isinstance(item, types.ResourceLink):
        return f"[resource link {item.uri}]"
    return f"[{getattr(item, 'type', 'unknown')} content]"


def result_output(result: types.CallToolResult) -> str:
    """The tool's answer as the text the model gets back (and the chat shows): its text
    parts in order, a short placeholder for binary parts, else its structured content as
    JSON; cut at `OUTPUT_LIMIT` characters with a note saying so."""
    text = "\n".join(_content_text(item) for item in result.content)
    if not text and result.structured_content is not None:
        text = orjson.dumps(result.structured_content).decode()
    if len(text) > OUTPUT_LIMIT:
        cut = len(text) - OUTPUT_LIMIT
        text = text[:OUTPUT_LIMIT] + f"\n[output cut by the chat: {cut} more characters]"
    return text
