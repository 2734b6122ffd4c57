"""The key that encrypts connector tokens at rest, and encryption with it (Fernet).

The key comes from the `connector_key` setting (`IRISGATE_CONNECTOR_KEY`). Without one, a
key is generated into `<data dir>/connector.key` (mode 0600) on first start and read from
there afterwards; instances sharing one database must share the key (set the setting).
Fernet authenticates as well as encrypts, and its timestamps let OAuth `state` values expire.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from irisgate.settings import Settings

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

log = structlog.get_logger("irisgate.connectors")
KEY_FILE = "connector.key"

__all__ = ["InvalidToken", "SecretBox", "load_key"]


class InvalidToken(Exception):
    """A sealed value that was forged, sealed with another key, or is too old."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self._fernet: Fernet | None = None

    def _box(self) -> Fernet:
        # cryptography is imported when the first secret is sealed or opened
        if self._fernet is None:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(self._key)
        return self._fernet

    def seal(self, data: bytes) -> bytes:
        return self._box().encrypt(data)

    def open(self, token: bytes, *, ttl: int | None = None) -> bytes:
        """The sealed data; InvalidToken when forged, sealed with another key or too old."""
        from cryptography import fernet

        try:
            return self._box().decrypt(token, ttl=ttl)
        except fernet.InvalidToken:
            raise InvalidToken("invalid or expired sealed value") from None


def load_key(settings: Settings) -> bytes:
    """The configured key, else the data dir's key file (created when missing)."""
    if settings.connector_key:  # checked by load_settings
        return settings.connector_key.encode()
    path = Path(settings.data_dir) / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = base64.urlsafe_b64encode(os.urandom(32))  # what Fernet.generate_key() makes
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
