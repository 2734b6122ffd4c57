"""Translation between the LLM API formats: one adapter module per format (see `ir`).

`CLIENTS` holds the adapters that read a client's request and write its answer, `PROVIDERS`
those that write a provider's request and read its answer, keyed by format name.
"""

from __future__ import annotations

from types import ModuleType

from irisgate.translate import bedrock_converse, gemini, openai_responses, vertex_gemini

CLIENTS: dict[str, ModuleType] = {
    "openai_responses": openai_responses,
    "gemini_generate_content": gemini,
    "google_generate_content": gemini,
}

PROVIDERS: dict[str, ModuleType] = {
    "openai_responses": openai_responses,
    "gemini_generate_content": gemini,
    "google_generate_content": vertex_gemini,
    "bedrock_converse": bedrock_converse,
}
