"""One FakeLLM per test module, reset before each test, plus raw-HTTP helpers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from irisgate.testing import FakeLLM


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake(fake_server: FakeLLM) -> Iterator[FakeLLM]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()


Post = Callable[..., tuple[int, dict[str, str], bytes]]
Sse = Callable[[bytes], list[tuple[str | None, str]]]


def _post(
    url: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST JSON with the standard library (no SDK between the test and the wire)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) of every event in an SSE body."""
    out: list[tuple[str | None, str]] = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
        out.append((name, data))
    return out


@pytest.fixture
def post() -> Post:
    """`post(url, body, headers=None) -> (status, headers, raw body)`."""
    return _post


@pytest.fixture
def sse() -> Sse:
    """`sse(raw) -> [(event name or None, data)]`."""
    return _sse_events
