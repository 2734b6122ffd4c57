"""The API key's wire format (sans-io): what a request's headers hold, and what is refused."""

from __future__ import annotations

import pytest

from irisgate.identity import KeyRefused
from irisgate.identity.keys import SECRET_LENGTH, key_in, new_secret, secret_hash, well_formed


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


def test_a_new_secret_has_the_prefix_length_and_a_checksum() -> None:
    secret = new_secret()
    assert secret.startswith("irisgate_") and len(secret) == SECRET_LENGTH == 58
    assert well_formed(secret)
    changed = secret[:20] + ("A" if secret[20] != "A" else "B") + secret[21:]
    assert not well_formed(changed)  # one character off: the checksum says so
    assert new_secret() != secret
    assert len(secret_hash(secret)) == 64 and secret not in secret_hash(secret)


@pytest.mark.parametrize(
    "sent",
    [
        {"authorization": "Bearer {}"},
        {"authorization": "bearer   {}  "},
        {"x_api_key": "{}"},
        {"x_goog_api_key": "{}"},
        {"authorization": "Bearer {}", "x_api_key": "{}"},  # the same key twice is one key
    ],
)
def test_a_key_is_found_in_every_header_the_sdks_use(sent: dict[str, str]) -> None:
    secret = new_secret()
    assert key_in(headers(**{k: v.format(secret) for k, v in sent.items()})) == secret


@pytest.mark.parametrize(
    "value",
    ["-", "dummy", "sk-placeholder", "irisgate", "Basic aXJpc2dhdGVf", "AWS4-HMAC-SHA256 x"],
)
def test_values_without_the_prefix_are_not_keys(value: str) -> None:
    assert key_in(headers(authorization=value, x_api_key=value, x_goog_api_key=value)) is None


def test_a_malformed_key_or_two_different_keys_are_refused() -> None:
    with pytest.raises(KeyRefused, match="not a well-formed"):
        key_in(headers(x_api_key="irisgate_short"))
    with pytest.raises(KeyRefused, match="two different API keys"):
        key_in(headers(authorization=f"Bearer {new_secret()}", x_api_key=new_secret()))
    assert KeyRefused("x").status == 401
