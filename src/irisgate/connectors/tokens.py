"""Per-user OAuth tokens of connectors: in memory for the request path, encrypted in the DB.

The table is read once at start; afterwards memory is what requests read, and every change
(a user connects, a token is refreshed) is written through. A user this instance does not
hold (connected through another instance sharing the database) is looked up once, and a miss
is remembered for a few seconds so that a user who never connected costs no query per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import delete, select

from irisgate.connectors.secretbox import InvalidToken, SecretBox
from irisgate.store.database import Database
from irisgate.store.tables import conflict_insert, connector_tokens

log = structlog.get_logger("irisgate.connectors")
_MISS_SECONDS = 5.0
#: the login name under which `registration` keeps a connector's registered OAuth client
CLIENT_ROW = ""
#: a token this close to expiry is refreshed before use
EXPIRY_MARGIN_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str = ""
    expires_at: float | None = None  # epoch seconds; None: the server did not say
    scope: str = ""

    def expired(self, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now if now is not None else time.time()) >= self.expires_at - EXPIRY_MARGIN_SECONDS

    @classmethod
    def from_response(cls, body: dict[str, Any], previous: TokenSet | None = None) -> TokenSet:
        """From a token endpoint's JSON answer; a refresh answer may omit the refresh token,
        which then stays the previous one (RFC 6749 §6)."""
        expires_in = body.get("expires_in")
        expires_at = time.time() + float(expires_in) if expires_in is not None else None
        refresh = body.get("refresh_token") or (previous.refresh_token if previous else "")
        return cls(
            access_token=str(body["access_token"]),
            refresh_token=str(refresh or ""),
            expires_at=expires_at,
            scope=str(body.get("scope") or ""),
        )


Key = tuple[str, str]  # (login name, connector id)


class TokenStore:
    def __init__(self, db: Callable[[], Database], box: SecretBox) -> None:
        self._db = db  # the runtime's database opens at start, after this store is made
        self._box = box
        self._tokens: dict[Key, TokenSet] = {}
        self._misses: dict[Key, float] = {}

    async def load(self) -> None:
        async with self._db().connect() as conn:
            rows = (await conn.execute(select(connector_tokens))).all()
        for row in rows:
            if row.login_name == CLIENT_ROW:  # a registered OAuth client, not a user's tokens
                continue
            tokens = self._decode(row.data, row.login_name, row.connector_id)
            if tokens is not None:
                self._tokens[(row.login_name, row.connector_id)] = tokens

    def cached(self, login: str, connector_id: str) -> TokenSet | None:
        return self._tokens.get((login, connector_id))

    async def get(self, login: str, connector_id: str) -> TokenSet | None:
        key = (login, connector_id)
        tokens = self._tokens.get(key)
        if tokens is not None:
            return tokens
        if self._misses.get(key, 0.0) > time.monotonic():
            return None
        async with self._db().connect() as conn:
            data = (
                await conn.execute(
                    select(connector_tokens.c.data).where(
                        connector_tokens.c.login_name == login,
                        connector_tokens.c.connector_id == connector_id,
                    )
                )
            ).scalar()
        tokens = self._decode(data, login, connector_id) if data is not None else None
        if tokens is None:
            self._misses[key] = time.monotonic() + _MISS_SECONDS
        else:
            self._tokens[key] = tokens
        return tokens

    async def put(self, login: str, connector_id: str, tokens: TokenSet) -> None:
        data = self._box.seal(orjson.dumps(asdict(tokens)))
        now = datetime.now(UTC)
        values = {"login_name": login, "connector_id": connector_id, "data": data}
        statement = conflict_insert(self._db().dialect, connector_tokens).values(
            **values, updated_at=now
        )
        statement = statement.on_conflict_do_update(
            index_elements=["login_name", "connector_id"],
            set_={"data": data, "updated_at": now},
        )
        async with self._db().begin() as conn:
            await conn.execute(statement)
        self._tokens[(login, connector_id)] = tokens
        self._misses.pop((login, connector_id), None)

    async def delete(self, login: str, connector_id: str) -> None:
        async with self._db().begin() as conn:
            await conn.execute(
                delete(connector_tokens).where(
                    connector_tokens.c.login_name == login,
                    connector_tokens.c.connector_id == connector_id,
                )
            )
        self._tokens.pop((login, connector_id), None)

    def _decode(self, data: bytes, login: str, connector_id: str) -> TokenSet | None:
        try:
            return TokenSet(**orjson.loads(self._box.open(bytes(data))))
        except InvalidToken:
            log.warning(
                "stored connector token cannot be decrypted with the current key; the user must"
                " connect again",
                login_name=login,
                connector=connector_id,
            )
            return None
