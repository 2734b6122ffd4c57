"""OpenAI Responses API (`POST /v1/responses`) <-> the neutral shape, client and provider side.

Client side: a Responses request becomes an `ir.Request` (`read_request`); an answer goes back
as a `response` object (`write_response`) or as the typed SSE events the openai SDK parses
(`Encoder`: response.created, response.in_progress, output_item.added, content_part.added,
output_text.delta, reasoning_summary_text.delta, function_call_arguments.delta/.done,
output_item.done, response.completed with usage, each with its `sequence_number`).

Provider side: an `ir.Request` becomes a Responses request (`write_request`, stateless:
`store: false`, reasoning kept by its `encrypted_content`), a `response` object or its SSE
events become an `ir.Response` or `ir.Event`s (`read_response`, `Decoder`).

What needs OpenAI's server-side state (`previous_response_id`, `conversation`, `background`,
item references, stored prompts) or one of its built-in tools has no counterpart elsewhere and
raises `Untranslatable`. A `namespace` tool (a group of function tools, Codex sends its
sub-agent tools so) has none either: its functions go to the provider as function tools named
`{namespace}__{name}` and the calls come back split into `namespace` and `name`. A
reasoning item's `encrypted_content` travels as the `Reasoning` signature
`"{id} {encrypted_content}"` (the item id must come back with it).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from irisgate.translate import carried, ir
from irisgate.translate.effort import EFFORTS, effort_of
from irisgate.translate.errortext import MESSAGE_LIMIT, nested, provider_message, shown
from irisgate.translate.jsonvalues import (
    CUT_SHORT,
    TOO_DEEP,
    as_dict,
    as_int,
    as_list,
    as_str,
    expect_dict,
    expect_int,
    expect_list,
    expect_number,
    expect_str,
    refuse_unknown,
    stream_object,
)
from irisgate.translate.media import data_url, image_from_url
from irisgate.usage.tokens import Usage
from irisgate.wire import nesting
from irisgate.wire.sse import SSEParser

FORMAT = "openai_responses"
PATH = "/v1/responses"

#: top-level request fields carried over, or safely without effect on another API
_KNOWN = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "max_output_tokens", "temperature", "top_p", "text", "reasoning", "stream",
        "stream_options", "store", "include", "metadata", "user", "safety_identifier",
        "prompt_cache_key", "service_tier", "truncation", "background", "top_logprobs",
        "client_metadata",  # Codex: about the client (its installation), not the answer
    }
)  # fmt: skip
#: fields that only make sense with OpenAI's own server-side state or features
_REFUSED = {
    "previous_response_id": "'previous_response_id' needs a provider that speaks the OpenAI "
    "Responses API (send the whole conversation in 'input' instead)",
    "conversation": "'conversation' needs a provider that speaks the OpenAI Responses API",
    "prompt": "'prompt' (a stored prompt template) needs a provider that speaks the OpenAI "
    "Responses API",
    "max_tool_calls": "'max_tool_calls' has no counterpart in the provider's API",
}
_EFFORT_ALIASES = {"none": None, "xhigh": "high"}
_INCLUDE = frozenset({"reasoning.encrypted_content"})


# --- client side: request ------------------------------------------------------------------


def read_request(body: dict[str, Any], *, model: str, stream: bool) -> ir.Request:
    for key, message in _REFUSED.items():
        if body.get(key) is not None:
            raise ir.Untranslatable(message)
    refuse_unknown(body, _KNOWN)
    if body.get("background"):
        raise ir.Untranslatable(
            "'background' needs a provider that speaks the OpenAI Responses API"
        )
    if body.get("top_logprobs"):
        raise ir.Untranslatable("'top_logprobs' has no counterpart in the provider's API")
    if body.get("truncation", "disabled") != "disabled":
        raise ir.Untranslatable(
            "'truncation' other than 'disabled' has no counterpart in the provider's API"
        )
    for n, item in enumerate(expect_list(body.get("include", []), "include")):
        if not isinstance(item, str) or item not in _INCLUDE:
            raise ir.Untranslatable(
                f"'include[{n}]' ('{shown(str(item))}') has no counterpart in the provider's API"
            )
    system, messages = _read_input(body.get("input"))
    instructions = body.get("instructions")
    if instructions is not None:
        system = [expect_str(instructions, "instructions"), *system]
    effort, response_format = _read_reasoning(body.get("reasoning")), _read_text(body.get("text"))
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise ir.Untranslatable("'parallel_tool_calls' must be a boolean")
    return ir.Request(
        model=model,
        messages=messages,
        system="\n\n".join(s for s in system if s),
        tools=_read_tools(body.get("tools")),
        tool_choice=_read_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=parallel,
        max_tokens=expect_int(body.get("max_output_tokens"), "max_output_tokens"),
        temperature=expect_number(body.get("temperature"), "temperature"),
        top_p=expect_number(body.get("top_p"), "top_p"),
        response_format=response_format,
        reasoning_effort=effort,
        stream=stream,
    )


def _read_reasoning(value: object) -> str | None:
    if value is None:
        return None
    reasoning = expect_dict(value, "reasoning")
    refuse_unknown(reasoning, frozenset({"effort", "summary", "generate_summary"}), "reasoning.")
    effort = reasoning.get("effort")
    if effort is None:
        return None
    if not isinstance(effort, str):
        raise ir.Untranslatable("'reasoning.effort' must be a string")
    if effort in _EFFORT_ALIASES:
        return _EFFORT_ALIASES[effort]
    if effort not in EFFORTS:
        raise ir.Untranslatable(
            f"'reasoning.effort' '{shown(effort)}' is not one of {', '.join(EFFORTS)}"
        )
    return str(effort)


def _read_text(value: object) -> ir.ResponseFormat | None:
    if value is None:
        return None
    text = expect_dict(value, "text")
    refuse_unknown(text, frozenset({"format", "verbosity"}), "text.")
    if text.get("verbosity", "medium") not in ("medium", None):
        raise ir.Untranslatable("'text.verbosity' has no counterpart in the provider's API")
    fmt = expect_dict(text.get("format", {"type": "text"}), "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ir.ResponseFormat("json_object")
    if kind == "json_schema":
        schema = expect_dict(fmt.get("schema"), "text.format.schema")
        name = expect_str(fmt.get("name", ""), "text.format.name")
        return ir.ResponseFormat("json_schema", name, schema, fmt.get("strict") is True)
    raise ir.Untranslatable(
        f"'text.format.type' '{shown(str(kind))}' has no counterpart in the provider's API"
    )


#: between a namespace and a function's own name in the name other APIs get
NAMESPACE_JOIN = "__"


def _read_tools(value: object) -> tuple[ir.Tool, ...]:
    if value is None:
        return ()
    tools: list[ir.Tool] = []
    for n, raw in enumerate(expect_list(value, "tools")):
        where = f"tools[{n}]"
        tool = expect_dict(raw, where)
        if tool.get("type") != "namespace":
            tools.append(_read_function(tool, where))
            continue
        namespace = expect_str(tool.get("name"), f"{where}.name")
        about = expect_str(tool.get("description") or "", f"{where}.description")
        if not namespace:
            raise ir.Untranslatable(f"'{where}.name' must not be empty")
        for m, inner in enumerate(expect_list(tool.get("tools"), f"{where}.tools")):
            function = _read_function(
                expect_dict(inner, f"{where}.tools[{m}]"), f"{where}.tools[{m}]"
            )
            described = "\n\n".join(d for d in (about, function.description) if d)
            flat = f"{namespace}{NAMESPACE_JOIN}{function.name}"
            tools.append(ir.Tool(flat, described, function.parameters, namespace))
    seen: set[str] = set()
    for each in tools:
        if each.name in seen:
            raise ir.Untranslatable(
                f"two tools are named '{shown(each.name)}' (a namespace's function is named "
                f"'{{namespace}}{NAMESPACE_JOIN}{{name}}' for the provider)"
            )
        seen.add(each.name)
    return tuple(tools)


def _read_function(tool: dict[str, Any], where: str) -> ir.Tool:
    kind = tool.get("type")
    if kind != "function":
        raise ir.Untranslatable(
            f"'{where}' is OpenAI's built-in '{shown(str(kind))}' tool: only function "
            "tools can be translated to another API"
        )
    return ir.Tool(
        name=expect_str(tool.get("name"), f"{where}.name"),
        description=expect_str(tool.get("description") or "", f"{where}.description"),
        parameters=expect_dict(
            tool.get("parameters") or {"type": "object", "properties": {}}, f"{where}.parameters"
        ),
    )


def _namespaced(tools: tuple[ir.Tool, ...]) -> dict[str, tuple[str, str]]:
    """Flat name -> (namespace, own name) of the request's namespaced functions."""
    return {
        t.name: (t.namespace, t.name[len(t.namespace) + len(NAMESPACE_JOIN) :])
        for t in tools
        if t.namespace
    }


