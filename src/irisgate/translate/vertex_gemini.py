"""Gemini models on Vertex AI as a translation provider: the Gemini API's bodies, answers and
streams (`gemini`), sent to Vertex's path.

Vertex's path names the provider's project and region. The path written here holds the
placeholders Aperture's Vertex clients send in their own paths (`PROJECT`, `REGION`); the
gateway puts the provider's project and region in for them, as for any Vertex request (or
takes the project-less form of Vertex Express, a plain API key).
"""

from __future__ import annotations

from urllib.parse import quote

from irisgate.translate.gemini import Decoder, read_error, read_response, write_request

__all__ = ["Decoder", "provider_path", "read_error", "read_response", "write_request"]

PROJECT = "_aperture_auto_vertex_project_id_"
REGION = "_aperture_auto_vertex_region_"


def provider_path(model: str, stream: bool) -> str:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    # `@` stays: Vertex names model versions `gemini-…@001`
    segment = quote(model, safe="@")
    return f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/{segment}:{method}"
