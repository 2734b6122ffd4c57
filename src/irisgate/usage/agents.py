"""Agent names: which client program sent a request, from its User-Agent header.

The dashboard's Agent activity groups requests by program, not by version: the first product
token of the header without its version (`claude-cli/2.0.14 (external, cli)` → `claude-cli`,
`OpenAI/Python 1.51.0` → `OpenAI/Python`, `curl/8.5.0` → `curl`).
"""

from __future__ import annotations

#: The agent name of requests that sent no User-Agent.
UNKNOWN_AGENT = "(none)"
_MAX_LENGTH = 64


def agent_name(user_agent: str) -> str:
    words = user_agent.split()
    if not words:
        return UNKNOWN_AGENT
    name = words[0]
    product, slash, version = name.partition("/")
    if slash and (not version or version[0].isdigit()):
        name = product
    elif slash and len(words) > 1 and words[1][:1].isdigit():
        name = f"{product}/{version}"  # "OpenAI/Python 1.51.0": the language is part of it
    return name[:_MAX_LENGTH] or UNKNOWN_AGENT