def _read_tool_choice(value: object) -> ir.ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return ir.ToolChoice(value)
    choice = as_dict(value)
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return ir.ToolChoice("tool", choice["name"])
    raise ir.Untranslatable("'tool_choice' must be auto, none, required or a function tool")


class _Conversation:
    """Input items gathered into alternating messages (consecutive parts of one role join)."""

    def __init__(self) -> None:
        self.turns: list[tuple[ir.Role, list[ir.Part]]] = []
        self.system: list[str] = []
        self.names: dict[str, str] = {}  # call_id -> tool name, for the results

    def add(self, role: ir.Role, parts: list[ir.Part]) -> None:
        if not parts:
            return
        if self.turns and self.turns[-1][0] == role:
            self.turns[-1][1].extend(parts)  # in place: many items stay linear
        else:
            self.turns.append((role, list(parts)))

    def messages(self) -> tuple[ir.Message, ...]:
        return tuple(ir.Message(role, tuple(parts)) for role, parts in self.turns)


def _read_input(value: object) -> tuple[list[str], tuple[ir.Message, ...]]:
    if value is None:
        raise ir.Untranslatable("'input' is required")
    if isinstance(value, str):
        return [], (ir.Message("user", (ir.Text(value),)),)
    conversation = _Conversation()
    for n, raw in enumerate(expect_list(value, "input")):
        _read_item(conversation, expect_dict(raw, f"input[{n}]"), f"input[{n}]")
    return conversation.system, conversation.messages()


