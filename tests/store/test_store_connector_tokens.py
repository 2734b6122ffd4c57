"""Connector OAuth tokens in the database: encrypted, upserted, shared between instances,
on SQLite and PostgreSQL."""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import select

from irisgate.connectors.secretbox import SecretBox
from irisgate.connectors.tokens import TokenSet, TokenStore
from irisgate.store.database import Database
from irisgate.store.tables import connector_tokens

KEY = Fernet.generate_key()


def store(db: Database, key: bytes = KEY) -> TokenStore:
    return TokenStore(lambda: db, SecretBox(key))


async def test_tokens_are_stored_encrypted_and_read_by_another_instance(db: Database) -> None:
    first, second = store(db), store(db)
    await second.load()  # started before the user connected
    tokens = TokenSet("access-123", "refresh-456", 2_000_000_000.0, "read")
    await first.put("bob@example.com", "github", tokens)
    async with db.connect() as conn:
        data = (await conn.execute(select(connector_tokens.c.data))).scalar_one()
    assert b"access-123" not in bytes(data)
    assert b"refresh-456" not in bytes(data)
    assert await second.get("bob@example.com", "github") == tokens
    assert await second.get("alice@example.com", "github") is None


async def test_put_replaces_and_delete_removes(db: Database) -> None:
    tokens = store(db)
    await tokens.put("bob@example.com", "github", TokenSet("one", "r1"))
    await tokens.put("bob@example.com", "github", TokenSet("two", "r2"))
    fresh = store(db)
    await fresh.load()
    assert fresh.cached("bob@example.com", "github") == TokenSet("two", "r2")
    await tokens.delete("bob@example.com", "github")
    again = store(db)
    await again.load()
    assert await again.get("bob@example.com", "github") is None


async def test_tokens_sealed_with_another_key_are_not_used(db: Database) -> None:
    await store(db).put("bob@example.com", "github", TokenSet("one", "r1"))
    other = store(db, Fernet.generate_key())
    await other.load()
    assert await other.get("bob@example.com", "github") is None
