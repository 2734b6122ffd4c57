"""Service account tokens against the stand-in token endpoint (which verifies each RS256
assertion): minted once, shared by concurrent first callers, renewed in the background before
expiry, and a failing endpoint is not hammered once per request."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from irisgate.cloudauth.service_account import REFRESH_BEFORE, RETRY_AFTER_FAILURE, TokenSource
from irisgate.config.cloudkeys import parse_service_account
from irisgate.testing import FakeGoogleOAuth
from irisgate.wire.errors import GatewayError


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def oauth() -> Iterator[FakeGoogleOAuth]:
    with FakeGoogleOAuth() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def source(oauth: FakeGoogleOAuth, http: aiohttp.ClientSession, clock: Clock) -> TokenSource:
    keyfile = oauth.service_account()
    return TokenSource(parse_service_account("keyfile::" + keyfile), http, clock)


async def test_minted_once_and_shared(oauth: FakeGoogleOAuth, http: aiohttp.ClientSession) -> None:
    oauth.expires_in = 3600
    clock = Clock()
    tokens = source(oauth, http, clock)
    first = await asyncio.gather(*(tokens.token() for _ in range(5)))
    assert len(set(first)) == 1 and tokens.mints == 1
    clock.now += 3600 - REFRESH_BEFORE - 1
    assert await tokens.token() == first[0] and tokens.mints == 1


async def test_renewed_in_the_background(
    oauth: FakeGoogleOAuth, http: aiohttp.ClientSession
) -> None:
    oauth.expires_in = 3600
    clock = Clock()
    tokens = source(oauth, http, clock)
    old = await tokens.token()
    clock.now += 3600 - REFRESH_BEFORE + 1  # inside the renewal window
    assert await tokens.token() == old, "the old token is still good: no waiting"
    for _ in range(3000):  # 30 s: only a stuck renewal takes this long
        if tokens.mints == 2:
            break
        await asyncio.sleep(0.01)
    assert tokens.mints == 2
    new = await tokens.token()
    assert new != old and new == oauth.issued[-1]
    clock.now += 3600 + 1  # the new one expired too: the next caller waits for a mint
    assert await tokens.token() not in (old, new)
    assert oauth.refused == []


async def test_failures_are_not_retried_per_request(
    oauth: FakeGoogleOAuth, http: aiohttp.ClientSession
) -> None:
    clock = Clock()
    stranger = json.loads(oauth.service_account())
    stranger["client_email"] = "nobody@elsewhere.iam.gserviceaccount.com"  # unknown issuer
    tokens = TokenSource(parse_service_account("keyfile::" + json.dumps(stranger)), http, clock)
    refused = len(oauth.refused)
    with pytest.raises(GatewayError) as first:
        await tokens.token()
    assert first.value.status == 502 and "refused service account" in first.value.message
    assert "invalid_grant" in first.value.message or "Invalid JWT" in first.value.message
    with pytest.raises(GatewayError):
        await tokens.token()
    assert len(oauth.refused) == refused + 1, "the second request did not mint again"
    clock.now += RETRY_AFTER_FAILURE + 1
    with pytest.raises(GatewayError):
        await tokens.token()
    assert len(oauth.refused) == refused + 2
