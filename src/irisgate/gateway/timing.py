"""The `Server-Timing` header irisgate adds to every relayed answer.

    Server-Timing: gateway;dur=0.42, upstream;dur=512.31

Durations are milliseconds, measured when the answer's headers go out — before the body,
since the relay streams it as it arrives:

- `gateway`: from irisgate starting on the request to sending it upstream (reading the
  request body, identity, grants, routing, building the upstream request).
- `upstream`: from sending the request upstream to the upstream's response headers
  (connection set-up included): the upstream's time to headers, not the whole answer.

Time spent streaming the body is in the `irisgate_request_duration_seconds` metric and the
stored request record (`duration_ms`, `upstream_ms`), not in this header. An upstream's own
`Server-Timing` header is forwarded as well; clients combine both.
"""

from __future__ import annotations

NAME = b"server-timing"


def server_timing(gateway_s: float, upstream_s: float) -> bytes:
    return f"gateway;dur={gateway_s * 1000:.2f}, upstream;dur={upstream_s * 1000:.2f}".encode()
