"""Path-templated gateway paths: which format, which model, whether it streams.

`registry.PATHS` matches fixed paths exactly and stays the fast path; `classify` is tried after
it, on the raw (still percent-encoded) path, for the APIs that put the model in the URL:

    /v1beta/models/{model}:generateContent | :streamGenerateContent | :countTokens   Gemini
      | :embedContent | :batchEmbedContents (also under /v1/)
    /v1/projects/{p}/locations/{r}/publishers/{pub}/models/{model}:{method}   Vertex AI
    /v1/publishers/{pub}/models/{model}:{method}        Vertex AI Express (also /v1beta1/)
    /bedrock/model/{modelId}/invoke | invoke-with-response-stream | converse | converse-stream

`countTokens` (Gemini API and Vertex) is routed and granted like the model but not billed.
Vertex methods `generateContent`/`streamGenerateContent` are Gemini on Vertex,
`rawPredict`/`streamRawPredict` Anthropic on Vertex. Bedrock paths lose their `/bedrock`
prefix upstream. A client's `key=` query parameter (a Google API key) never goes upstream.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from irisgate.gateway.formats import cloud, nonchat
from irisgate.gateway.formats.base import Operation, PathTarget

_GEMINI = re.compile(
    r"(/v1(?:beta)?/models/)([^/:]+)"
    r"(:(generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents))"
)
# project, region and publisher are plain names: never "." / ".." or escapes that would walk
# the upstream path elsewhere with the provider's credential (the model must be a configured id)
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_VERTEX = re.compile(
    rf"(/v1(?:beta1)?/(?:projects/{_NAME}/locations/{_NAME}/)?publishers/{_NAME}/models/)"
    r"([^/:]+)(:(generateContent|streamGenerateContent|countTokens|rawPredict|streamRawPredict))"
)
_BEDROCK = re.compile(
    r"/bedrock(/model/)([^/]+)(/(invoke|invoke-with-response-stream|converse|converse-stream))"
)


def _bedrock_kind(model: str) -> str:
    return "embedding" if nonchat.is_bedrock_embedding(model) else "chat"


_OPERATIONS = {
    "gemini": Operation(cloud.GEMINI),
    "gemini:countTokens": Operation(cloud.GEMINI, billable=False, can_stream=False),
    "gemini:embed": Operation(cloud.GEMINI_EMBED, can_stream=False, kind="embedding"),
    "countTokens": Operation(cloud.VERTEX_GENERATE, billable=False, can_stream=False),
    "generateContent": Operation(cloud.VERTEX_GENERATE),
    "streamGenerateContent": Operation(cloud.VERTEX_GENERATE),
    "rawPredict": Operation(cloud.VERTEX_RAW_PREDICT),
    "streamRawPredict": Operation(cloud.VERTEX_RAW_PREDICT),
    "invoke": Operation(cloud.BEDROCK_INVOKE, by_model=_bedrock_kind),
    "invoke-with-response-stream": Operation(cloud.BEDROCK_INVOKE, by_model=_bedrock_kind),
    "converse": Operation(cloud.BEDROCK_CONVERSE),
    "converse-stream": Operation(cloud.BEDROCK_CONVERSE),
}
_GEMINI_KEYS = {
    "countTokens": "gemini:countTokens",
    "embedContent": "gemini:embed",
    "batchEmbedContents": "gemini:embed",
}
_STREAMING = frozenset(
    {"streamGenerateContent", "streamRawPredict", "invoke-with-response-stream", "converse-stream"}
)


def classify(raw_path: str, query: bytes) -> tuple[Operation, PathTarget] | None:
    """The operation and path facts of a templated path; None when no template matches."""
    if raw_path.startswith("/bedrock/"):
        match = _BEDROCK.fullmatch(raw_path)
        if match is None:
            return None
        return _target(match, "/model/", query, safe="", op_key=match[4])
    if not raw_path.startswith("/v1"):
        return None
    match = _GEMINI.fullmatch(raw_path)
    if match is not None:
        key = _GEMINI_KEYS.get(match[4], "gemini")
        return _target(match, match[1], _without_key(query), safe="@", op_key=key)
    match = _VERTEX.fullmatch(raw_path)
    if match is not None:
        return _target(match, match[1], _without_key(query), safe="@", op_key=match[4])
    return None


def _target(
    match: re.Match[str], prefix: str, query: bytes, *, safe: str, op_key: str
) -> tuple[Operation, PathTarget]:
    method = match[4]
    target = PathTarget(
        model=unquote(match[2]),
        stream=method in _STREAMING,
        prefix=prefix,
        raw_model=match[2],
        suffix=match[3],
        query=query,
        safe=safe,
    )
    return _OPERATIONS[op_key], target


def _without_key(query: bytes) -> bytes:
    if b"key=" not in query:
        return query
    kept = [p for p in query.split(b"&") if p and not p.startswith(b"key=")]
    return b"&".join(kept)
