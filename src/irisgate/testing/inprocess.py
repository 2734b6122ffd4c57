"""irisgate's web app in the test's own process, for tests of request handling where a
process of its own is not the point.

    with InProcessIrisgate(config_text, data_dir=tmp_path) as gw:
        answer = gw.client.get("/api/whoami")
        sdk = openai.OpenAI(base_url=gw.url + "/v1", api_key="-", http_client=gw.client)

The app is the one `irisgate serve` runs (`irisgate.app.build_app`), with the settings the
same flags and `IRISGATE_*` variables give it, started and stopped by its lifespan like
under the server. `client` is an httpx2 client (Starlette's `TestClient`) that hands each
request to the app in an event loop of its own thread, from the peer 127.0.0.1: no port, no
process start, no Python start-up (about 1.3 s of CPU for each `IrisgateServer`).
`client_from(ip)` is another client of the same running app whose requests come from `ip`:
with `tailscale` identity and the fake LocalAPI, each loopback address is a tailnet user.

    alice = openai.OpenAI(
        base_url=gw.url + "/v1", api_key="-", http_client=gw.client_from("127.0.0.2")
    )

What is not there: the listener (connection, header and time limits, `--port-file`),
signals and shutdown grace, worker processes, and the start-up checks of `irisgate serve`
(config check, log set-up); a test about one of those uses `IrisgateServer`. An answer
reaches the client once the app has sent all of it (Starlette's `TestClient` reads it whole):
a test of what a client sees while a stream is still coming uses `IrisgateServer` too.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from starlette.testclient import TestClient

from irisgate.app import build_app
from irisgate.drain import Drain
from irisgate.settings import load_settings

#: the address requests come from, as irisgate sees the peer of a TCP connection
PEER = ("127.0.0.1", 50000)


class InProcessIrisgate:
    """irisgate's app in this process with its lifespan (see the module doc)."""

    url = "http://127.0.0.1"

    def __init__(
        self,
        config_text: str | None,
        *,
        data_dir: Path,
        identity: str = "dev",
        database: str | None = None,
        tailscaled_socket: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """The arguments mean what `IrisgateServer`'s do: the config file's text (written to
        `data_dir/config.hujson`), `--identity`, `--database`, `--tailscaled-socket`, and
        `IRISGATE_*` variables on top of this process's environment."""
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        flags: dict[str, str | None] = {
            "identity": identity,
            "data_dir": str(data_dir),
            "database": database,
            "tailscaled_socket": tailscaled_socket,
            "listen": "127.0.0.1:0",
        }
        self.config_path: Path | None = None
        if config_text is not None:
            self.config_path = data_dir / "config.hujson"
            self.config_path.write_text(config_text, encoding="utf-8")
            flags["config"] = str(self.config_path)
        self.settings = load_settings(flags, {**os.environ, **(env or {})})
        self._client: TestClient | None = None
        self._peers: list[TestClient] = []

    @property
    def client(self) -> TestClient:
        """The client of the running app (after `start()`)."""
        if self._client is None:
            raise RuntimeError("InProcessIrisgate has no client before start()")
        return self._client

    def client_from(self, ip: str) -> TestClient:
        """A client of the running app (after `start()`) whose requests come from `ip`, as if
        over a TCP connection from that address; it is closed by `stop()`."""
        main = self.client
        peer = _PeerClient(
            main.app, base_url=self.url, raise_server_exceptions=False, client=(ip, PEER[1])
        )
        peer.portal = main.portal  # the app's event loop, where its lifespan runs
        peer.app_state.update(main.app_state)  # the lifespan's state: runtime, gateway …
        self._peers.append(peer)
        return peer

    def start(self) -> InProcessIrisgate:
        """Build the app and run its start-up; returns once it would serve."""
        client = TestClient(
            build_app(self.settings, Drain()),
            base_url=self.url,
            raise_server_exceptions=False,  # an error answers 500, as over HTTP
            client=PEER,
        )
        client.__enter__()
        self._client = client
        return self

    def stop(self) -> None:
        """Run the app's shutdown (the records written, connections closed)."""
        client, self._client = self._client, None
        for peer in self._peers:
            peer.portal = None  # not the peer's to close
            peer.close()
        self._peers.clear()
        if client is not None:
            client.__exit__(None, None, None)

    def __enter__(self) -> InProcessIrisgate:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _PeerClient(TestClient):
    """A client of an app another `TestClient` runs: `with` it does not start the app's
    lifespan again (as `TestClient` would), and leaving it does not stop the app."""

    def __enter__(self) -> _PeerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass
