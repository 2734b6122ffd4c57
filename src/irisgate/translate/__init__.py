"""Translation between the LLM API formats (sans-io): any client API to any provider API.

Hub and spoke through the neutral shape of `ir.py`: a client adapter reads the caller's
request and writes the answer back in the caller's API, a provider adapter writes the
provider's request and reads its answer. The gateway (gateway/translation.py) pairs them for
providers configured with `"translate": true`. Keys are the format names of
`gateway/formats/registry.py` and `gateway/formats/cloud.py`. docs/translation.md says what
carries over.
"""

from __future__ import annotations

from irisgate.translate import (
    anthropic_messages,
    bedrock_converse,
    gemini,
    openai_chat,
    openai_responses,
    vertex_gemini,
)
from irisgate.translate.adapter import ClientSide, ProviderSide

#: adapters for callers, by the API format they speak
CLIENTS: dict[str, ClientSide] = {}
#: adapters for providers, by the API format they speak
PROVIDERS: dict[str, ProviderSide] = {}

CLIENTS["openai_chat"] = openai_chat
PROVIDERS["openai_chat"] = openai_chat
CLIENTS["anthropic_messages"] = anthropic_messages
PROVIDERS["anthropic_messages"] = anthropic_messages
CLIENTS["openai_responses"] = openai_responses
PROVIDERS["openai_responses"] = openai_responses
CLIENTS["gemini_generate_content"] = gemini
PROVIDERS["gemini_generate_content"] = gemini
CLIENTS["google_generate_content"] = gemini  # Gemini on Vertex AI: the same bodies
PROVIDERS["google_generate_content"] = vertex_gemini  # ... at Vertex's path
PROVIDERS["bedrock_converse"] = bedrock_converse
