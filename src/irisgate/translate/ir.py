"""The neutral shape a translated request, answer and stream pass through (sans-io, no I/O).

Translation is hub and spoke: each API format has one adapter module in this package that
turns its client-side request into a `Request` and a `Request` into its provider-side request,
its provider answer (plain or streamed) into a `Response` / `Event`s and those back into the
client's answer. A pair of formats is then any client adapter with any provider adapter; no
code knows two formats at once.

Conventions every adapter keeps:

- Content is a tuple of parts in the order the model produced or the user wrote them.
- Tool results travel in `user` messages (as in Anthropic's Messages API); a client format
  with a separate role for them (OpenAI's `tool` messages, Gemini's `functionResponse` parts)
  maps them there and back.
- `ToolCall.arguments` is the JSON text of the arguments as the model wrote it (streamed
  fragments concatenate to it); adapters that need an object parse it once, where they must.
- `Reasoning` keeps what a provider wants back next turn: Anthropic's thinking `signature`
  (or a redacted block's `data`), Gemini's `thoughtSignature`, Responses' `encrypted_content`.
  `origin` names the format that made it: an opaque value is only sent back to the API that
  made it (another API would reject it), the text may go anywhere.
- Usage is `irisgate.usage.tokens.Usage` (input includes cached input, output includes
  reasoning); each adapter renders it in its own API's conventions (Anthropic's
  `input_tokens` excludes cache reads and writes; OpenAI's `prompt_tokens` includes them).
- Stream events carry a block `index`: each text, reasoning or tool-call block of the answer
  has its own, increasing, in output order (as Anthropic numbers content blocks). Encoders for
  APIs that number differently (OpenAI's `tool_calls[i].index`, Responses' `output_index`)
  keep their own mapping.
- What a format cannot carry to the other side raises `Untranslatable` naming the field; the
  gateway answers it with a 400 in the caller's format. Nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from irisgate.usage.tokens import Usage

Role = Literal["user", "assistant"]
#: why an answer ended, in the neutral vocabulary
StopReason = Literal["end", "max_tokens", "tool_use", "stop_sequence", "refusal", "pause"]


class Untranslatable(ValueError):
    """Part of a request (or answer) has no counterpart in the other API; `str(exc)` names
    it and is safe to show to the caller (e.g. "'previous_response_id' needs a provider that
    speaks the OpenAI Responses API")."""


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    media_type: str  # image/png, image/jpeg, image/gif, image/webp
    data: str = ""  # base64, when the image is inline
    url: str = ""  # an https URL, when the client sent one (never fetched by irisgate)


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    name: str  # the tool's name when the client's format says it ("" otherwise)
    content: tuple[Text | Image, ...]
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Reasoning:
    text: str = ""
    signature: str = ""  # opaque value the provider wants back with this block
    redacted: str = ""  # an Anthropic redacted_thinking block's data
    origin: str = ""  # the API format that produced signature/redacted


Part = Text | Image | ToolCall | ToolResult | Reasoning


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments
    #: the group an OpenAI Responses `namespace` tool put it in; `name` is then
    #: `{namespace}__{its own name}` (other APIs have no groups), the caller's API splits it back
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str = ""  # mode "tool": the one tool the model must call


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    kind: Literal["json_object", "json_schema"]
    name: str = ""
    schema: dict[str, Any] | None = None
    strict: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    model: str
    messages: tuple[Message, ...]
    system: str = ""  # system/developer instructions, joined with blank lines
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    response_format: ResponseFormat | None = None
    #: "minimal", "low", "medium", "high"; None: the client asked nothing
    reasoning_effort: str | None = None
    #: a thinking budget in tokens when the client gave one (Anthropic, Gemini)
    reasoning_budget: int | None = None
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Response:
    id: str
    model: str
    parts: tuple[Text | ToolCall | Reasoning, ...]
    stop: StopReason
    usage: Usage = field(default_factory=Usage)
    stop_sequence: str = ""  # the sequence that stopped it, where the provider says


# -- stream events: what a provider-side decoder yields and a client-side encoder consumes


@dataclass(frozen=True, slots=True)
class Start:
    id: str
    model: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    index: int
    text: str = ""
    signature: str = ""  # arrives once, usually at the block's end
    redacted: str = ""
    origin: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class ToolArgsDelta:
    index: int
    fragment: str  # a piece of the arguments' JSON text


@dataclass(frozen=True, slots=True)
class BlockEnd:
    index: int


@dataclass(frozen=True, slots=True)
class Finish:
    stop: StopReason
    usage: Usage
    stop_sequence: str = ""


@dataclass(frozen=True, slots=True)
class StreamError:
    """The provider reported an error inside an answer that had already begun."""

    status: int  # the HTTP status the error would have had (e.g. 529 overloaded, 500)
    message: str


Event = (
    Start
    | TextDelta
    | ReasoningDelta
    | ToolCallStart
    | ToolArgsDelta
    | BlockEnd
    | Finish
    | StreamError
)