def _read_item(conversation: _Conversation, item: dict[str, Any], where: str) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        parts = _read_content(item.get("content"), f"{where}.content")
        if role in ("system", "developer"):
            conversation.system.append("\n\n".join(_only_text(parts, f"{where}.content")))
        elif role in ("user", "assistant"):
            conversation.add(role, parts)
        else:
            raise ir.Untranslatable(f"'{where}.role' must be user, assistant, system or developer")
    elif kind == "function_call":
        call_id = expect_str(item.get("call_id"), f"{where}.call_id")
        name = expect_str(item.get("name"), f"{where}.name")
        namespace = expect_str(item.get("namespace") or "", f"{where}.namespace")
        if namespace:  # a namespace's function: as the provider knows it
            name = f"{namespace}{NAMESPACE_JOIN}{name}"
        conversation.names[call_id] = name
        arguments = expect_str(item.get("arguments", ""), f"{where}.arguments")
        conversation.add("assistant", [ir.ToolCall(call_id, name, arguments)])
    elif kind == "function_call_output":
        call_id = expect_str(item.get("call_id"), f"{where}.call_id")
        output = item.get("output")
        content = (
            (ir.Text(output),)
            if isinstance(output, str)
            else tuple(
                _result_part(p, f"{where}.output") for p in _read_content(output, f"{where}.output")
            )
        )
        name = conversation.names.get(call_id, "")
        conversation.add("user", [ir.ToolResult(call_id, name, content)])
    elif kind == "reasoning":
        conversation.add("assistant", [_read_reasoning_item(item)])
    else:
        raise ir.Untranslatable(
            f"'{where}' is a '{shown(str(kind))}' item, which has no counterpart in the "
            "provider's API"
        )


def _result_part(part: ir.Part, where: str) -> ir.Text | ir.Image:
    if isinstance(part, ir.Text | ir.Image):
        return part
    raise ir.Untranslatable(f"'{where}' may hold only text and images")  # pragma: no cover


def _only_text(parts: list[ir.Part], where: str) -> list[str]:
    texts = [p.text for p in parts if isinstance(p, ir.Text)]
    if len(texts) != len(parts):
        raise ir.Untranslatable(f"'{where}' of a system or developer message may hold only text")
    return texts


def _read_content(value: object, where: str) -> list[ir.Part]:
    if isinstance(value, str):
        return [ir.Text(value)] if value else []
    parts: list[ir.Part] = []
    for n, raw in enumerate(expect_list(value, where)):
        part = expect_dict(raw, f"{where}[{n}]")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "refusal"):
            text = part.get("refusal") if kind == "refusal" else part.get("text")
            parts.append(ir.Text(expect_str(text, f"{where}[{n}].text")))
        elif kind == "input_image":
            parts.append(_read_image(part, f"{where}[{n}]"))
        else:
            raise ir.Untranslatable(
                f"'{where}[{n}]' is a '{shown(str(kind))}' part, which has no counterpart in "
                "the provider's API"
            )
    return parts


