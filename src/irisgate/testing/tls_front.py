"""A TLS front for a plain-HTTP server: what `tailscale serve` or a load balancer does in front
of irisgate, for clients that speak HTTPS only (boto3 sends a Bedrock API key only over
HTTPS).

    with TlsFront(gw.port, certificate) as front:
        boto3.client(..., endpoint_url=front.url + "/bedrock", verify=str(cert.cert_path))

It listens on a free loopback port (port 0) and copies bytes both ways between each TLS
connection and a new TCP connection to the backend, until either side closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from irisgate.testing.lifecycle import StartStop
from irisgate.testing.tls import Certificate


class TlsFront(StartStop):
    def __init__(self, backend_port: int, certificate: Certificate) -> None:
        self._backend = backend_port
        self._context = certificate.server_context()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> TlsFront:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=30)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._context)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._backend)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    with contextlib.suppress(OSError, ConnectionError, RuntimeError):
        sink.close()
