"""Errors the gateway itself answers with (as opposed to upstream errors, passed through).

A `GatewayError` carries a status, a message that names what was wrong, and a kind; the API
format the caller used turns it into that API's own error envelope.
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "invalid_request",  # 400: the request itself is wrong
    "authentication",  # 401: a key that is not valid; no key or sign-in where one is needed
    "permission",  # 403: identity refused or nothing granted
    "not_found",  # 404: unknown model
    "too_large",  # 413
    "rate_limit",  # 429
    "blocked",  # a guardrail hook refused the request (status chosen by the hook)
    "upstream",  # 502: upstream unreachable or broke the connection
    "timeout",  # 504: upstream did not answer in time
    "unavailable",  # 503
    "internal",  # 500
]

STATUS_OF: dict[ErrorKind, int] = {
    "invalid_request": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "too_large": 413,
    "rate_limit": 429,
    "blocked": 403,
    "upstream": 502,
    "timeout": 504,
    "unavailable": 503,
    "internal": 500,
}


class GatewayError(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.status = status or STATUS_OF[kind]
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}
