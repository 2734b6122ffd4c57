"""Connector traffic as records for the batch writer (reference §6.6: Aperture keeps none).

A tool call through `/v1/mcp` and a request through `/v1/connectors/<id>/...` each become one
`RequestRecord`: who, which connector (`provider`), which tool (`model`) or path, status,
duration and the sizes of both bodies, plus the bodies themselves for the session logs. They
go through `Runtime.record` like LLM requests and never count as LLM usage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter

from irisgate.identity import Identity
from irisgate.store.tables import MCP_FORMAT
from irisgate.telemetry.record import RequestRecord, new_request_id
from irisgate.usage.sessions import SESSION_HEADERS


@dataclass(slots=True)
class CallTimer:
    """When a connector call started, for its record."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=perf_counter)

    @property
    def elapsed_ms(self) -> float:
        return (perf_counter() - self.started) * 1000


def connector_record(
    identity: Identity,
    timer: CallTimer,
    *,
    api_format: str,
    connector_id: str,
    method: str,
    path: str,
    status: int,
    tool: str = "",
    error: str = "",
    request_body: bytes = b"",
    response_body: bytes = b"",
    request_bytes: int | None = None,
    response_bytes: int | None = None,
    request_headers: dict[str, str] | None = None,
    response_headers: dict[str, str] | None = None,
    config_version: int = 0,
    upstream_ms: float | None = None,
    cancelled: bool = False,
) -> RequestRecord:
    """One connector call; an agent's session header puts it into that session's log."""
    headers = request_headers or {}
    session = next((headers[h] for h in SESSION_HEADERS if headers.get(h)), "")
    return RequestRecord(
        request_id=new_request_id(),
        started_at=timer.started_at,
        login_name=identity.login_name,
        display_name=identity.display_name,
        node_id=identity.node_id,
        node_name=identity.node_name,
        tags=identity.tags,
        key_id=identity.key.id if identity.key is not None else "",
        key_name=identity.key.name if identity.key is not None else "",
        method=method,
        path=path,
        api_format=api_format,
        api_type=api_format,
        kind="connector",
        model=tool,
        provider=connector_id,
        status=status,
        error=error,
        cancelled=cancelled,
        duration_ms=timer.elapsed_ms,
        upstream_ms=upstream_ms,
        config_version=config_version,
        session_id=session[:200],
        user_agent=headers.get("user-agent", ""),
        request_headers=headers,
        response_headers=response_headers or {},
        request_body=request_body,
        response_body=response_body,
        request_bytes=len(request_body) if request_bytes is None else request_bytes,
        response_bytes=len(response_body) if response_bytes is None else response_bytes,
        tool_calls=1 if api_format == MCP_FORMAT else 0,
        counts_as_usage=False,
    )
