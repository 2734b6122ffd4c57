"""AWS Signature Version 4 for Bedrock runtime requests.

Our own ~60 lines instead of botocore's signer: botocore is a large runtime dependency (and
slow to import) for what is a canonical string and four HMACs, and signing sits on the
request path. tests/cloudauth checks the output against botocore's `SigV4Auth` byte for byte
and against AWS's published example signing key.

Signing happens last, on the final body and URL (the gateway may have rewritten both). Signed
headers: `host`, `x-amz-date`, `x-amz-security-token` (with temporary credentials) and
`content-type` when present; the path is URI-encoded once more, as AWS does for every service
except S3 (a model id's `%3A` is signed as `%253A`).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

from irisgate.config.cloudkeys import AwsKeys

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "bedrock"
_SIGNED_EXTRA = ("content-type",)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(
    method: str, url: str, headers: dict[str, str], signed: list[str], body: bytes
) -> str:
    parts = urlsplit(url)
    lines = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed)
    return "\n".join(
        (
            method,
            quote(parts.path or "/", safe="/~"),
            canonical_query(parts.query),
            lines,
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        )
    )


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    keys: AwsKeys,
    *,
    service: str = SERVICE,
    now: datetime | None = None,
) -> None:
    """Add `x-amz-date`, `x-amz-security-token` and `authorization` to `headers` (lower-case
    names) for this exact request. Client-sent `x-amz-*` headers must be gone already."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    headers["host"] = urlsplit(url).netloc
    headers["x-amz-date"] = stamp
    if keys.session_token:
        headers["x-amz-security-token"] = keys.session_token
    signed = sorted(
        name
        for name in headers
        if name in ("host", "x-amz-date", "x-amz-security-token") or name in _SIGNED_EXTRA
    )
    request = canonical_request(method, url, headers, signed, body)
    scope = f"{stamp[:8]}/{keys.region}/{service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, stamp, scope, hashlib.sha256(request.encode()).hexdigest()))
    key = signing_key(keys.secret_access_key, stamp[:8], keys.region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"{ALGORITHM} Credential={keys.access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    del headers["host"]  # the HTTP client sends Host itself, from the same URL


def verify(
    method: str, url: str, headers: dict[str, str], body: bytes, keys: AwsKeys
) -> str | None:
    """Check a received request's signature (for fakes); None if valid, else why not."""
    auth = headers.get("authorization", "")
    if not auth.startswith(ALGORITHM + " "):
        return "no AWS4-HMAC-SHA256 authorization header"
    fields = dict(
        item.strip().split("=", 1) for item in auth[len(ALGORITHM) + 1 :].split(",") if "=" in item
    )
    credential = fields.get("Credential", "").split("/")
    if len(credential) != 5 or credential[0] != keys.access_key_id:
        return "unknown access key"
    date, region, service = credential[1], credential[2], credential[3]
    signed = fields.get("SignedHeaders", "").split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        return "signed headers missing from the request"
    stamp = headers.get("x-amz-date", "")
    request = canonical_request(method, url, headers, signed, body)
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join((ALGORITHM, stamp, scope, hashlib.sha256(request.encode()).hexdigest()))
    key = signing_key(keys.secret_access_key, date, region, service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        return "signature does not match"
    return None
