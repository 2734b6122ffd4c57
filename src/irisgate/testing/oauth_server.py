"""A real OAuth 2.0 authorization server for connector tests: npm's `oauth2-mock-server`.

The project's tests pin it in `tests/oauth` (package.json + lock) and make it strict with
`server.mjs` there (PKCE S256, client authentication, one-shot refresh tokens); this starts
that script and stops it afterwards.
"""

from __future__ import annotations

import json
import shutil
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
    node = shutil.which("node")
    assert node, "node is required for the OAuth tests (make test installs it)"
    if not (directory / "node_modules" / "oauth2-mock-server").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(directory)], check=True
        )
    process = subprocess.Popen(
        [node, str(directory / "server.mjs"), client_id, client_secret, str(events)],
        cwd=directory,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the OAuth server did not start"
        yield json.loads(line)["issuer"].replace("//localhost:", "//127.0.0.1:")
    finally:
        process.terminate()
        process.wait(10)
