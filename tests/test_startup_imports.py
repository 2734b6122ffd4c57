"""A gateway that only serves LLM traffic does not carry the optional machinery.

The MCP SDK, httpx2's auth helpers, cryptography, Jinja2, Alembic and tiktoken together cost a
serving process tens of MiB of resident memory for its whole life (see bench/README.md); they
are loaded by the first request that needs them. This checks what `irisgate serve` imports
before any request: the app and its routes.
"""

from __future__ import annotations

import subprocess
import sys

LATE = ("mcp", "mcp_types", "alembic", "mako", "cryptography", "authlib", "jinja2", "tiktoken")


def test_the_app_imports_no_optional_machinery_before_it_is_used() -> None:
    script = (
        "import sys\n"
        "import irisgate.app, irisgate.cli\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({LATE!r})))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert run.stdout.strip() == "[]"
