"""What API key authentication costs per request, beside a request without a key.

    .venv/bin/python bench/keys.py

In-process, the identify step as the request path runs it (`KeyedResolver.resolve` in front
of the `dev` resolver): a request with a placeholder key (`Bearer sk-placeholder`, ignored:
the network identity) and one with a valid irisgate key (found in the headers, checksum
checked, SHA-256, a look-up in a ring of 1,000 keys, expiry checked). No database is touched
on either path; the ring's database is never asked (every key is in memory). The
end-to-end comparison is `bench/run.py --mode key` against `--mode core`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from irisgate.identity.keyring import KeyedResolver, KeyRing
from irisgate.identity.keys import SHOWN, new_secret, secret_hash
from irisgate.identity.owners import Owners
from irisgate.identity.resolver import DevResolver
from irisgate.store.keys import StoredKey

ROUNDS = 200_000


def stored(secret: str, number: int) -> StoredKey:
    return StoredKey(
        id=f"key_{number:016x}",
        secret_hash=secret_hash(secret),
        prefix=secret[:SHOWN],
        name=f"key {number}",
        owner=f"user{number}@example.com",
        service=False,
        created_by="bench",
        created_at=datetime.now(UTC),
        expires_at=None,
        revoked_at=None,
        revoked_by="",
        models=(),
        quota="",
        last_used_at=None,
    )


def headers(authorization: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"authorization", authorization.encode()),
        (b"user-agent", b"OpenAI/Python 2.8.1"),
        (b"content-length", b"120"),
    ]


async def per_request_us(resolver: KeyedResolver, sent: list[tuple[bytes, bytes]]) -> float:
    client = ("127.0.0.1", 50000)
    for _ in range(1000):  # warm
        await resolver.resolve(client, sent)
    start = time.perf_counter()
    for _ in range(ROUNDS):
        await resolver.resolve(client, sent)
    return (time.perf_counter() - start) / ROUNDS * 1e6


async def main() -> None:
    secrets = [new_secret() for _ in range(1000)]
    keys = [stored(s, i) for i, s in enumerate(secrets)]
    # no database: the ring is never asked to poll (an hour away) or to look a key up
    owners = Owners(30 * 86400.0, ())
    ring = KeyRing(db=None, poll_seconds=3600, keys=keys, owners=owners)  # type: ignore[arg-type]
    resolver = KeyedResolver(DevResolver("dev@localhost"), ring)
    without = await per_request_us(resolver, headers("Bearer sk-placeholder"))
    with_key = await per_request_us(resolver, headers(f"Bearer {secrets[500]}"))
    print(f"identify, no key (placeholder): {without:6.2f} µs per request")
    print(f"identify, irisgate API key:     {with_key:6.2f} µs per request")
    print(f"key authentication adds:        {with_key - without:6.2f} µs per request")


if __name__ == "__main__":
    asyncio.run(main())
