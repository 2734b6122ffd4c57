"""Every request body has a limit, checked while it is read and before work is done on it.

Through a real irisgate with raw sockets: a `Content-Length` over the limit is refused from
the header alone, a chunked body is cut as soon as it crosses the limit, a caller without a
role is refused before a byte of the body is read, each path answers 413 in its own format,
and three 400 MiB bodies sent at once leave the server's memory where it was.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ALICE_IP, NOBODY_IP, STRANGER_IP, gateway_config
from rawhttp import Answer, memory_kib, read_answer

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

LIMIT = 1024 * 1024  # every body limit in this module
HUGE = 400 * 1024 * 1024


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    assert localapi.socket_path
    grants = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])["grants"]
    grants[0]["app"]["tailscale.com/cap/aperture"].append({"connectors": ["**"]})
    config = gateway_config(
        fake_llm.base_url,
        grants=grants,
        connectors={"servers": {"open": {"protocol": "http", "url": fake_llm.base_url}}},
    )
    server = IrisgateServer(
        config,
        data_dir=tmp_path_factory.mktemp("limits"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={
            "IRISGATE_MAX_REQUEST_BODY": "1MiB",
            "IRISGATE_MAX_CONNECTOR_BODY": "1MiB",
            "IRISGATE_MAX_API_BODY": "1MiB",
            "IRISGATE_ALLOW_LOCAL_CONNECTORS": "true",
        },
    )
    with server:
        yield server


def _connect(gw: IrisgateServer, ip: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((ip, 0))
    sock.connect(("127.0.0.1", gw.port))
    sock.settimeout(60)  # a hang fails the test instead of blocking the suite
    return sock


def _head(path: str, length: int | None, method: str = "POST", extra: str = "") -> bytes:
    sized = f"content-length: {length}\r\n" if length is not None else ""
    chunked = "" if length is not None else "transfer-encoding: chunked\r\n"
    return (
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"{extra}{sized}{chunked}\r\n"
    ).encode()


def _declared(gw: IrisgateServer, ip: str, path: str, method: str = "POST") -> Answer:
    """Send only a head announcing a 400 MiB body; the answer must come without the body."""
    with _connect(gw, ip) as sock:
        sock.sendall(_head(path, HUGE, method, "anthropic-version: 2023-06-01\r\n"))
        answer = read_answer(sock)
        assert sock.recv(1) == b"", "the connection stays open after a refusal"
        return answer


@pytest.mark.parametrize(
    ("path", "method", "status", "envelope"),
    [
        ("/v1/chat/completions", "POST", 413, "openai"),
        ("/v1/messages", "POST", 413, "anthropic"),
        ("/v1beta/models/gemini-2.0-flash:generateContent", "POST", 413, "gemini"),
        ("/bedrock/model/anthropic.claude-sonnet-4-5/converse", "POST", 413, "bedrock"),
        ("/v1/connectors/open/anything", "POST", 413, "api"),
        ("/api/config", "PUT", 413, "api"),
        ("/api/chat/conversations", "POST", 413, "api"),
        ("/v1/mcp", "POST", 413, "jsonrpc"),
    ],
)
def test_a_declared_length_over_the_limit_is_refused_from_the_header(
    gw: IrisgateServer, path: str, method: str, status: int, envelope: str
) -> None:
    answer = _declared(gw, ALICE_IP, path, method)
    assert answer.status == status, answer.body
    body = json.loads(answer.body)
    if status == 413:
        message = _message(body, envelope)
        assert f"larger than {LIMIT} bytes" in message
        assert "--max-" in message


def _message(body: dict[str, object], envelope: str) -> str:
    if envelope == "openai":
        error = body["error"]
        assert isinstance(error, dict) and error["type"] == "invalid_request_error"
        return str(error["message"])
    if envelope == "anthropic":
        assert body["type"] == "error"
        error = body["error"]
        assert isinstance(error, dict)
        return str(error["message"])
    if envelope == "gemini":
        error = body["error"]
        assert isinstance(error, dict) and error["code"] == 413
        return str(error["message"])
    if envelope == "bedrock":
        return str(body["message"])
    if envelope == "jsonrpc":
        assert body["jsonrpc"] == "2.0"
        error = body["error"]
        assert isinstance(error, dict)
        return str(error["message"])
    return str(body["error"])


@pytest.mark.parametrize("ip", [NOBODY_IP, STRANGER_IP])
@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/connectors/open/x", "/api/config", "/v1/mcp"]
)
def test_a_caller_without_a_role_is_refused_before_the_body_is_read(
    gw: IrisgateServer, ip: str, path: str
) -> None:
    answer = _declared(gw, ip, path, "PUT" if path == "/api/config" else "POST")
    assert answer.status == 403, answer.body
    assert b"access denied" in answer.body


def test_no_100_continue_for_a_caller_without_a_role(gw: IrisgateServer) -> None:
    """A client that waits for `100 Continue` before sending its body gets the refusal."""
    with _connect(gw, NOBODY_IP) as sock:
        sock.sendall(_head("/v1/chat/completions", HUGE, extra="expect: 100-continue\r\n"))
        answer = read_answer(sock)
    assert answer.status == 403


def test_a_chunked_body_is_cut_as_soon_as_it_crosses_the_limit(gw: IrisgateServer) -> None:
    piece = b"x" * 65536
    sent = 0
    with _connect(gw, ALICE_IP) as sock:
        sock.sendall(_head("/v1/chat/completions", None))
        sock.settimeout(0.001)
        try:
            while sent < 64 * LIMIT:  # the server stops reading long before this
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(60)
        answer = read_answer(sock)
    assert answer.status == 413
    assert f"larger than {LIMIT} bytes" in json.loads(answer.body)["error"]["message"]
    assert sent < 64 * LIMIT


def test_a_body_at_the_limit_is_served(gw: IrisgateServer, fake_llm: FakeLLM) -> None:
    filler = "a" * (LIMIT - 200)
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": filler}]}
    ).encode()
    assert len(body) <= LIMIT
    with _connect(gw, ALICE_IP) as sock:
        sock.sendall(_head("/v1/chat/completions", len(body)) + body)
        answer = read_answer(sock)
    assert answer.status == 200, answer.body


def _stream_huge(
    gw: IrisgateServer, statuses: list[int], chunked: bool, size: int = HUGE
) -> None:
    """Send a `size` body as fast as the server takes it, until it answers and closes."""
    piece = b"x" * (1 << 20)
    with _connect(gw, ALICE_IP) as sock:
        sock.sendall(_head("/v1/chat/completions", None if chunked else size))
        frame = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
        try:
            for _ in range(size // len(piece)):
                sock.sendall(frame)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            statuses.append(read_answer(sock).status)
        except ConnectionResetError:  # the answer was lost to the reset of the unread body
            statuses.append(0)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_three_400_mib_bodies_at_once_leave_memory_where_it_was(
    gw: IrisgateServer, chunked: bool
) -> None:
    assert gw.process is not None
    before = memory_kib(gw.process.pid)
    statuses: list[int] = []
    senders = [
        threading.Thread(target=_stream_huge, args=(gw, statuses, chunked)) for _ in range(3)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    after = memory_kib(gw.process.pid)
    assert len(statuses) == 3
    assert set(statuses) <= {413, 0}
    assert 413 in statuses
    # the peak (VmHWM) may grow by the 1 MiB limit per body and some slack, never by the bodies
    assert after["VmHWM"] - before["VmHWM"] < 16 * 1024, (before, after)


def test_chunked_bodies_past_the_default_limit_never_cost_their_size_in_memory(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path: Path
) -> None:
    """With the default 64 MiB limit, a body without `Content-Length` is kept in memory only
    up to 1 MiB and then in a temporary file until it ends: three chunked bodies refused at
    64 MiB leave the peak memory where it was (held in memory, they cost 3 x 64 MiB)."""
    assert localapi.socket_path
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path,
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
    )
    with server:
        assert server.process is not None
        before = memory_kib(server.process.pid)
        statuses: list[int] = []
        senders = [
            threading.Thread(target=_stream_huge, args=(server, statuses, True, 80 << 20))
            for _ in range(3)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        after = memory_kib(server.process.pid)
    assert len(statuses) == 3
    assert set(statuses) <= {413, 0}
    assert 413 in statuses
    assert after["VmHWM"] - before["VmHWM"] < 16 * 1024, (before, after)


def test_api_body_over_the_limit_is_413_naming_the_setting(gw: IrisgateServer) -> None:
    body = json.dumps({"config": "x" * LIMIT, "hash": "h"}).encode()
    with _connect(gw, ALICE_IP) as sock:
        sock.sendall(_head("/api/config", len(body), "PUT") + body)
        answer = read_answer(sock)
    assert answer.status == 413
    assert "--max-api-body" in json.loads(answer.body)["error"]


def test_limits_are_checked_where_they_are_set(tmp_path: Path) -> None:
    server = IrisgateServer(
        None, data_dir=tmp_path, env={"IRISGATE_MAX_REQUEST_BODY": "lots"}
    )
    with pytest.raises(RuntimeError, match="max-request-body must be a positive whole number"):
        server.start()
