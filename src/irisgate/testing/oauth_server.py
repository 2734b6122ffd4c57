"""A real OAuth 2.0 authorization server and OpenID provider for tests: npm's
`oauth2-mock-server`.

The project's tests pin it in `tests/oauth` (package.json + lock) and make it strict with
`server.mjs` there (PKCE S256, client authentication, one-shot refresh tokens) for the
connectors, and with `oidc.mjs` for sign-in (discovery, JWKS, ID tokens with nonce, and ways
to misbehave); these start a script and stop it afterwards.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def oauth_mock_server(
    directory: Path, client_id: str, client_secret: str, events: Path
) -> Iterator[str]:
    """Run `directory/server.mjs` for one client; yields the issuer URL (on 127.0.0.1).
    Every token-endpoint event is appended to `events` as a JSON line."""
    args = (client_id, client_secret, str(events))
    with _node_script(directory, "server.mjs", *args) as (_, issuer):
        yield issuer


class OidcProvider:
    """A running `oidc.mjs`: its issuer URL (http://127.0.0.1:PORT), and key rotation."""

    def __init__(self, process: subprocess.Popen[str], issuer: str) -> None:
        self._process = process
        self.issuer = issuer

    def rotate_keys(self) -> str:
        """Add a signing key (published in the JWKS, used in turn); returns its key id once
        the provider has it."""
        assert self._process.stdout is not None
        self._process.send_signal(signal.SIGUSR2)
        line = self._process.stdout.readline()
        assert line, "the OpenID provider exited"
        kid: str = json.loads(line)["rotated"]
        return kid


@contextmanager
def oidc_provider(
    directory: Path, client_id: str, client_secret: str, control: Path
) -> Iterator[OidcProvider]:
    """Run `directory/oidc.mjs`: an OpenID provider for one confidential client. Who signs
    in and how the provider misbehaves is the JSON in `control`, read at each token request
    (see oidc.mjs)."""
    args = (client_id, client_secret, str(control))
    with _node_script(directory, "oidc.mjs", *args) as (process, issuer):
        yield OidcProvider(process, issuer)


@contextmanager
def _node_script(
    directory: Path, script: str, *args: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    node = shutil.which("node")
    assert node, "node is required for the OAuth tests (make test installs it)"
    if not (directory / "node_modules" / "oauth2-mock-server").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(directory)], check=True
        )
    process = subprocess.Popen(
        [node, str(directory / script), *args],
        cwd=directory,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the OAuth server did not start"
        yield process, json.loads(line)["issuer"].replace("//localhost:", "//127.0.0.1:")
    finally:
        process.terminate()
        process.wait(10)
