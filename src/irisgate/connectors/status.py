"""A connector's status for one caller (reference §6.3), as `/api/connectors` reports it.

- `no_access`: no `connectors` grant reaches the connector.
- `misconfigured`: the connector cannot work (no URL, unresolved secret, refused URL), or a
  per-user connector holds a token without a refresh token (the OAuth app must allow offline
  access, then the user reconnects).
- `needs_auth`: a per-user OAuth connector the caller has not connected yet.
- `ready`: usable now.
"""

from __future__ import annotations

from dataclasses import dataclass

from irisgate.access.grants import Access
from irisgate.config.model import Connector
from irisgate.connectors.credentials import config_problem
from irisgate.connectors.safety import UnsafeURL, UrlGuard
from irisgate.connectors.tokens import TokenSet

LABELS = {
    "ready": "Ready",
    "needs_auth": "Needs auth",
    "misconfigured": "Misconfigured",
    "no_access": "No access",
}
PER_USER = frozenset({"oauth2_authorization_code", "oauth2_dynamic_client_registration"})


@dataclass(frozen=True, slots=True)
class Status:
    code: str
    detail: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.code]


async def connector_status(
    connector: Connector, access: Access, tokens: TokenSet | None, guard: UrlGuard
) -> Status:
    if not access.may_use_connector(connector.id):
        return Status("no_access", "no connectors grant reaches this connector")
    problem = config_problem(connector)
    if problem:
        return Status("misconfigured", problem)
    try:
        await guard.check(connector.url)
    except UnsafeURL as exc:
        return Status("misconfigured", str(exc))
    if connector.auth.type not in PER_USER:
        return Status("ready")
    if tokens is None:
        return Status("needs_auth", "connect to authorize irisgate with your account")
    if not tokens.refresh_token:
        return Status(
            "misconfigured",
            "the OAuth server issued no refresh token: enable offline access for the OAuth"
            " client, then reconnect",
        )
    return Status("ready")
