"""Gemini models on Vertex AI (`google_generate_content`), provider side: the Gemini API's
bodies and answers (`irisgate.translate.gemini`) at Vertex's path, whose project and region
placeholders the gateway fills from the provider (gateway/formats/base.py `VERTEX_PROJECT`)."""

from __future__ import annotations

from urllib.parse import quote

from irisgate.translate.gemini import Decoder, read_error, read_response, write_request

__all__ = ["Decoder", "provider_path", "read_error", "read_response", "write_request"]

_PREFIX = (
    "/v1/projects/_aperture_auto_vertex_project_id_/locations/_aperture_auto_vertex_region_"
    "/publishers/google/models/"
)


def provider_path(model: str, stream: bool) -> str:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{_PREFIX}{quote(model, safe='@')}:{method}"
