"""irisgate API keys on the wire: the secret's format, its hash, and finding it in a request.

A secret is `irisgate_` + 43 characters of URL-safe base64 (32 random bytes, 256 bits) + 6
base62 characters of the CRC-32 of what precedes them, 58 characters in all:

    irisgate_ + 43 of [A-Za-z0-9_-] + 6 of [A-Za-z0-9]

The prefix is what secret scanners (GitHub push protection, gitleaks, trufflehog) match on:
a fixed, distinctive word is matched with almost no false positives, and the checksum lets a
scanner (and irisgate) tell a real key from a similar-looking string without asking anyone,
as GitHub's own `ghp_` tokens do. `irisgate_[A-Za-z0-9_-]{43}[A-Za-z0-9]{6}` matches one.

Keys are stored as the SHA-256 of the secret (hex): with 256 random bits there is nothing
to guess, so a salt or a slow hash would add cost on every request and no safety; a leaked
table gives no usable key. The hash is also the lookup key of the in-memory key ring.

A request carries a key in any of the headers the official SDKs send one in:
`Authorization: Bearer` (OpenAI; also Amazon Bedrock API keys, which boto3 sends as
`Authorization: Bearer` from `AWS_BEARER_TOKEN_BEDROCK`), `x-api-key` (Anthropic) and
`x-goog-api-key` (Google Gen AI). Only a value with the prefix is a key: a client's
placeholder (`-`, `dummy`, a SigV4 `AWS4-HMAC-SHA256 …` signature) is ignored as before.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import zlib

from irisgate.identity import KeyRefused
from irisgate.wire.upstream import IRISGATE_KEY_PREFIX

PREFIX = IRISGATE_KEY_PREFIX
_BODY = 43  # 32 bytes of URL-safe base64, unpadded
_CHECK = 6  # base62 CRC-32 (62**6 > 2**32)
SECRET_LENGTH = len(PREFIX) + _BODY + _CHECK
#: characters of a secret shown to tell keys apart (the prefix and 5 random ones)
SHOWN = len(PREFIX) + 5
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
#: the headers a key may come in (lower case, as ASGI gives them)
_KEY_HEADERS = (b"authorization", b"x-api-key", b"x-goog-api-key")
_PREFIX_BYTES = PREFIX.encode()


def _checksum(text: str) -> str:
    value = zlib.crc32(text.encode())
    out = []
    for _ in range(_CHECK):
        value, digit = divmod(value, 62)
        out.append(_BASE62[digit])
    return "".join(reversed(out))


def new_secret() -> str:
    """A fresh secret (see the module doc for its format)."""
    body = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return PREFIX + body + _checksum(PREFIX + body)


def well_formed(secret: str) -> bool:
    """Whether `secret` has the format and a correct checksum (not whether it is known)."""
    if len(secret) != SECRET_LENGTH or not secret.startswith(PREFIX):
        return False
    body = secret[len(PREFIX) : len(PREFIX) + _BODY]
    if not _BODY_CHARS.issuperset(body):
        return False
    return _checksum(secret[: len(PREFIX) + _BODY]) == secret[len(PREFIX) + _BODY :]


def secret_hash(secret: str) -> str:
    """What is stored and looked up: SHA-256 of the secret, 64 lower-case hex digits."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_in(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The irisgate key a request carries, None when it carries none.

    Raises `KeyRefused` when a key-looking value is malformed, or when two headers carry
    different keys (which one would count would depend on who reads them)."""
    found: str | None = None
    for name, raw in headers:
        if name not in _KEY_HEADERS:
            continue
        value = raw.strip()
        if name == b"authorization":
            scheme, _, value = value.partition(b" ")
            if scheme.lower() != b"bearer":
                continue
            value = value.strip()
        if not value.startswith(_PREFIX_BYTES):
            continue  # a placeholder or another kind of credential: not ours
        secret = value.decode("latin-1")
        if not well_formed(secret):
            raise KeyRefused("invalid API key: not a well-formed irisgate key")
        if found is not None and found != secret:
            raise KeyRefused("the request carries two different API keys; send one")
        found = secret
    return found
