"""A provider's opaque reasoning value carried through a client of another API, and back.

Anthropic's thinking signature (or redacted thinking), Gemini's thought signature and
Converse's reasoning signature must come back with the next turn: Anthropic refuses a tool
turn with thinking on without them. A client of another API cannot hold them as such, but
OpenAI Responses has an opaque field of its own that its clients return unchanged (a
reasoning item's `encrypted_content`). irisgate puts the provider's value there marked with
the format that made it, `irisgate:{origin}:{s|r}:{value}` (signature or redacted data), and
reads it back into the `Reasoning` it was: only the API that made a value ever receives it.
"""

from __future__ import annotations

from irisgate.translate import ir

PREFIX = "irisgate:"


def wrap(reasoning: ir.Reasoning) -> str:
    """The marked value of a reasoning block another API made ("" when it has none)."""
    if reasoning.redacted:
        return f"{PREFIX}{reasoning.origin}:r:{reasoning.redacted}"
    if reasoning.signature:
        return f"{PREFIX}{reasoning.origin}:s:{reasoning.signature}"
    return ""


def unwrap(value: str, text: str) -> ir.Reasoning | None:
    """The reasoning block a marked value came from (with `text`); None when `value` is not
    one irisgate marked."""
    if not value.startswith(PREFIX):
        return None
    origin, _, rest = value[len(PREFIX) :].partition(":")
    kind, _, opaque = rest.partition(":")
    if not origin or not opaque or kind not in ("s", "r"):
        return None
    if kind == "r":
        return ir.Reasoning(text, redacted=opaque, origin=origin)
    return ir.Reasoning(text, signature=opaque, origin=origin)