def _read_image(part: dict[str, Any], where: str) -> ir.Image:
    if part.get("file_id") is not None:
        raise ir.Untranslatable(
            f"'{where}.file_id' refers to an OpenAI file; send the image inline"
        )
    return image_from_url(
        expect_str(part.get("image_url"), f"{where}.image_url"), f"{where}.image_url"
    )


def _read_reasoning_item(item: dict[str, Any]) -> ir.Reasoning:
    texts = [as_str(as_dict(s).get("text")) for s in as_list(item.get("summary"))]
    text = "\n\n".join(t for t in texts if t)
    encrypted = as_str(item.get("encrypted_content"))
    carried_back = carried.unwrap(encrypted, text)
    if carried_back is not None:  # another API's reasoning, given to the client in this field
        return carried_back
    signature = f"{as_str(item.get('id'))} {encrypted}" if encrypted else ""
    return ir.Reasoning(text, signature, origin=FORMAT if signature else "")


# --- client side: answer -------------------------------------------------------------------


def _response_id(raw: str) -> str:
    return raw if raw.startswith("resp_") else f"resp_{raw or uuid.uuid4().hex}"


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _status(stop: ir.StopReason) -> tuple[str, dict[str, str] | None]:
    if stop == "max_tokens":
        return "incomplete", {"reason": "max_output_tokens"}
    if stop == "refusal":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _response_object(
    response_id: str,
    model: str,
    output: list[dict[str, Any]],
    *,
    status: str,
    usage: Usage | None = None,
    incomplete: dict[str, str] | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": 0,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": _usage(usage) if usage is not None else None,
    }


def _reasoning_item(item_id: str, part: ir.Reasoning, *, keep_id: bool = True) -> dict[str, Any]:
    """A reasoning output item; its opaque value in `encrypted_content`: the Responses API's
    own (with its item id, kept unless a stream announced the item before the id was known),
    or another API's, marked (`carried`)."""
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": part.text}] if part.text else [],
    }
    if part.origin != FORMAT:
        if part.origin and (part.signature or part.redacted):
            item["encrypted_content"] = carried.wrap(part)
        return item
    kept_id, _, encrypted = part.signature.partition(" ")
    if encrypted:
        item["encrypted_content"] = encrypted
        if keep_id and kept_id:
            item["id"] = kept_id
    return item


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [_text_part(text)] if status == "completed" else []
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _call_item(
    item_id: str,
    call: ir.ToolCall,
    namespaced: dict[str, tuple[str, str]],
    status: str = "completed",
) -> dict[str, Any]:
    item = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if status == "completed" else "",
    }
    if call.name in namespaced:
        item["namespace"], item["name"] = namespaced[call.name]
    return item


def write_response(r: ir.Response, tools: tuple[ir.Tool, ...] = ()) -> dict[str, Any]:
    namespaced = _namespaced(tools)
    output: list[dict[str, Any]] = []
    for part in r.parts:
        item_id = f"{len(output)}_{r.id}"
        if isinstance(part, ir.Text):
            last = output[-1] if output else None
            if last is not None and last["type"] == "message":
                last["content"][0]["text"] += part.text
            else:
                output.append(_message_item(f"msg_{item_id}", part.text))
        elif isinstance(part, ir.ToolCall):
            output.append(_call_item(f"fc_{item_id}", part, namespaced))
        else:
            output.append(_reasoning_item(f"rs_{item_id}", part))
    status, incomplete = _status(r.stop)
    return _response_object(
        _response_id(r.id), r.model, output, status=status, usage=r.usage, incomplete=incomplete
    )


class _Block:
    __slots__ = (
        "call",
        "item_id",
        "kind",
        "origin",
        "output_index",
        "redacted",
        "signature",
        "text",
    )

    def __init__(self, kind: str, output_index: int, item_id: str) -> None:
        self.kind = kind
        self.output_index = output_index
        self.item_id = item_id
        self.text: list[str] = []
        self.signature = ""
        self.redacted = ""
        self.origin = ""
        self.call: ir.ToolCall | None = None


