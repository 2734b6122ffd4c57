"""The LLM side of the relay: send the upstream request on irisgate's HTTP/1.1 client and stream
the answer back through the relay core (relaycore.py).

Status, headers (minus hop-by-hop) and body bytes pass through unchanged; each chunk is
forwarded as soon as it is read and also kept, within bounds (the tee, tee.py), for usage
parsing and capture after the answer ends. Only when the gateway itself asked for stream
usage on the client's behalf does a filter sit between upstream and client, removing exactly
what was added. What is LLM-specific is here: the client, the `Server-Timing` header and
the errors in the gateway's own terms (`GatewayError`, answered in the caller's API format).
"""

from __future__ import annotations

from collections.abc import Callable

from irisgate.gateway.errors import GatewayError
from irisgate.gateway.formats.base import ChunkFilter
from irisgate.gateway.http1 import Http1Client, UpstreamError
from irisgate.gateway.relaycore import Forwarding, RelayResult, Send, Unanswered
from irisgate.gateway.relaycore import relay as relay_answer
from irisgate.gateway.upstream import HOP_BY_HOP, UpstreamRequest

__all__ = ["RelayResult", "relay"]


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]


FORWARDING = Forwarding(
    hop_by_hop=frozenset(h.encode() for h in HOP_BY_HOP),
    # set by the ASGI server itself on every response (uvicorn prepends its own `date`); the
    # upstream's copy is captured but not forwarded, or the client would get two Date headers
    server_set=frozenset({b"date"}),
    broken=(UpstreamError,),
    describe=_describe,
)


async def relay(
    client: Http1Client,
    request: UpstreamRequest,
    send: Send,
    result: RelayResult,
    *,
    extra_headers: list[tuple[bytes, bytes]],
    chunk_filter: ChunkFilter | None = None,
    request_started: float | None = None,
    before_end: Callable[[], None] | None = None,
) -> None:
    """Fill `result` while streaming (see `relaycore.relay`). Raises GatewayError before the
    answer starts only. `before_end` is where the gateway journals the request's record."""
    try:
        await relay_answer(
            client.request(request.method, request.url, request.headers, request.body),
            send,
            result,
            FORWARDING,
            extra_headers=extra_headers,
            chunk_filter=chunk_filter,
            request_started=request_started,
            before_end=before_end,
        )
    except Unanswered as exc:
        if exc.timed_out:
            raise GatewayError("timeout", f"{request.name} did not answer in time") from exc.cause
        raise GatewayError(
            "upstream", f"upstream unreachable: {_describe(exc.cause)}", code="upstream_error"
        ) from exc.cause
