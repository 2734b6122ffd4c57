"""`refuse_duplicate_keys`: a top-level routing key named twice, however it is spelled."""

from __future__ import annotations

import pytest

from irisgate.gateway.duplicates import refuse_duplicate_keys
from irisgate.wire.errors import GatewayError


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"model":"a","model":"b"}', "model"),
        (b'{"model":"a","mod\\u0065l":"b"}', "model"),
        (b'{"model":"a","\\u006D\\u006f\\u0064\\u0065\\u006C"\n:\t"b"}', "model"),
        (b'{"stream":true,"model":"x","stream":false}', "stream"),
        (b'{"model":"a","messages":[{"model":1}],"model":"a"}', "model"),  # even equal copies
        (b'{"tools":[{"model":1},{"model":2}],"model":"a","x":{"model":3},"model":"b"}', "model"),
    ],
)
def test_refused_naming_the_key(body: bytes, key: str) -> None:
    with pytest.raises(GatewayError) as caught:
        refuse_duplicate_keys(body)
    assert caught.value.status == 400
    assert f"names '{key}' more than once" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"a","stream":true}',
        b'{"model":"a","M\\u006fdel":"b"}',  # keys are case-sensitive: another key
        b'{"model":"a","contents":[{"role":"model"},{"role":"model"}]}',
        b'{"model":"a","tools":[{"model":1},{"model":2}],"x":{"stream":1,"stream":2}}',
        b'{"model":"a","text":"\\"model\\": \\"b\\", \\"model\\": \\"c\\""}',
        b'{"model":"a","x\\"model":1,"y\\"model" : 2}',  # keys that end in model
    ],
)
def test_passed(body: bytes) -> None:
    refuse_duplicate_keys(body)