class Encoder:
    """`ir.Event`s in, the bytes of a Responses SSE stream out."""

    def __init__(self, model: str, tools: tuple[ir.Tool, ...] = ()) -> None:
        self.model = model
        self.namespaced = _namespaced(tools)
        self.response_id = _response_id("")
        self.sequence = 0
        self.blocks: dict[int, _Block] = {}
        self.output: list[dict[str, Any] | None] = []  # finished items, by output_index
        self.started = False
        self.ended = False

    def _emit(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _start(self, response_id: str = "") -> bytes:
        if self.started:
            return b""
        self.started = True
        if response_id:
            self.response_id = _response_id(response_id)
        pending = _response_object(self.response_id, self.model, [], status="in_progress")
        return self._emit("response.created", response=pending) + self._emit(
            "response.in_progress", response=pending
        )

    def _open(self, index: int, kind: str, item: dict[str, Any]) -> tuple[_Block, bytes]:
        block = _Block(kind, len(self.output), item["id"])
        self.blocks[index] = block
        self.output.append(None)
        return block, self._emit(
            "response.output_item.added", item=item, output_index=block.output_index
        )

    def _where(self, block: _Block, **more: Any) -> dict[str, Any]:
        return {"item_id": block.item_id, "output_index": block.output_index, **more}

    def encode(self, event: ir.Event) -> bytes:
        if self.ended:
            return b""
        if isinstance(event, ir.Start):
            return self._start(event.id)
        out = self._start()
        if isinstance(event, ir.TextDelta):
            return out + self._text(event)
        if isinstance(event, ir.ReasoningDelta):
            return out + self._reasoning(event)
        if isinstance(event, ir.ToolCallStart):
            return out + self._call(event)
        if isinstance(event, ir.ToolArgsDelta):
            return out + self._arguments(event)
        if isinstance(event, ir.BlockEnd):
            return out + self._close(event.index)
        if isinstance(event, ir.Finish):
            return out + self._finish(event)
        return out + self._fail(event.message)

    def _call(self, event: ir.ToolCallStart) -> bytes:
        item_id = f"fc_{len(self.output)}_{self.response_id}"
        call = ir.ToolCall(event.id, event.name, "")
        item = _call_item(item_id, call, self.namespaced, "in_progress")
        block, added = self._open(event.index, "call", item)
        block.call = call
        return added

    def _arguments(self, event: ir.ToolArgsDelta) -> bytes:
        block = self.blocks.get(event.index)
        if block is None or block.kind != "call" or not event.fragment:
            return b""
        block.text.append(event.fragment)
        where = self._where(block, delta=event.fragment)
        return self._emit("response.function_call_arguments.delta", **where)

    def _text(self, event: ir.TextDelta) -> bytes:
        block = self.blocks.get(event.index)
        out = b""
        if block is None:
            item_id = f"msg_{len(self.output)}_{self.response_id}"
            block, out = self._open(event.index, "text", _message_item(item_id, "", "in_progress"))
            out += self._emit(
                "response.content_part.added",
                **self._where(block, content_index=0, part=_text_part("")),
            )
        if block.kind != "text" or not event.text:
            return out
        block.text.append(event.text)
        return out + self._emit(
            "response.output_text.delta",
            **self._where(block, content_index=0, delta=event.text, logprobs=[]),
        )

    def _reasoning(self, event: ir.ReasoningDelta) -> bytes:
        block = self.blocks.get(event.index)
        out = b""
        if block is None:
            item_id = f"rs_{len(self.output)}_{self.response_id}"
            block, out = self._open(
                event.index, "reasoning", _reasoning_item(item_id, ir.Reasoning())
            )
        if block.kind != "reasoning":
            return out
        if event.signature or event.redacted:
            block.signature, block.redacted = event.signature, event.redacted
            block.origin = event.origin
        if not event.text:
            return out
        if not block.text:
            part = {"type": "summary_text", "text": ""}
            out += self._emit(
                "response.reasoning_summary_part.added",
                **self._where(block, summary_index=0, part=part),
            )
        block.text.append(event.text)
        return out + self._emit(
            "response.reasoning_summary_text.delta",
            **self._where(block, summary_index=0, delta=event.text),
        )

    def _close(self, index: int) -> bytes:
        block = self.blocks.pop(index, None)
        if block is None:
            return b""
        text = "".join(block.text)
        out = b""
        if block.kind == "text":
            where = self._where(block, content_index=0)
            out += self._emit("response.output_text.done", **where, text=text, logprobs=[])
            out += self._emit("response.content_part.done", **where, part=_text_part(text))
            item = _message_item(block.item_id, text)
        elif block.kind == "reasoning":
            if text:
                where = self._where(block, summary_index=0)
                out += self._emit("response.reasoning_summary_text.done", **where, text=text)
                part = {"type": "summary_text", "text": text}
                out += self._emit("response.reasoning_summary_part.done", **where, part=part)
            reasoning = ir.Reasoning(text, block.signature, block.redacted, block.origin)
            item = _reasoning_item(block.item_id, reasoning, keep_id=False)
        else:
            assert block.call is not None
            out += self._emit(
                "response.function_call_arguments.done", **self._where(block, arguments=text)
            )
            call = ir.ToolCall(block.call.id, block.call.name, text)
            item = _call_item(block.item_id, call, self.namespaced)
        self.output[block.output_index] = item
        return out + self._emit(
            "response.output_item.done", item=item, output_index=block.output_index
        )

    def _finish(self, event: ir.Finish) -> bytes:
        out = b"".join(self._close(index) for index in sorted(self.blocks))
        self.ended = True
        status, incomplete = _status(event.stop)
        output = [item for item in self.output if item is not None]
        response = _response_object(
            self.response_id,
            self.model,
            output,
            status=status,
            usage=event.usage,
            incomplete=incomplete,
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._emit(kind, response=response)

    def _fail(self, message: str) -> bytes:
        self.ended = True
        error = {"code": "server_error", "message": message}
        output = [item for item in self.output if item is not None]
        response = _response_object(
            self.response_id, self.model, output, status="failed", error=error
        )
        return self._emit("error", code="server_error", message=message, param=None) + self._emit(
            "response.failed", response=response
        )

    def close(self) -> bytes:
        """The end of the client's stream: a `response.failed` when the answer never finished."""
        if self.ended:
            return b""
        return self._start() + self._fail(CUT_SHORT)


# --- provider side: request ----------------------------------------------------------------


def provider_path(model: str, stream: bool) -> str:
    return PATH


def write_request(r: ir.Request) -> dict[str, Any]:
    if r.stop:
        raise ir.Untranslatable("'stop' sequences have no counterpart in the OpenAI Responses API")
    body: dict[str, Any] = {"model": r.model, "input": _write_input(r.messages), "store": False}
    if r.stream:
        body["stream"] = True
    if r.system:
        body["instructions"] = r.system
    if r.tools:
        body["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": False,
            }
            for t in r.tools
        ]
    if r.tool_choice is not None:
        choice = r.tool_choice
        body["tool_choice"] = (
            {"type": "function", "name": choice.name} if choice.mode == "tool" else choice.mode
        )
    if r.parallel_tool_calls is not None:
        body["parallel_tool_calls"] = r.parallel_tool_calls
    for key, value in (
        ("max_output_tokens", r.max_tokens),
        ("temperature", r.temperature),
        ("top_p", r.top_p),
    ):
        if value is not None:
            body[key] = value
    if r.response_format is not None:
        body["text"] = {"format": _write_format(r.response_format)}
    effort = r.reasoning_effort
    if effort is None and r.reasoning_budget is not None:
        effort = effort_of(r.reasoning_budget)
    if effort is not None:
        body["reasoning"] = {"effort": effort, "summary": "auto"}
        body["include"] = ["reasoning.encrypted_content"]
    return body


def _write_format(fmt: ir.ResponseFormat) -> dict[str, Any]:
    if fmt.kind == "json_object":
        return {"type": "json_object"}
    return {
        "type": "json_schema",
        "name": fmt.name or "response",
        "schema": fmt.schema or {},
        "strict": fmt.strict,
    }


def _write_image(image: ir.Image) -> dict[str, Any]:
    return {"type": "input_image", "image_url": data_url(image), "detail": "auto"}


def _write_input(messages: tuple[ir.Message, ...]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, ir.Text):
                kind = "output_text" if message.role == "assistant" else "input_text"
                content.append({"type": kind, "text": part.text})
                continue
            if isinstance(part, ir.Image):
                content.append(_write_image(part))
                continue
            item = _write_item(part)
            if item is None:
                continue  # reasoning another API made: the Responses API takes no such item
            if content:
                items.append({"type": "message", "role": message.role, "content": content})
                content = []
            items.append(item)
        if content:
            items.append({"type": "message", "role": message.role, "content": content})
    return items


def _write_item(part: ir.ToolCall | ir.ToolResult | ir.Reasoning) -> dict[str, Any] | None:
    if isinstance(part, ir.ToolCall):
        return {
            "type": "function_call",
            "call_id": part.id,
            "name": part.name,
            "arguments": part.arguments,
        }
    if isinstance(part, ir.ToolResult):
        return {
            "type": "function_call_output",
            "call_id": part.call_id,
            "output": _write_output(part),
        }
    if part.signature and part.origin == FORMAT:
        return _reasoning_item("", part)
    return None


def _write_output(result: ir.ToolResult) -> str | list[dict[str, Any]]:
    if all(isinstance(p, ir.Text) for p in result.content):
        return "".join(p.text for p in result.content if isinstance(p, ir.Text))
    return [
        {"type": "input_text", "text": p.text} if isinstance(p, ir.Text) else _write_image(p)
        for p in result.content
    ]


# --- provider side: answer -----------------------------------------------------------------


def _read_usage(value: object) -> Usage:
    u = as_dict(value)
    details_in, details_out = (
        as_dict(u.get("input_tokens_details")),
        as_dict(u.get("output_tokens_details")),
    )
    return Usage(
        input_tokens=as_int(u.get("input_tokens")),
        output_tokens=as_int(u.get("output_tokens")),
        cache_read_tokens=as_int(details_in.get("cached_tokens")),
        cache_write_5m_tokens=as_int(details_in.get("cache_write_tokens")),
        reasoning_tokens=as_int(details_out.get("reasoning_tokens")),
    )


def _read_stop(response: dict[str, Any], called: bool, refused: bool) -> ir.StopReason:
    reason = as_dict(response.get("incomplete_details")).get("reason")
    if reason == "max_output_tokens":
        return "max_tokens"
    if reason == "content_filter" or refused:
        return "refusal"
    return "tool_use" if called else "end"


def _answer_reasoning(item: dict[str, Any]) -> ir.Reasoning:
    texts = [as_str(as_dict(s).get("text")) for s in as_list(item.get("summary"))]
    if not any(texts):  # models that show their reasoning itself rather than a summary
        texts = [as_str(as_dict(c).get("text")) for c in as_list(item.get("content"))]
    encrypted = as_str(item.get("encrypted_content"))
    signature = f"{as_str(item.get('id'))} {encrypted}" if encrypted else ""
    return ir.Reasoning(
        "\n\n".join(t for t in texts if t), signature, origin=FORMAT if signature else ""
    )


def read_response(body: dict[str, Any]) -> ir.Response:
    parts: list[ir.Text | ir.ToolCall | ir.Reasoning] = []
    refused = False
    for raw in as_list(body.get("output")):
        item = as_dict(raw)
        kind = item.get("type")
        if kind == "message":
            for raw_piece in as_list(item.get("content")):
                piece = as_dict(raw_piece)
                refused = refused or piece.get("type") == "refusal"
                text = as_str(
                    piece.get("refusal") if piece.get("type") == "refusal" else piece.get("text")
                )
                if text:
                    parts.append(ir.Text(text))
        elif kind == "function_call":
            call_id = as_str(item.get("call_id")) or as_str(item.get("id"))
            parts.append(
                ir.ToolCall(call_id, as_str(item.get("name")), as_str(item.get("arguments")))
            )
        elif kind == "reasoning":
            parts.append(_answer_reasoning(item))
    called = any(isinstance(p, ir.ToolCall) for p in parts)
    return ir.Response(
        id=as_str(body.get("id")),
        model=as_str(body.get("model")),
        parts=tuple(parts),
        stop=_read_stop(body, called, refused),
        usage=_read_usage(body.get("usage")),
    )


_ERROR_STATUS = {"rate_limit_exceeded": 429, "insufficient_quota": 429, "invalid_prompt": 400}


class Decoder:
    """The bytes of a Responses SSE stream in, `ir.Event`s out (split at any byte)."""

    def __init__(self) -> None:
        self._parser = SSEParser()
        self._open: dict[tuple[int, int], int] = {}  # (output_index, content part) -> block
        self._next = 0  # the next block index
        self._summary: dict[int, int] = {}  # output_index -> last reasoning summary part seen
        self._streamed: dict[int, int] = {}  # output_index -> argument characters streamed
        self._called = False
        self._refused = False
        self._ended = False

    def feed(self, data: bytes) -> list[ir.Event]:
        out: list[ir.Event] = []
        for sse in self._parser.feed(data):
            if self._ended:
                break
            try:
                event = stream_object(sse.data)
            except nesting.TooDeep:
                out.append(ir.StreamError(502, TOO_DEEP))
                self._ended = True
                break
            if event is not None:
                self._event(str(event.get("type") or sse.event), event, out)
        return out

    def finish(self) -> list[ir.Event]:
        if self._ended:
            return []
        self._ended = True
        return [ir.StreamError(502, CUT_SHORT)]

    def _block(self, position: int, part: int = 0) -> tuple[int, bool]:
        """The block of an output item's part, and whether it is new."""
        index = self._open.get((position, part))
        if index is not None:
            return index, False
        index = self._open[(position, part)] = self._next
        self._next += 1
        return index, True

    def _event(self, kind: str, event: dict[str, Any], out: list[ir.Event]) -> None:
        position = as_int(event.get("output_index"))
        delta = event.get("delta")
        if kind == "response.created":
            response = as_dict(event.get("response"))
            out.append(ir.Start(as_str(response.get("id")), as_str(response.get("model"))))
        elif kind == "response.output_item.added":
            item = as_dict(event.get("item"))
            if item.get("type") == "function_call":
                self._call_start(position, item, out)
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            self._refused = self._refused or kind == "response.refusal.delta"
            index, _ = self._block(position, as_int(event.get("content_index")))
            out.append(ir.TextDelta(index, as_str(delta)))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            index, _ = self._block(position)
            part = as_int(event.get("summary_index", event.get("content_index")))
            if part > self._summary.setdefault(position, part):
                self._summary[position] = part
                out.append(ir.ReasoningDelta(index, "\n\n"))  # the summary's next paragraph
            out.append(ir.ReasoningDelta(index, as_str(delta)))
        elif kind == "response.function_call_arguments.delta":
            index, _ = self._block(position)
            self._streamed[position] = self._streamed.get(position, 0) + len(as_str(delta))
            out.append(ir.ToolArgsDelta(index, as_str(delta)))
        elif kind == "response.output_item.done":
            self._item_done(position, as_dict(event.get("item")), out)
        elif kind in ("response.completed", "response.incomplete"):
            response = as_dict(event.get("response"))
            stop = _read_stop(response, self._called, self._refused)
            out += [ir.BlockEnd(index) for index in sorted(self._open.values())]
            self._open.clear()  # items the provider never said were done
            out.append(ir.Finish(stop, _read_usage(response.get("usage"))))
            self._ended = True
        elif kind in ("response.failed", "error"):
            error = (
                as_dict(as_dict(event.get("response")).get("error")) if kind != "error" else event
            )
            status = _ERROR_STATUS.get(as_str(error.get("code")), 500)
            out.append(ir.StreamError(status, _message(error)))
            self._ended = True

    def _call_start(self, position: int, item: dict[str, Any], out: list[ir.Event]) -> int:
        index, new = self._block(position)
        if new:
            self._called = True
            call_id = as_str(item.get("call_id")) or as_str(item.get("id"))
            out.append(ir.ToolCallStart(index, call_id, as_str(item.get("name"))))
        return index

    def _item_done(self, position: int, item: dict[str, Any], out: list[ir.Event]) -> None:
        kind = item.get("type")
        if kind == "function_call":
            index = self._call_start(position, item, out)
            rest = as_str(item.get("arguments"))[self._streamed.get(position, 0) :]
            if rest:
                out.append(ir.ToolArgsDelta(index, rest))
        elif kind == "reasoning":
            reasoning = _answer_reasoning(item)
            index, new = self._block(position)
            text = reasoning.text if new else ""
            if text or reasoning.signature or new:
                out.append(
                    ir.ReasoningDelta(index, text, reasoning.signature, origin=reasoning.origin)
                )
        for key in sorted(k for k in self._open if k[0] == position):
            out.append(ir.BlockEnd(self._open.pop(key)))


def _message(error: dict[str, Any]) -> str:
    message = as_str(error.get("message"))
    return shown(message, MESSAGE_LIMIT) if message else "the provider reported an error"


def read_error(status: int, body: bytes) -> str:
    """The message of an OpenAI error body (`{"error": {"message": …}}`)."""
    return provider_message(status, body, lambda parsed: nested(parsed, "error", "message"))
