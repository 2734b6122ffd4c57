"""`--port-file`: where a server started on port 0 tells others the port it got.

Written by the process that bound the listening socket (one instance, or the supervisor of
`--workers`) once it serves; read by whoever started it (irisgate.testing.server does).
"""

from __future__ import annotations

import os
from pathlib import Path


def write_port_file(path: Path, port: int) -> None:
    """`--port-file`: the port listened on, then a newline, written whole or not at all (a
    new file renamed into place), so a reader polling for the file never sees half of it."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(f"{port}\n", encoding="ascii")
    partial.replace(path)
