"""Slow and incomplete requests are timed out, and half-sent ones cannot starve the gateway.

Through a real irisgate with raw sockets. The timeouts are set to 1 s and every test waits
for the server to close the connection (EOF), never for a time to pass.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Iterator

import httpx2
import pytest
from conftest import ALICE_IP, gateway_config
from rawhttp import closed_by_server, read_answer

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    server = IrisgateServer(
        None,
        data_dir=tmp_path_factory.mktemp("slow"),
        env={
            "IRISGATE_HEADER_TIMEOUT": "1",
            "IRISGATE_BODY_TIMEOUT": "1",
            "IRISGATE_KEEPALIVE_TIMEOUT": "1",
            "IRISGATE_MAX_HEADER_BYTES": "4KiB",
            "IRISGATE_MAX_HEADERS": "20",
        },
    )
    with server:
        yield server


def _connect(gw: IrisgateServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port))
    sock.settimeout(60)  # a server that never closes fails the test instead of hanging it
    return sock


def test_a_connection_that_sends_nothing_is_closed(gw: IrisgateServer) -> None:
    with _connect(gw) as sock:
        assert sock.recv(1) == b""


def test_a_half_sent_head_is_closed(gw: IrisgateServer) -> None:
    with _connect(gw) as sock:
        sock.sendall(HEAD)
        assert sock.recv(1) == b""


def test_a_head_trickled_byte_by_byte_is_closed_while_it_trickles(gw: IrisgateServer) -> None:
    """The header timeout counts from the start of the head, not from the last byte."""
    trickle = HEAD + b"x-padding: " + b"a" * 400
    sent = 0
    with _connect(gw) as sock:
        for byte in trickle:
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
        assert closed_by_server(sock)
    assert sent < len(trickle)


def test_a_stalled_body_is_closed(gw: IrisgateServer) -> None:
    with _connect(gw) as sock:
        sock.sendall(HEAD + b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{")
        assert sock.recv(1) == b""  # no answer: the client is not reading one


def test_an_idle_keepalive_connection_is_closed(gw: IrisgateServer) -> None:
    with _connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock).status == 200
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")  # still open
        assert read_answer(sock).status == 200
        assert sock.recv(1) == b""


def test_too_many_header_fields_get_431(gw: IrisgateServer) -> None:
    fields = b"".join(b"x-field-%d: v\r\n" % i for i in range(25))
    with _connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n" + fields + b"\r\n")
        answer = read_answer(sock)
        assert answer.status == 431
        assert answer.body == b"more than 20 header fields (--max-headers)\n"
        assert sock.recv(1) == b""


def test_a_head_over_the_size_limit_gets_431(gw: IrisgateServer) -> None:
    with _connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * 8192)
        answer = read_answer(sock)
        assert answer.status == 431
        assert answer.body == b"request head larger than 4096 bytes (--max-header-bytes)\n"


def test_a_normal_request_is_untouched_by_the_limits(gw: IrisgateServer) -> None:
    response = httpx2.get(gw.url + "/healthz", headers={f"x-h{i}": "v" for i in range(15)})
    assert response.status_code == 200


def test_half_sent_requests_give_way_to_new_clients(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Past --max-connections the oldest idle connection is closed for the new one: an
    attacker's half-sent requests cannot keep /healthz (or anyone) out."""
    cap, flood = 50, 200
    server = IrisgateServer(
        None,
        data_dir=tmp_path_factory.mktemp("flood"),
        env={"IRISGATE_MAX_CONNECTIONS": str(cap), "IRISGATE_HEADER_TIMEOUT": "600"},
    )
    with server:
        half_sent = []
        try:
            for _ in range(flood):
                sock = _connect(server)
                sock.sendall(HEAD)
                half_sent.append(sock)
            response = httpx2.get(server.url + "/healthz", timeout=60)
            assert response.status_code == 200
            # the first ones were closed to make room; the newest are still open
            assert all(closed_by_server(sock) for sock in half_sent[: flood - cap])
            readable, _, _ = select.select(half_sent[-cap // 2 :], [], [], 0)
            assert readable == []
        finally:
            for sock in half_sent:
                sock.close()


def test_requests_being_served_are_never_cut_for_new_connections(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """At the cap with every connection serving a request, a new one gets 503; the streams
    in flight finish whole."""
    assert localapi.socket_path
    cap = 3
    gate = threading.Event()
    fake_llm.stream_gate = gate
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("busy"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_MAX_CONNECTIONS": str(cap)},
    )
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    ).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    with server:
        streams = []
        try:
            for _ in range(cap):
                sock = socket.socket()
                sock.bind((ALICE_IP, 0))
                sock.connect(("127.0.0.1", server.port))
                sock.settimeout(60)
                sock.sendall(head + body)
                streams.append(sock)
            assert fake_llm.wait_for(lambda: fake_llm.gated_streams == cap, timeout=30)
            with _connect(server) as late:
                answer = read_answer(late)
                assert answer.status == 503
                assert b"too many connections (--max-connections)" in answer.body
                assert late.recv(1) == b""
            gate.set()
            for sock in streams:
                answer = read_answer(sock)
                assert answer.status == 200
                assert answer.body.endswith(b"data: [DONE]\n\n")
        finally:
            gate.set()
            for sock in streams:
                sock.close()


def test_websocket_upgrades_do_not_use_up_the_connection_cap(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """irisgate serves no WebSocket: an upgrade request is an ordinary request, and its
    connection is counted out when it closes like any other."""
    cap = 5
    server = IrisgateServer(
        None,
        data_dir=tmp_path_factory.mktemp("upgrades"),
        env={"IRISGATE_MAX_CONNECTIONS": str(cap)},
    )
    upgrade = (
        b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\n"
        b"upgrade: websocket\r\nsec-websocket-version: 13\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with server:
        for _ in range(3 * cap):
            with _connect(server) as sock:
                sock.sendall(upgrade)
                read_answer(sock)
        assert httpx2.get(server.url + "/healthz", timeout=60).status_code == 200
