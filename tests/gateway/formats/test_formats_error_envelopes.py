"""Every error kind the gateway can raise has an envelope in every API format.

The kind → envelope tables are plain dicts, so a kind added for one feature (a guardrail's
"blocked", say) and forgotten in one format would only surface as a crash while answering
a caller in that format. This walks every format reachable from a gateway path.
"""

from __future__ import annotations

from typing import get_args

import orjson
import pytest

from irisgate.gateway.formats.base import ApiFormat
from irisgate.gateway.formats.registry import PATHS
from irisgate.gateway.formats.templates import classify
from irisgate.wire.errors import STATUS_OF, ErrorKind, GatewayError

TEMPLATED = [
    "/v1beta/models/gemini-2.5-flash:generateContent",
    "/v1/projects/p/locations/us-east5/publishers/google/models/gemini-2.5-flash:generateContent",
    "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5:rawPredict",
    "/bedrock/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/invoke",
    "/bedrock/model/us.anthropic.claude-haiku-4-5-20251001-v1:0/converse",
]


def _formats() -> dict[str, ApiFormat]:
    found: dict[str, ApiFormat] = {op.format.name: op.format for op in PATHS.values()}
    for path in TEMPLATED:
        classified = classify(path, b"")
        assert classified is not None, path
        found[classified[0].format.name] = classified[0].format
    return found


FORMATS = _formats()


def test_every_format_is_covered() -> None:
    assert {"openai_chat", "anthropic_messages", "gemini_generate_content"} <= set(FORMATS)
    assert any(name.startswith("bedrock") for name in FORMATS)


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("kind", get_args(ErrorKind))
def test_error_kind_has_an_envelope(name: str, kind: ErrorKind) -> None:
    error = GatewayError(kind, f"something about {kind}")
    body, _headers = FORMATS[name].error_body(error)
    assert error.status == STATUS_OF[kind]
    assert f"something about {kind}" in orjson.loads(body).__repr__()
