"""The LLM side of the relay: the upstream request goes out on irisgate's HTTP/1.1 client and
its answer streams back through the relay core (relaycore.py; the pipeline calls it).

Status, headers (minus hop-by-hop) and body bytes pass through unchanged; each chunk is
forwarded as soon as it is read and also kept, within bounds (the tee, tee.py), for usage
parsing and capture after the answer ends. Only when the gateway itself asked for stream
usage on the client's behalf does a filter sit between upstream and client, removing exactly
what was added. What is LLM-specific is here: which headers pass and which client errors
mean a broken connection (`FORWARDING`), and an upstream that never answered as the
gateway's own error (`refusal`, answered in the caller's API format).
"""

from __future__ import annotations

from irisgate.gateway.errors import GatewayError
from irisgate.gateway.http1 import UpstreamError
from irisgate.gateway.relaycore import Forwarding, RelayResult, Unanswered
from irisgate.gateway.upstream import HOP_BY_HOP, UpstreamRequest

__all__ = ["FORWARDING", "RelayResult", "refusal"]


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


def refusal(exc: Unanswered, request: UpstreamRequest) -> GatewayError:
    """The gateway's answer to an upstream that failed before its answer started."""
    if exc.timed_out:
        return GatewayError("timeout", f"{request.name} did not answer in time")
    return GatewayError(
        "upstream", f"upstream unreachable: {_describe(exc.cause)}", code="upstream_error"
    )
