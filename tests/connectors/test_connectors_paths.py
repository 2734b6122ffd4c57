"""Path-scoped connector grants hold against every encoding of the path.

Bob may use `wiki/public/**` only. Each request goes out on a raw socket, so the request line
reaches irisgate byte for byte (no client normalizes it first), and the upstream is a real
aiohttp server that records the raw path it received: what it was asked for must be what the
grant was matched on, and nothing that could read as `private/…` to any server gets there.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import BOB_IP, config_text, start_gateway

from irisgate.testing import FakeHttpApi, FakeLocalAPI
from irisgate.testing.server import IrisgateServer


@pytest.fixture(scope="module")
def api() -> Iterator[FakeHttpApi]:
    with FakeHttpApi() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(
    api: FakeHttpApi, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    text = config_text({"wiki": {"protocol": "http", "url": api.base_url}}, ["wiki/public/**"])
    gw = start_gateway(tmp_path_factory.mktemp("gw"), localapi, text)
    yield gw
    gw.stop()


def raw_get(gw: IrisgateServer, target: bytes) -> tuple[int, dict[str, Any]]:
    """`GET <target>` from Bob's address, the request line sent exactly as given."""
    with socket.create_connection(("127.0.0.1", gw.port), source_address=(BOB_IP, 0)) as sock:
        sock.sendall(
            b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = {"raw": body.decode("latin-1")}
    return status, parsed


ESCAPES = {
    b"public/..%2fprivate/x": "encoded '/'",
    b"public/..%2Fprivate/x": "encoded '/'",
    b"public/%2e%2e/private/x": "'.' and '..' segments",
    b"public/%2E%2E/private/x": "'.' and '..' segments",
    b"public/.%2e/private/x": "'.' and '..' segments",
    b"public/../private/x": "'.' and '..' segments",
    b"public/./../private/x": "'.' and '..' segments",
    b"public/..;/private/x": "'.' and '..' segments",
    b"public/..;jsessionid=1/private/x": "'.' and '..' segments",
    b"public/.. /private/x": None,  # a space on the request line: the HTTP parser refuses it
    b"public/..%20/private/x": "'.' and '..' segments",
    b"public/.../private/x": "'.' and '..' segments",
    b"public/%252e%252e/private/x": "percent-encoded twice",
    b"public/..%252fprivate/x": "percent-encoded twice",
    b"public/..%5cprivate/x": "encoded '/' and '\\'",
    b"public/..%5Cprivate/x": "encoded '/' and '\\'",
    b"public/..\\private/x": "encoded '/' and '\\'",
    b"public/%EF%BC%8E%EF%BC%8E/private/x": "'.' and '..' segments",  # fullwidth dots
    b"public/..%EF%BC%8Fprivate/x": "reads as a slash",  # fullwidth solidus
    b"public/..%E2%88%95private/x": "reads as a slash",  # division slash
    b"public/%2e%2e%00/private/x": "control character",
    b"public//x": "empty path segments",
    b"public/%zz": "two-digit hex escape",
    b"public/%ff": "is not UTF-8",
}


@pytest.mark.parametrize("rest", list(ESCAPES), ids=lambda r: r.decode("latin-1"))
def test_encoded_escapes_from_a_granted_path_are_refused(
    gateway: IrisgateServer, api: FakeHttpApi, rest: bytes
) -> None:
    count = len(api.requests)
    status, body = raw_get(gateway, b"/v1/connectors/wiki/" + rest)
    assert status == 400, body
    reason = ESCAPES[rest]
    if reason is not None:
        assert reason in body["error"], body
    assert len(api.requests) == count  # nothing reached the upstream


@pytest.mark.parametrize(
    ("rest", "seen"),
    [
        (b"public/a%20b", "/public/a%20b"),
        (b"public/caf%C3%A9", "/public/caf%C3%A9"),
        (b"public/%61bc", "/public/abc"),  # needlessly escaped: forwarded canonically
        (b"public/x;v=1", "/public/x;v=1"),
        (b"public/.well-known/a.b..c", "/public/.well-known/a.b..c"),
        (b"public/100%25", "/public/100%25"),
        (b"public/dir/", "/public/dir/"),
    ],
)
def test_granted_paths_reach_the_upstream_as_matched(
    gateway: IrisgateServer, api: FakeHttpApi, rest: bytes, seen: str
) -> None:
    status, body = raw_get(gateway, b"/v1/connectors/wiki/" + rest + b"?q=1")
    assert status == 200, body
    assert api.requests[-1].raw_path == seen
    assert api.requests[-1].query == {"q": "1"}


@pytest.mark.parametrize(
    "rest", [b"private/x", b"%70rivate/x", b"Public/x", b"publi%63/..%2f..%2fprivate"]
)
def test_paths_outside_the_grant_are_refused(
    gateway: IrisgateServer, api: FakeHttpApi, rest: bytes
) -> None:
    count = len(api.requests)
    status, body = raw_get(gateway, b"/v1/connectors/wiki/" + rest)
    assert status in (400, 403), body
    assert len(api.requests) == count
    if rest == b"%70rivate/x":  # the grant is matched on the decoded path, and says so
        assert body["error"] == "access denied: no connectors grant for wiki/private/x"
