"""The key that encrypts connector tokens at rest, and encryption with it (Fernet).

The key comes from the `connector_key` setting (`IRISGATE_CONNECTOR_KEY`). Without one, a
key is generated into `<data dir>/connector.key` (mode 0600) on first start and read from
there afterwards; instances sharing one database must share the key (set the setting).
Fernet authenticates as well as encrypts, and its timestamps let OAuth `state` values expire.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog
from cryptography.fernet import Fernet, InvalidToken

from irisgate.settings import Settings

log = structlog.get_logger("irisgate.connectors")
KEY_FILE = "connector.key"

__all__ = ["InvalidToken", "SecretBox", "load_key"]


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def open(self, token: bytes, *, ttl: int | None = None) -> bytes:
        """The sealed data; InvalidToken when forged, sealed with another key or too old."""
        return self._fernet.decrypt(token, ttl=ttl)


def load_key(settings: Settings) -> bytes:
    """The configured key, else the data dir's key file (created when missing)."""
    if settings.connector_key:  # checked by load_settings
        return settings.connector_key.encode()
    path = Path(settings.data_dir) / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another instance on the same data dir was first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key + b"\n")
    log.warning(
        "generated a key for connector tokens; keep it with the database or set"
        " IRISGATE_CONNECTOR_KEY",
        path=str(path),
    )
    return key
