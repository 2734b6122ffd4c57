"""A client that stops reading a streamed answer is cut after `--send-timeout`.

Through a real irisgate (send timeout 1 s) with a raw socket that asks for a long stream,
reads the answer's head and then reads nothing more. irisgate must cut the connection, stop
the upstream stream and record the request as cancelled, with estimated usage, like a
client that disconnected. The test waits for those facts, never for a time to pass.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from conftest import ALICE_IP, gateway_config, wait_for_record
from rawhttp import closed_by_server

from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.server import IrisgateServer

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def gw(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IrisgateServer]:
    assert localapi.socket_path
    server = IrisgateServer(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("stalled"),
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_SEND_TIMEOUT": "1", "IRISGATE_MAX_CAPTURE_BODY": "1MiB"},
    )
    with server:
        yield server


@pytest.fixture
def long_stream(fake_llm: FakeLLM) -> FakeLLM:
    """A 32 MiB stream: far more than the socket buffers and irisgate's read-ahead hold."""
    fake_llm.record = False
    fake_llm.reply_text = "lorem ipsum " * (32 * MIB // 12)
    fake_llm.n_chunks = 4096
    return fake_llm


def test_a_client_that_stops_reading_a_stream_is_cut_and_recorded_cancelled(
    gw: IrisgateServer, long_stream: FakeLLM
) -> None:
    body = json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((ALICE_IP, 0))
    sock.settimeout(60)  # a server that never cuts fails the test instead of hanging it
    with sock:
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            b"content-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 200 ")
        request_id = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"x-irisgate-request-id:")
        )
        # from here on the client reads nothing: only the server can end the exchange
        record = wait_for_record(gw, request_id, timeout=30)
        assert long_stream.wait_for(lambda: long_stream.cancelled_streams == 1, timeout=60)
        got = b""
        try:
            while piece := sock.recv(65536):
                got += piece
        except ConnectionResetError:
            pass
        assert closed_by_server(sock)
    assert not got.endswith(b"0\r\n\r\n")  # the stream was cut, not finished
    assert record["cancelled"] is True
    assert record["status"] == 200
    assert record["usage_estimated"] is True and record["output_tokens"] > 0
    assert "client stopped reading its answer" in gw.logs()
