"""`database.save_raws`: the upstream answer kept byte for byte, and retention's `raws`.

irisgate's app in the test's process (`InProcessIrisgate`) in front of the FakeLLM, called
with the official openai SDK; what irisgate stored is read back through the management API
(and, to prove nothing is kept when it should not be, from the database itself). The FakeLLM
logs the exact bytes it sent (`responses`), which is what the stored raw answer must equal:
SSE as streamed (including the usage chunk irisgate asked for and filtered out for the
client), gzip as compressed.

The store-side tests run on SQLite and on PostgreSQL (`IRISGATE_TEST_POSTGRES=0` skips the
PostgreSQL runs, as in the other PostgreSQL modules).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import (
    BOB_IP,
    Gateway,
    anthropic_client,
    client_from,
    openai_client,
    wait_for_record,
)
from sqlalchemy.engine import make_url
from test_e2e_retention import config, metric, purge_ran, wait_until

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate

ADMIN_URL = os.environ.get(
    "IRISGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
POSTGRES = pytest.param(
    "postgresql",
    marks=pytest.mark.skipif(
        os.environ.get("IRISGATE_TEST_POSTGRES", "1") == "0", reason="IRISGATE_TEST_POSTGRES=0"
    ),
)


async def _execute(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@dataclass
class Store:
    """Where the irisgate under test keeps its records, and direct access to them."""

    data_dir: Path
    url: str | None  # None: the SQLite file in data_dir

    def raw(self, request_id: str) -> tuple[bytes | None, str | None]:
        """The stored raw answer column and its encoding, read from the database itself."""
        sql = "SELECT response_raw, response_raw_encoding FROM captures WHERE request_id = "
        if self.url is None:
            with sqlite3.connect(self.data_dir / "irisgate.db") as db:
                row = db.execute(sql + "?", (request_id,)).fetchone()
        else:
            row = asyncio.run(_execute(self.url, sql + "$1", request_id))[0]
        return (None if row[0] is None else bytes(row[0])), row[1]

    def age(self, request_id: str) -> None:
        """Move one stored request two days into the past (irisgate is stopped)."""
        if self.url is None:
            with sqlite3.connect(self.data_dir / "irisgate.db") as db:
                db.execute(
                    "UPDATE requests SET started_at = datetime(started_at, '-2 days') "
                    "WHERE request_id = ?",
                    (request_id,),
                )
        else:
            asyncio.run(
                _execute(
                    self.url,
                    "UPDATE requests SET started_at = started_at - interval '2 days' "
                    "WHERE request_id = $1",
                    request_id,
                )
            )

    def gateway(self, localapi: FakeLocalAPI, text: str) -> InProcessIrisgate:
        assert localapi.socket_path
        return InProcessIrisgate(
            text,
            data_dir=self.data_dir,
            identity="tailscale",
            tailscaled_socket=localapi.socket_path,
            database=self.url,
        )


@pytest.fixture(params=["sqlite", POSTGRES])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield Store(tmp_path, None)
        return
    name = f"irisgate_raws_{secrets.token_hex(6)}"
    asyncio.run(_execute(ADMIN_URL, f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        yield Store(tmp_path, url)
    finally:
        asyncio.run(_execute(ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def stream_chat(gw: Gateway, fake_llm: FakeLLM, text: str) -> str:
    """A streamed chat through the SDK, read to the end; returns the request id."""
    raw = openai_client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in raw.parse() if c.choices]
    assert "".join(pieces) == " ".join(f"tok{i}" for i in range(20))
    streams = fake_llm.completed_streams
    assert fake_llm.wait_for(lambda: fake_llm.completed_streams == streams)
    request_id: str = raw.headers["x-irisgate-request-id"]
    wait_for_record(gw, request_id)
    return request_id


def raw_of(stored: dict[str, Any]) -> bytes | None:
    value = stored["response_raw"]
    return None if value is None else base64.b64decode(value)


def test_streamed_and_gzipped_answers_are_kept_byte_for_byte(
    store: Store, fake_llm: FakeLLM, localapi: FakeLocalAPI
) -> None:
    with store.gateway(localapi, config(fake_llm.base_url, {"save_raws": True})) as gw:
        streamed = stream_chat(gw, fake_llm, "stream it")
        sent_stream = fake_llm.responses[-1]

        fake_llm.gzip = True
        answer = openai_client(gw).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "compress it"}]
        )
        assert answer.parse().choices[0].message.content == " ".join(f"tok{i}" for i in range(20))
        sent_gzip = fake_llm.responses[-1]
        gzipped = wait_for_record(gw, answer.headers["x-irisgate-request-id"])

        # a non-admin reading their own request gets no raw answer
        fake_llm.gzip = False
        own = anthropic_client(gw, BOB_IP).messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        bob_id = own.headers["x-irisgate-request-id"]
        wait_for_record(gw, bob_id)
        as_bob = client_from(BOB_IP, gw).get(f"/api/requests/{bob_id}")
        assert as_bob.status_code == 200
        assert "response_raw" not in as_bob.json() and as_bob.json()["response_body"]
        stored_stream = wait_for_record(gw, streamed)

    assert sent_stream.startswith(b"data: {") and sent_stream.endswith(b"data: [DONE]\n\n")
    assert b'"usage":{' in sent_stream  # the usage chunk irisgate filtered out for the client
    assert raw_of(stored_stream) == sent_stream
    assert stored_stream["response_raw_encoding"] == ""
    assert store.raw(streamed) == (sent_stream, "")

    assert sent_gzip[:2] == b"\x1f\x8b"
    assert raw_of(gzipped) == sent_gzip  # still compressed, exactly as the upstream sent it
    assert gzipped["response_raw_encoding"] == "gzip"
    assert gzip.decompress(sent_gzip) == gzipped["response_body"].encode()
    assert store.raw(gzipped["request_id"]) == (sent_gzip, "gzip")


@pytest.mark.parametrize(
    "database",
    [{}, {"save_raws": False}, {"save_raws": True, "retention": {"duration": "0"}}],
    ids=["default", "off", "zero-retention"],
)
def test_no_raw_answer_is_stored_unless_asked_for(
    database: dict[str, Any], tmp_path: Path, fake_llm: FakeLLM, localapi: FakeLocalAPI
) -> None:
    store = Store(tmp_path, None)
    with store.gateway(localapi, config(fake_llm.base_url, database)) as gw:
        request_id = stream_chat(gw, fake_llm, "keep nothing raw")
        stored = wait_for_record(gw, request_id)
    assert stored["response_raw"] is None and stored["response_raw_encoding"] is None
    assert store.raw(request_id) == (None, None)
    assert stored["output_tokens"] == 20, {k: v for k, v in stored.items() if "body" not in k}


def test_purge_worker_removes_raws_only_when_raws_is_purged(
    store: Store, fake_llm: FakeLLM, localapi: FakeLocalAPI
) -> None:
    def settings(**retention: Any) -> str:
        return config(
            fake_llm.base_url, {"save_raws": True, "retention": {"duration": "24h", **retention}}
        )

    with store.gateway(localapi, config(fake_llm.base_url, {"save_raws": True})) as gw:
        old = stream_chat(gw, fake_llm, "old question")
        old_sent = fake_llm.responses[-1]
        new = stream_chat(gw, fake_llm, "new question")
        new_sent = fake_llm.responses[-1]
    store.age(old)

    # not exported yet: require_export keeps everything
    with store.gateway(localapi, settings(purge=["raws"], require_export=True)) as gw:
        wait_until(lambda: purge_ran(gw), "a purge round")
        assert raw_of(wait_for_record(gw, old)) == old_sent

    # `bodies` is not `raws`: the processed bodies go, the raw answer stays
    with store.gateway(localapi, settings(purge=["bodies"])) as gw:
        wait_until(lambda: purge_ran(gw), "a purge round")
        bodies_gone = wait_for_record(gw, old)
    assert bodies_gone["response_body"] == "" and raw_of(bodies_gone) == old_sent

    with store.gateway(localapi, settings(purge=["raws"])) as gw:
        wait_until(lambda: purge_ran(gw), "a purge round")
        purged, kept = wait_for_record(gw, old), wait_for_record(gw, new)
        assert metric(gw, 'irisgate_retention_purged_total{category="raws"}') == 1
    assert purged["response_raw"] is None and purged["response_raw_encoding"] is None
    assert store.raw(old) == (None, None)
    assert purged["request_headers"] and purged["captured"]  # only raws were asked for
    assert purged["output_tokens"] == 20 and purged["cost_nanodollars"] > 0  # metrics stay
    assert raw_of(kept) == new_sent and "new question" in kept["request_body"]
