"""The wire-level pieces every layer uses, and nothing of irisgate above them.

Errors in the callers' terms (`errors`), the HTTP/1.1 client (`http1`), the request sent
upstream (`upstream`), SSE and AWS event-stream parsing (`sse`, `eventstream`), request-body
limits (`bodylimit`) and the JSON nesting limit (`nesting`). This package is the bottom layer:
it imports only the standard library and third-party packages (see docs/architecture.md).
"""
