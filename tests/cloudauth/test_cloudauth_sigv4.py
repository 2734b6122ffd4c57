"""irisgate's SigV4 signer against AWS's published examples and botocore's own signer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from irisgate.cloudauth import sigv4
from irisgate.config.cloudkeys import AwsKeys

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def test_signing_key_matches_the_aws_documentation_example() -> None:
    # docs.aws.amazon.com "Examples of how to derive a signing key for Signature Version 4"
    key = sigv4.signing_key(SECRET, "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


def test_get_vanilla_from_the_aws_test_suite() -> None:
    headers: dict[str, str] = {}
    keys = AwsKeys("AKIDEXAMPLE", SECRET, region="us-east-1")
    now = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
    sigv4.sign(
        "GET", "https://example.amazonaws.com/", headers, b"", keys, service="service", now=now
    )
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


@pytest.mark.parametrize("token", ["", "FwoGZXIvYXdzEXAMPLE"])
@pytest.mark.parametrize(
    "url",
    [
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
        "us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",
        "http://127.0.0.1:8123/model/amazon.nova-pro-v1%3A0/converse-stream",
        "https://bedrock-runtime.eu-west-1.amazonaws.com/model/"
        "arn%3Aaws%3Abedrock%3Aeu-west-1%3A1%3Ainference-profile%2Feu.x/converse?a=b%20c&A=1",
    ],
)
def test_same_signature_as_botocore(url: str, token: str) -> None:
    body = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
    keys = AwsKeys("AKIDEXAMPLE", SECRET, token, "eu-central-1")
    now = datetime(2026, 11, 25, 18, 0, 5, tzinfo=UTC)
    ours = {"content-type": "application/json", "accept": "application/json"}
    sigv4.sign("POST", url, ours, body, keys, now=now)

    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    theirs = {"content-type": "application/json", "x-amz-date": stamp}
    if token:
        theirs["x-amz-security-token"] = token
    request = AWSRequest(method="POST", url=url, data=body, headers=theirs)
    request.context["timestamp"] = stamp
    auth = SigV4Auth(Credentials("AKIDEXAMPLE", SECRET, token or None), "bedrock", "eu-central-1")
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)

    assert ours["authorization"].endswith(f"Signature={signature}")
    assert (
        f"SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))},"
        in ours["authorization"]
    )
    assert "host" not in ours, "the HTTP client sets Host itself"
    assert sigv4.verify("POST", url, {**ours, "host": _host(url)}, body, keys) is None
    assert sigv4.verify("POST", url, {**ours, "host": _host(url)}, body + b" ", keys) is not None


def _host(url: str) -> str:
    return url.split("/")[2]
