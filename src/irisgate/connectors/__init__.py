"""Connectors: MCP servers and HTTP APIs that agents reach through irisgate.

- `aggregate`: the `/v1/mcp` MCP server, one view over every MCP connector a caller may use.
- `upstream`: MCP client sessions to the connectors' servers (the `mcp` SDK over httpx2).
- `proxy`: `ANY /v1/connectors/<id>/<path>`, a streaming reverse proxy for HTTP connectors.
- `credentials`: what each auth type adds to an upstream request; `oauth` the OAuth 2.0 flows,
  `tokens` per-user tokens (encrypted at rest with `secretbox`).
- `safety`: upstream URLs resolving to loopback or link-local addresses are refused.
- `status`: Ready / Needs auth / Misconfigured / No access for one caller.
- `recording`: every tool call and HTTP connector request as a record for the batch writer.
- `service`: the objects above, created once per process.
"""

#: JSON-RPC error code for "the caller may not do this" (implementation-defined range), as
#: `/v1/mcp` answers refusals. Here so that callers need not import the MCP SDK for it.
ACCESS_DENIED = -32001
