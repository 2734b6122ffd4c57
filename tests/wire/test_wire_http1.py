"""The relay's HTTP/1.1 client against real TCP (and TLS) servers that answer with scripted
bytes: framing, keep-alive reuse, timeouts, back-pressure, broken and malformed answers."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from irisgate.testing.server import free_port
from irisgate.testing.tls import self_signed
from irisgate.wire.http1 import Http1Client, UpstreamError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


class Upstream:
    """A TCP server running `handler` per connection, counting connections and keeping
    every request head it read."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.heads: list[bytes] = []
        self.url = ""

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request (head and Content-Length body); b"" when the client closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return b""
        self.heads.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        return head

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def upstream(
    handler: Handler, context: ssl.SSLContext | None = None
) -> AsyncIterator[Upstream]:
    up = Upstream(handler)
    server = await asyncio.start_server(up._serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    up.url = f"{'https' if context else 'http'}://127.0.0.1:{port}"
    try:
        yield up
    finally:
        server.close()


@asynccontextmanager
async def client(read_timeout: float | None = 5.0, **kwargs: object) -> AsyncIterator[Http1Client]:
    http = Http1Client(connect_timeout=2.0, read_timeout=read_timeout, **kwargs)  # type: ignore[arg-type]
    try:
        yield http
    finally:
        await http.close()


def answering(*answers: bytes) -> Callable[[Upstream], Handler]:
    """A handler that answers each request on a connection with the next of `answers`."""

    def make(up: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            for answer in answers:
                if not await up.read_request(reader):
                    return
                writer.write(answer)
                await writer.drain()
            await reader.read()  # keep the connection until the client closes it

        return handle

    return make


@asynccontextmanager
async def scripted(
    make: Callable[[Upstream], Handler], context: ssl.SSLContext | None = None
) -> AsyncIterator[Upstream]:
    holder: list[Upstream] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await make(holder[0])(reader, writer)

    async with upstream(handler, context) as up:
        holder.append(up)
        yield up


async def test_keep_alive_reuses_one_connection_and_sends_an_exact_head() -> None:
    async with scripted(answering(OK, OK)) as up, client() as http:
        for _ in range(2):
            answer = await http.request(
                "POST", f"{up.url}/v1/chat/completions?x=1", {"authorization": "Bearer k"}, b"{}"
            )
            assert answer.status == 200
            assert (b"content-type", b"application/json") in answer.raw_headers
            assert await answer.read() == b'{"ok":true}'
            answer.close()
        assert up.connections == 1
        host = up.url.removeprefix("http://").encode()
        assert up.heads[0] == (
            b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: " + host + b"\r\n"
            b"authorization: Bearer k\r\ncontent-length: 2\r\n\r\n"
        )


async def test_get_without_body_sends_no_content_length() -> None:
    async with scripted(answering(OK)) as up, client() as http:
        answer = await http.request("GET", f"{up.url}/v1/responses/r1", {}, b"")
        assert await answer.read() == b'{"ok":true}'
        answer.close()
        assert b"content-length" not in up.heads[0]


async def test_chunked_body_arrives_piece_by_piece() -> None:
    sent_second = asyncio.Event()
    release = asyncio.Event()

    def make(up: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await up.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await writer.drain()
            await release.wait()
            writer.write(b"6\r\n world\r\n0\r\n\r\n")
            sent_second.set()
            await up.read_request(reader)
            writer.write(OK)
            await reader.read()

        return handle

    async with scripted(make) as up, client() as http:
        answer = await http.request("POST", up.url + "/s", {}, b"x")
        assert answer.content_length is None
        first = await answer.chunk()
        assert first == (b"hello", False)  # while the upstream still holds the rest back
        release.set()
        await sent_second.wait()
        rest = b""
        while True:
            data, done = await answer.chunk()
            rest += data
            if done:
                break
        assert rest == b" world"
        answer.close()
        again = await http.request("POST", up.url + "/s", {}, b"x")  # reused, not opened
        again.close()
        assert up.connections == 1


async def test_body_until_close_ends_with_the_connection_and_is_not_reused() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"POST")
        await reader.readexactly(1)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")
        await writer.drain()

    async with upstream(handle) as up, client() as http:
        for _ in range(2):
            answer = await http.request("POST", up.url + "/", {}, b"x")
            assert await answer.read() == b"all of it"
            answer.close()
        assert up.connections == 2


async def test_connection_close_answer_is_not_reused() -> None:
    closing = OK.replace(b"content-length", b"connection: close\r\ncontent-length")
    async with scripted(answering(closing)) as up, client() as http:
        for _ in range(2):
            answer = await http.request("POST", up.url + "/", {}, b"x")
            assert await answer.read() == b'{"ok":true}'
            answer.close()
        assert up.connections == 2


async def test_an_idle_connection_the_upstream_closed_is_not_handed_out() -> None:
    closed = asyncio.Queue[None]()

    def make(up: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await up.read_request(reader)
            writer.write(OK)
            # and close at once, as a server with a short keep-alive timeout does; then wait
            # for the client to close its side, which it does once it has seen the close
            writer.write_eof()
            await reader.read()
            closed.put_nowait(None)

        return handle

    async with scripted(make) as up, client() as http:
        for _ in range(3):
            answer = await http.request("POST", up.url + "/", {}, b"x")
            assert await answer.read() == b'{"ok":true}'
            answer.close()
            await asyncio.wait_for(closed.get(), 30)  # the close reached the client
        assert up.connections == 3


async def test_interim_100_continue_is_skipped() -> None:
    answer_bytes = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with scripted(answering(answer_bytes)) as up, client() as http:
        answer = await http.request("POST", up.url + "/", {}, b"x")
        assert answer.status == 200
        assert await answer.read() == b'{"ok":true}'
        answer.close()


async def test_upstream_status_and_body_pass_as_they_are() -> None:
    error = b'{"error":{"message":"nope"}}'
    answer_bytes = b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: "
    answer_bytes += str(len(error)).encode() + b"\r\n\r\n" + error
    async with scripted(answering(answer_bytes)) as up, client() as http:
        answer = await http.request("POST", up.url + "/", {}, b"x")
        assert answer.status == 429
        assert (b"retry-after", b"7") in answer.raw_headers
        assert await answer.read() == error
        answer.close()


async def test_refused_connection_is_an_upstream_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # reserved: nothing listens there, nor will
    async with client() as http:
        with pytest.raises(UpstreamError, match=r"cannot connect to 127\.0\.0\.1"):
            await http.request("POST", url + "/", {}, b"x")


async def test_silence_before_the_answer_is_a_timeout() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with upstream(handle) as up, client(read_timeout=0.2) as http:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await http.request("POST", up.url + "/", {}, b"x")
        # not before the 0.2 s timeout (a busy machine can only make it later)
        assert asyncio.get_running_loop().time() - started > 0.15


async def test_silence_mid_body_is_a_timeout_after_what_arrived() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart")
        await reader.read()

    async with upstream(handle) as up, client(read_timeout=0.2) as http:
        answer = await http.request("POST", up.url + "/", {}, b"")
        assert await answer.chunk() == (b"part", False)
        with pytest.raises(TimeoutError):
            await answer.chunk()
        answer.close()


async def test_a_body_cut_short_is_an_upstream_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    async with upstream(handle) as up, client() as http:
        answer = await http.request("POST", up.url + "/", {}, b"")
        with pytest.raises(UpstreamError, match="closed the connection"):
            await answer.read()
        answer.close()


async def test_a_malformed_answer_is_an_upstream_error() -> None:
    async with scripted(answering(b"SMTP ready\r\n\r\n")) as up, client() as http:
        with pytest.raises(UpstreamError, match="invalid HTTP answer"):
            await http.request("POST", up.url + "/", {}, b"x")


async def test_oversized_answer_headers_are_refused() -> None:
    huge = b"HTTP/1.1 200 OK\r\n" + b"x-filler: " + b"a" * 70_000 + b"\r\ncontent-length: 0\r\n\r\n"
    async with scripted(answering(huge)) as up, client() as http:
        with pytest.raises(UpstreamError, match="headers larger than"):
            await http.request("POST", up.url + "/", {}, b"x")


async def test_line_breaks_in_headers_are_refused_before_anything_is_sent() -> None:
    async with scripted(answering(OK)) as up, client() as http:
        with pytest.raises(UpstreamError, match="line break"):
            await http.request("POST", up.url + "/", {"x-a": "1\r\nx-injected: 2"}, b"x")
        with pytest.raises(UpstreamError, match="space or control character"):
            await http.request("POST", up.url + "/a b", {}, b"x")
        assert up.heads == []


@pytest.mark.parametrize("value", ["sk-\x00abc", "a\x1b[31m", "b\x7f", "c\x0bd", "e\x0cf"])
async def test_other_control_characters_in_headers_are_refused_naming_the_header(
    value: str,
) -> None:
    async with scripted(answering(OK)) as up, client() as http:
        with pytest.raises(UpstreamError, match="header 'authorization' contains a control"):
            await http.request("POST", up.url + "/", {"authorization": value}, b"x")
        assert up.heads == []
        response = await http.request("POST", up.url + "/", {"x-tab": "a\tb"}, b"x")
        response.close()
        assert len(up.heads) == 1  # a tab is fine (RFC 9110 allows it in a value)


async def test_a_slow_reader_pauses_the_upstream() -> None:
    body = b"z" * (32 * 1024 * 1024)
    finished = asyncio.Event()

    def make(up: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await up.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()  # only once the client has taken (nearly) all of it
            finished.set()
            await reader.read()

        return handle

    async with scripted(make) as up, client() as http:
        answer = await http.request("POST", up.url + "/", {}, b"x")
        # Nobody reads the answer. Client and upstream share this event loop, and each turn
        # of it moves up to 256 KiB: a client that kept reading into memory would have taken
        # the whole body long before 2,000 turns (over 500 MiB).
        for _ in range(2000):
            await asyncio.sleep(0)
        assert not finished.is_set()  # the client stopped reading: its buffer is bounded
        assert len(await answer.read()) == len(body)
        answer.close()
        await asyncio.wait_for(finished.wait(), 30)


async def test_closing_before_the_end_closes_the_connection() -> None:
    seen_eof = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n")
        await reader.read()  # returns at the client's close
        seen_eof.set()

    async with upstream(handle) as up, client() as http:
        answer = await http.request("POST", up.url + "/", {}, b"")
        assert await answer.chunk() == (b"one", False)
        answer.close()  # as when the client went away mid-stream
        await asyncio.wait_for(seen_eof.wait(), 30)


async def test_tls_upstream_is_verified(tmp_path: Path) -> None:
    certificate = self_signed(tmp_path)
    async with scripted(answering(OK, OK), certificate.server_context()) as up:
        async with client(ssl_context=certificate.client_context()) as http:
            for _ in range(2):
                answer = await http.request("POST", up.url + "/", {}, b"x")
                assert await answer.read() == b'{"ok":true}'
                answer.close()
            assert up.connections == 1
        async with client() as http:  # the system store does not know this certificate
            with pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.request("POST", up.url + "/", {}, b"x")


class _Pieces:
    """A `BodyStream` giving out `pieces` in order, counting how many it gave."""

    def __init__(self, pieces: list[bytes], length: int | None) -> None:
        self.pieces = pieces
        self.length = length
        self.given = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.given += 1
            yield piece


def receiving(into: list[bytes]) -> Callable[[Upstream], Handler]:
    """A handler that reads one request whose body is chunked or has a length, keeps the
    body in `into`, and answers OK."""

    def make(up: Upstream) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            up.heads.append(head)
            body = b""
            if b"transfer-encoding: chunked" in head:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    data = await reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += data[:-2]
            else:
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
            into.append(body)
            writer.write(OK)
            await writer.drain()
            await reader.read()

        return handle

    return make


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "chunked"])
async def test_a_streamed_body_goes_out_as_it_comes(length: bool) -> None:
    pieces = [b"first ", b"", b"second ", b"x" * 300_000]
    whole = b"".join(pieces)
    bodies: list[bytes] = []
    body = _Pieces(pieces, len(whole) if length else None)
    async with scripted(receiving(bodies)) as up, client() as http:
        answer = await http.request("POST", f"{up.url}/v1/files", {}, body)
        assert answer.status == 200
        assert await answer.read() == b'{"ok":true}'
        answer.close()
    assert bodies == [whole]
    assert body.given == len(pieces)
    if length:
        assert f"content-length: {len(whole)}".encode() in up.heads[0]
    else:
        assert b"transfer-encoding: chunked" in up.heads[0]
        assert b"content-length" not in up.heads[0]


async def test_a_streamed_body_that_fails_ends_the_request() -> None:
    class Broken(_Pieces):
        async def _run(self) -> AsyncIterator[bytes]:
            yield b"part"
            raise ValueError("the client's upload was bad")

    bodies: list[bytes] = []
    async with scripted(receiving(bodies)) as up, client() as http:
        with pytest.raises(ValueError, match="upload was bad"):
            await http.request("POST", f"{up.url}/v1/files", {}, Broken([], None))
    assert bodies == []
