"""Cloud credentials in a provider's `apikey`, parsed and checked once.

    keyfile::<service account JSON>   Google service account (Aperture's syntax for Vertex)
    sigv4::<JSON>                     AWS keys: {"access_key_id", "secret_access_key",
                                      "session_token" (optional), "region" (optional)}

The value may come through `env:`/`file:` like any secret. Errors name the field that is
wrong, never a secret's content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

KEYFILE = "keyfile::"
SIGV4 = "sigv4::"
PREFIXES = (KEYFILE, SIGV4)
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
_AWS_HOST = re.compile(r"bedrock-runtime(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
_VERTEX_HOST = re.compile(r"([a-z0-9-]+)-aiplatform\.googleapis\.com")


class CredentialError(ValueError):
    """The credential in `apikey` is malformed; the message says which part."""


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key: str = ""  # PEM
    private_key_id: str = ""
    token_uri: str = GOOGLE_TOKEN_URI
    project_id: str = ""

    def __repr__(self) -> str:
        return f"ServiceAccount({self.client_email!r})"


@dataclass(frozen=True, slots=True)
class AwsKeys:
    access_key_id: str
    secret_access_key: str
    session_token: str = ""
    region: str = ""

    def __repr__(self) -> str:
        return f"AwsKeys({self.access_key_id!r}, region={self.region!r})"


def is_cloud_key(value: str | None) -> bool:
    return bool(value) and value.startswith(PREFIXES)  # type: ignore[union-attr]


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise CredentialError(f"{what} is not valid JSON") from None
    if not isinstance(data, dict):
        raise CredentialError(f"{what} must be a JSON object")
    return data


def _text(data: dict[str, Any], name: str, what: str, *, required: bool = True) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or (required and not value):
        raise CredentialError(f"{what} has no '{name}' string")
    return value


def parse_service_account(value: str) -> ServiceAccount:
    what = "keyfile:: service account"
    data = _json_object(value[len(KEYFILE) :], what)
    if data.get("type", "service_account") != "service_account":
        raise CredentialError(f"{what} has type {data.get('type')!r}, expected 'service_account'")
    private_key = _text(data, "private_key", what)
    if "PRIVATE KEY" not in private_key:
        raise CredentialError(f"{what} 'private_key' is not a PEM private key")
    token_uri = _text(data, "token_uri", what, required=False) or GOOGLE_TOKEN_URI
    if urlsplit(token_uri).scheme not in ("http", "https"):
        raise CredentialError(f"{what} 'token_uri' must be an http(s) URL")
    return ServiceAccount(
        client_email=_text(data, "client_email", what),
        private_key=private_key,
        private_key_id=_text(data, "private_key_id", what, required=False),
        token_uri=token_uri,
        project_id=_text(data, "project_id", what, required=False),
    )


def parse_aws_keys(value: str, baseurl: str) -> AwsKeys:
    what = "sigv4:: AWS credentials"
    data = _json_object(value[len(SIGV4) :], what)
    access_key_id = _text(data, "access_key_id", what)
    secret_access_key = _text(data, "secret_access_key", what)
    region = _text(data, "region", what, required=False) or aws_region(baseurl)
    if not region:
        raise CredentialError(
            f"{what} has no 'region' and the baseurl is not bedrock-runtime.<region>.amazonaws.com"
        )
    return AwsKeys(
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=_text(data, "session_token", what, required=False),
        region=region,
    )


def aws_region(baseurl: str) -> str:
    match = _AWS_HOST.fullmatch(urlsplit(baseurl).hostname or "")
    return match[1] if match else ""


def vertex_region(baseurl: str) -> str:
    """`us-east5` for https://us-east5-aiplatform.googleapis.com; else `global`."""
    match = _VERTEX_HOST.fullmatch(urlsplit(baseurl).hostname or "")
    return match[1] if match else "global"


@lru_cache(maxsize=64)
def load_private_key(pem: str) -> RSAPrivateKey:
    # cryptography is imported on first use: only Vertex service accounts need it
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise CredentialError("keyfile:: service account 'private_key' cannot be read") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialError("keyfile:: service account 'private_key' is not an RSA key")
    return key


def problem(value: str | None, baseurl: str) -> str | None:
    """What is wrong with a cloud credential, or None (also for ordinary keys)."""
    if not is_cloud_key(value):
        return None
    assert value is not None
    try:
        if value.startswith(KEYFILE):
            account = parse_service_account(value)
            load_private_key(account.private_key)
        else:
            parse_aws_keys(value, baseurl)
    except CredentialError as exc:
        return str(exc)
    return None
