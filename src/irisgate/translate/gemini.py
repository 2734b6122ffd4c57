"""Gemini `generateContent` <-> the neutral shape, client and provider side.

Client side: a `GenerateContentRequest` (the model and streaming come from the path) becomes
an `ir.Request` (`read_request`); an answer goes back as one `GenerateContentResponse`
(`write_response`) or as `alt=sse` chunks of it, `usageMetadata` on the last (`Encoder`).

Provider side: an `ir.Request` becomes a request body for
`/v1beta/models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`), its answer
(plain or SSE chunks) an `ir.Response` / `ir.Event`s.

Gemini's function calls may come without ids: the adapter names them
`call_{responseId}_{n}` (stable for one answer, unique across a conversation) and maps a
`functionResponse` back to its call by id when it has one, else by name and order. A
`thoughtSignature` travels as a `Reasoning` part just before the part that carried it (with
the thought text when it was on a thought part), `origin` "gemini_generate_content".
Vertex AI's `generateContent` (`google_generate_content`) takes the same bodies: this module
serves both on the client side; on the provider side the gateway path is the Gemini API's.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any
from urllib.parse import quote

import orjson

from irisgate.translate import carried, ir
from irisgate.translate.effort import budget_of, effort_of
from irisgate.translate.errortext import MESSAGE_LIMIT, nested, provider_message, shown
from irisgate.translate.jsonvalues import (
    CUT_SHORT,
    TOO_DEEP,
    arguments_object,
    as_dict,
    as_int,
    as_list,
    as_str,
    expect_dict,
    expect_int,
    expect_list,
    expect_number,
    expect_str,
    json_text,
    refuse_unknown,
    stream_object,
)
from irisgate.translate.media import MEDIA_TYPES, inline_image
from irisgate.usage.tokens import Usage
from irisgate.wire import nesting
from irisgate.wire.sse import SSEParser

FORMAT = "gemini_generate_content"

_KNOWN = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"})
_REFUSED = {
    "cachedContent": "'cachedContent' refers to content cached by Google; it needs a provider "
    "that speaks the Gemini API",
    "safetySettings": "'safetySettings' has no counterpart in the provider's API",
    "labels": "'labels' (Vertex AI billing labels) has no counterpart in the provider's API",
}
_CONFIG = frozenset(
    {
        "maxOutputTokens", "temperature", "topP", "stopSequences", "responseMimeType",
        "responseSchema", "responseJsonSchema", "thinkingConfig", "candidateCount",
        "responseModalities",
    }
)  # fmt: skip
_DECLARATION = frozenset({"name", "description", "parameters", "parametersJsonSchema"})
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
_ID = re.compile(r"[^A-Za-z0-9_-]")


# --- client side: request ------------------------------------------------------------------


def read_request(body: dict[str, Any], *, model: str, stream: bool) -> ir.Request:
    body = camel_keys(body)
    for key, message in _REFUSED.items():
        if body.get(key) is not None:
            raise ir.Untranslatable(message)
    refuse_unknown(body, _KNOWN)
    config = expect_dict(body.get("generationConfig", {}), "generationConfig")
    refuse_unknown(config, _CONFIG, "generationConfig.")
    if as_int(config.get("candidateCount", 1)) != 1:
        raise ir.Untranslatable(
            "'generationConfig.candidateCount' other than 1 cannot be translated"
        )
    if config.get("responseModalities", ["TEXT"]) not in (["TEXT"], ["text"]):
        raise ir.Untranslatable(
            "'generationConfig.responseModalities' other than TEXT cannot be translated"
        )
    effort, budget = _read_thinking(config.get("thinkingConfig"))
    stop = expect_list(config.get("stopSequences", []), "generationConfig.stopSequences")
    choice, tools = _read_tools(body.get("tools"), body.get("toolConfig"))
    return ir.Request(
        model=model,
        messages=_read_contents(body.get("contents")),
        system=_read_system(body.get("systemInstruction")),
        tools=tools,
        tool_choice=choice,
        max_tokens=expect_int(config.get("maxOutputTokens"), "generationConfig.maxOutputTokens"),
        temperature=expect_number(config.get("temperature"), "generationConfig.temperature"),
        top_p=expect_number(config.get("topP"), "generationConfig.topP"),
        stop=tuple(expect_str(s, "generationConfig.stopSequences") for s in stop),
        response_format=_read_format(config),
        reasoning_effort=effort,
        reasoning_budget=budget,
        stream=stream,
    )


def _read_thinking(value: object) -> tuple[str | None, int | None]:
    if value is None:
        return None, None
    thinking = expect_dict(value, "generationConfig.thinkingConfig")
    refuse_unknown(
        thinking,
        frozenset({"thinkingBudget", "includeThoughts", "thinkingLevel"}),
        "generationConfig.thinkingConfig.",
    )
    level = thinking.get("thinkingLevel")
    if level is not None:
        if str(level).upper() not in _LEVELS:
            raise ir.Untranslatable(
                f"'generationConfig.thinkingConfig.thinkingLevel' '{shown(str(level))}' is unknown"
            )
        return _LEVELS[str(level).upper()], None
    budget = thinking.get("thinkingBudget")
    if budget is None:
        return None, None
    if type(budget) is not int or budget < -1:
        raise ir.Untranslatable(
            "'generationConfig.thinkingConfig.thinkingBudget' must be an integer, -1 or more"
        )
    if budget == -1:  # dynamic: the model decides
        return "medium", None
    if budget == 0:  # no thinking
        return None, None
    return effort_of(budget), budget


def _read_format(config: dict[str, Any]) -> ir.ResponseFormat | None:
    mime = config.get("responseMimeType", "text/plain")
    schema = config.get("responseJsonSchema")
    if schema is None:  # a Schema, made JSON Schema by camel_keys
        schema = config.get("responseSchema")
    if mime == "text/plain":
        if schema is not None:
            raise ir.Untranslatable("a response schema needs 'responseMimeType' application/json")
        return None
    if mime != "application/json":
        raise ir.Untranslatable(
            f"'generationConfig.responseMimeType' '{shown(str(mime))}' cannot be translated"
        )
    if schema is None:
        return ir.ResponseFormat("json_object")
    return ir.ResponseFormat(
        "json_schema", "response", expect_dict(schema, "generationConfig.responseJsonSchema")
    )


#: fields whose values are the caller's own JSON (arguments, results, JSON Schemas): their
#: keys are data, never field names
_OPAQUE = frozenset({"args", "response", "parametersJsonSchema", "responseJsonSchema"})
#: fields holding a Gemini `Schema`: field names, but property names below `properties`
_SCHEMAS = frozenset({"parameters", "responseSchema"})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def camel_keys(value: Any) -> Any:
    """A request with every field name in lowerCamelCase. Google's API (protobuf JSON) takes
    either spelling, and its SDK sends both (`inlineData.mime_type`,
    `parameters_json_schema`, `thinkingConfig.include_thoughts`)."""
    if isinstance(value, list):
        return [camel_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key) if "_" in key else key
        if name in _OPAQUE:
            out[name] = item
        elif name in _SCHEMAS and isinstance(item, dict):
            out[name] = json_schema(item)
        else:
            out[name] = camel_keys(item)
    return out


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A Gemini `Schema` (OpenAPI 3.0 subset: upper-case types, `nullable`) as JSON Schema."""
    out: dict[str, Any] = {}
    for raw_key, value in schema.items():
        key = _camel(raw_key) if "_" in raw_key else raw_key
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: json_schema(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = json_schema(value)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            out[key] = [json_schema(v) if isinstance(v, dict) else v for v in value]
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _read_system(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    parts = expect_list(
        expect_dict(value, "systemInstruction").get("parts", []), "systemInstruction.parts"
    )
    texts = []
    for n, raw in enumerate(parts):
        part = expect_dict(raw, f"systemInstruction.parts[{n}]")
        refuse_unknown(part, frozenset({"text"}), f"systemInstruction.parts[{n}].")
        texts.append(expect_str(part.get("text", ""), f"systemInstruction.parts[{n}].text"))
    return "\n\n".join(t for t in texts if t)


def _read_tools(
    tools_value: object, config_value: object
) -> tuple[ir.ToolChoice | None, tuple[ir.Tool, ...]]:
    tools: list[ir.Tool] = []
    for n, raw in enumerate(expect_list(tools_value or [], "tools")):
        tool = expect_dict(raw, f"tools[{n}]")
        for key in tool:
            if key != "functionDeclarations":
                raise ir.Untranslatable(
                    f"'tools[{n}].{shown(key)}' is a Google built-in tool: only function "
                    "declarations can be translated to another API"
                )
        declarations = expect_list(
            tool.get("functionDeclarations", []), f"tools[{n}].functionDeclarations"
        )
        for k, declaration in enumerate(declarations):
            tools.append(
                _read_declaration(expect_dict(declaration, f"tools[{n}].functionDeclarations[{k}]"))
            )
    if config_value is None:
        return None, tuple(tools)
    config = expect_dict(config_value, "toolConfig")
    refuse_unknown(config, frozenset({"functionCallingConfig"}), "toolConfig.")
    calling = expect_dict(
        config.get("functionCallingConfig", {}), "toolConfig.functionCallingConfig"
    )
    mode = str(calling.get("mode", "AUTO")).upper()
    names = expect_list(
        calling.get("allowedFunctionNames", []),
        "toolConfig.functionCallingConfig.allowedFunctionNames",
    )
    if mode == "AUTO" and not names:
        return ir.ToolChoice("auto"), tuple(tools)
    if mode == "NONE":
        return ir.ToolChoice("none"), tuple(tools)
    if mode == "ANY" and not names:
        return ir.ToolChoice("required"), tuple(tools)
    if mode == "ANY" and len(names) == 1:
        return ir.ToolChoice("tool", expect_str(names[0], "allowedFunctionNames")), tuple(tools)
    raise ir.Untranslatable(
        f"'toolConfig.functionCallingConfig' (mode {shown(mode)} with {len(names)} allowed names) "
        "has no counterpart in the provider's API"
    )


def _read_declaration(declaration: dict[str, Any]) -> ir.Tool:
    name = expect_str(declaration.get("name"), "functionDeclarations.name")
    if declaration.get("parametersJsonSchema") is not None:
        parameters = expect_dict(
            declaration["parametersJsonSchema"], f"{name}.parametersJsonSchema"
        )
    elif declaration.get("parameters") is not None:  # a Schema, made JSON Schema by camel_keys
        parameters = expect_dict(declaration["parameters"], f"{name}.parameters")
    else:
        parameters = {"type": "object", "properties": {}}
    if declaration.get("response") is not None or declaration.get("responseJsonSchema") is not None:
        raise ir.Untranslatable(
            f"the response schema of function '{shown(name)}' has no counterpart in the "
            "provider's API"
        )
    refuse_unknown(declaration, _DECLARATION, f"function '{shown(name)}': ")
    return ir.Tool(name, as_str(declaration.get("description")), parameters)


class _Calls:
    """The conversation's function calls, to give each result its call's id."""

    def __init__(self) -> None:
        self.pending: list[ir.ToolCall] = []  # the last model turn's calls not yet answered
        self.count = 0

    def made(self, turn: int, call: dict[str, Any], where: str) -> ir.ToolCall:
        name = expect_str(call.get("name"), f"{where}.name")
        call_id = as_str(call.get("id")) or f"call_{turn}_{self.count}"
        self.count += 1
        made = ir.ToolCall(
            call_id, name, json_text(expect_dict(call.get("args", {}), f"{where}.args"))
        )
        self.pending.append(made)
        return made

    def answered(self, response: dict[str, Any], where: str) -> ir.ToolResult:
        name = expect_str(response.get("name"), f"{where}.name")
        call_id = as_str(response.get("id"))
        match = next(
            (c for c in self.pending if (c.id == call_id if call_id else c.name == name)),
            None,
        )
        if match is None and not call_id:
            raise ir.Untranslatable(
                f"'{where}' answers no function call of the previous model turn"
            )
        if match is not None:
            self.pending.remove(match)
        result = expect_dict(response.get("response", {}), f"{where}.response")
        return _read_result(match.id if match else call_id, name, result)


def _read_result(call_id: str, name: str, result: dict[str, Any]) -> ir.ToolResult:
    if set(result) == {"error"}:
        error = result["error"]
        return ir.ToolResult(
            call_id, name, (ir.Text(error if isinstance(error, str) else json_text(error)),), True
        )
    if set(result) == {"output"} and isinstance(result["output"], str):
        return ir.ToolResult(call_id, name, (ir.Text(result["output"]),))
    return ir.ToolResult(call_id, name, (ir.Text(json_text(result)),))


def _read_contents(value: object) -> tuple[ir.Message, ...]:
    turns: list[tuple[ir.Role, list[ir.Part]]] = []
    calls = _Calls()
    for n, raw in enumerate(expect_list(value, "contents")):
        content = expect_dict(raw, f"contents[{n}]")
        role: ir.Role = "assistant" if content.get("role") == "model" else "user"
        if content.get("role", "user") not in ("user", "model"):
            raise ir.Untranslatable(f"'contents[{n}].role' must be user or model")
        if role == "assistant":
            calls.pending = []
        parts: list[ir.Part] = []
        for k, part in enumerate(expect_list(content.get("parts", []), f"contents[{n}].parts")):
            parts += _read_part(
                expect_dict(part, f"contents[{n}].parts[{k}]"),
                f"contents[{n}].parts[{k}]",
                n,
                calls,
                role,
            )
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(parts)  # in place: many contents stay linear
        elif parts:
            turns.append((role, parts))
    return tuple(ir.Message(role, tuple(_joined_thoughts(parts))) for role, parts in turns)


#: how a marked value (`carried`) begins once base64-encoded, as a thoughtSignature holds it
_CARRIED = base64.b64encode(carried.PREFIX.encode()).decode()


def _signature_out(part: ir.Reasoning) -> str:
    """The thoughtSignature a reasoning block goes to a Gemini client with: Gemini's own, or
    another API's marked (`carried`; base64, as the SDKs hold the field as bytes)."""
    if part.origin == FORMAT:
        return part.signature
    value = carried.wrap(part)
    return base64.b64encode(value.encode()).decode() if value else ""


def _reasoning_in(text: str, signature: str) -> ir.Reasoning:
    """A thought (or a part's signature) from a Gemini client: Gemini's own, or another
    API's that irisgate gave the client."""
    if signature.startswith(_CARRIED):
        try:
            marked = base64.b64decode(signature, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            marked = ""
        back = carried.unwrap(marked, text)
        if back is not None:
            return back
    return ir.Reasoning(text, signature, origin=FORMAT if signature else "")


def _joined_thoughts(parts: list[ir.Part]) -> list[ir.Part]:
    """Thoughts streamed in pieces as one block: an unsigned thought joins the next thought
    unless that one carries Gemini's own signature (which belongs to the part it came on)."""
    out: list[ir.Part] = []
    pending: list[str] = []  # the texts of unsigned thoughts not yet joined
    for part in parts:
        if isinstance(part, ir.Reasoning) and pending and part.origin != FORMAT:
            pending.append(part.text)
            if part.signature or part.redacted:
                out.append(
                    ir.Reasoning("".join(pending), part.signature, part.redacted, part.origin)
                )
                pending = []
            continue
        if pending:
            out.append(ir.Reasoning("".join(pending)))
            pending = []
        if isinstance(part, ir.Reasoning) and part.text and not (part.signature or part.redacted):
            pending.append(part.text)
        else:
            out.append(part)
    if pending:
        out.append(ir.Reasoning("".join(pending)))
    return out


def _read_part(
    part: dict[str, Any], where: str, turn: int, calls: _Calls, role: ir.Role
) -> list[ir.Part]:
    signature = as_str(part.get("thoughtSignature"))
    if part.get("thought") is True:
        return [_reasoning_in(as_str(part.get("text")), signature)]
    out: list[ir.Part] = [_reasoning_in("", signature)] if signature else []
    if "text" in part:
        text = expect_str(part["text"], f"{where}.text")
        out += [ir.Text(text)] if text else []
    elif "inlineData" in part:
        out.append(_read_inline(expect_dict(part["inlineData"], f"{where}.inlineData"), where))
    elif "fileData" in part:
        out.append(_read_file(expect_dict(part["fileData"], f"{where}.fileData"), where))
    elif "functionCall" in part and role == "assistant":
        out.append(
            calls.made(
                turn,
                expect_dict(part["functionCall"], f"{where}.functionCall"),
                f"{where}.functionCall",
            )
        )
    elif "functionResponse" in part and role == "user":
        out.append(
            calls.answered(
                expect_dict(part["functionResponse"], f"{where}.functionResponse"),
                f"{where}.functionResponse",
            )
        )
    else:
        kinds = sorted(shown(k) for k in part if k not in ("thought", "thoughtSignature"))
        raise ir.Untranslatable(
            f"'{where}' ({', '.join(kinds[:5]) or 'empty'}) cannot be translated to another API"
        )
    return out


def _read_inline(data: dict[str, Any], where: str) -> ir.Image:
    mime = expect_str(data.get("mimeType"), f"{where}.inlineData.mimeType")
    return inline_image(
        mime, expect_str(data.get("data"), f"{where}.inlineData.data"), f"{where}.inlineData"
    )


def _read_file(data: dict[str, Any], where: str) -> ir.Image:
    uri, mime = as_str(data.get("fileUri")), as_str(data.get("mimeType"))
    if not uri.startswith("https://") or "generativelanguage.googleapis.com" in uri:
        raise ir.Untranslatable(
            f"'{where}.fileData' refers to a Google file; send the image inline"
        )
    if mime not in MEDIA_TYPES:
        raise ir.Untranslatable(
            f"'{where}.fileData' of type '{shown(mime)}': only images can be translated"
        )
    return ir.Image(mime, url=uri)


# --- client side: answer -------------------------------------------------------------------

_FINISH: dict[str, str] = {
    "end": "STOP",
    "tool_use": "STOP",
    "stop_sequence": "STOP",
    "pause": "STOP",
    "max_tokens": "MAX_TOKENS",
    "refusal": "SAFETY",
}


def _usage(usage: Usage) -> dict[str, int]:
    out = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens - usage.reasoning_tokens,
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cache_read_tokens:
        out["cachedContentTokenCount"] = usage.cache_read_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


def _call_part(call: ir.ToolCall, where: str) -> dict[str, Any]:
    args = arguments_object(call.arguments, where)
    return {"functionCall": {"id": call.id, "name": call.name, "args": args}}


def _answer_parts(parts: tuple[ir.Text | ir.ToolCall | ir.Reasoning, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    signature = ""  # waits for the part it belongs to
    for part in parts:
        if isinstance(part, ir.Reasoning):
            value = _signature_out(part)
            if part.text or (value and part.origin != FORMAT):
                thought = {"text": part.text, "thought": True}
                out.append({**thought, "thoughtSignature": value} if value else thought)
            else:  # Gemini's own: it belongs to the part that follows
                signature = value or signature
            continue
        piece = (
            {"text": part.text}
            if isinstance(part, ir.Text)
            else _call_part(part, "functionCall.args")
        )
        if signature:
            piece["thoughtSignature"], signature = signature, ""
        out.append(piece)
    if signature:
        out.append({"text": "", "thoughtSignature": signature})
    return out


def _chunk(
    response_id: str, model: str, parts: list[dict[str, Any]], **more: Any
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if "finishReason" in more:
        candidate["finishReason"] = more.pop("finishReason")
    return {"candidates": [candidate], "modelVersion": model, "responseId": response_id, **more}


def write_response(r: ir.Response, tools: tuple[ir.Tool, ...] = ()) -> dict[str, Any]:
    try:
        parts = _answer_parts(r.parts)
    except ir.Untranslatable as exc:
        raise ir.Untranslatable(f"the model's answer cannot be given as Gemini's: {exc}") from None
    return _chunk(r.id, r.model, parts, finishReason=_FINISH[r.stop], usageMetadata=_usage(r.usage))


def _error(status: int, message: str) -> dict[str, Any]:
    names = {
        400: "INVALID_ARGUMENT",
        429: "RESOURCE_EXHAUSTED",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }
    return {"error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}}


class Encoder:
    """`ir.Event`s in, `alt=sse` chunks of `GenerateContentResponse` out."""

    def __init__(self, model: str, tools: tuple[ir.Tool, ...] = ()) -> None:
        self.model = model
        self.response_id = uuid.uuid4().hex
        self.calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> id, name, args
        self.signature = ""  # a thoughtSignature waiting for the next part
        self.carried: dict[int, ir.Reasoning] = {}  # another API's, sent at its block's end
        self.ended = False

    def _data(self, chunk: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"

    def _parts(self, *parts: dict[str, Any], **more: Any) -> bytes:
        listed = list(parts)
        if self.signature and (listed or "finishReason" in more):
            if not listed:
                listed.append({"text": ""})
            listed[0] = {**listed[0], "thoughtSignature": self.signature}
            self.signature = ""
        return self._data(_chunk(self.response_id, self.model, listed, **more))

    def encode(self, event: ir.Event) -> bytes:
        if self.ended:
            return b""
        if isinstance(event, ir.Start):
            self.response_id = _ID.sub("", event.id) or self.response_id
            return b""
        if isinstance(event, ir.TextDelta):
            return self._parts({"text": event.text}) if event.text else b""
        if isinstance(event, ir.ReasoningDelta):
            if event.signature and event.origin == FORMAT:
                self.signature = event.signature
            elif event.signature or event.redacted:
                self.carried[event.index] = ir.Reasoning(
                    signature=event.signature, redacted=event.redacted, origin=event.origin
                )
            return self._parts({"text": event.text, "thought": True}) if event.text else b""
        if isinstance(event, ir.ToolCallStart):
            self.calls[event.index] = (event.id, event.name, [])
            return b""
        if isinstance(event, ir.ToolArgsDelta):
            if event.index in self.calls:
                self.calls[event.index][2].append(event.fragment)
            return b""
        if isinstance(event, ir.BlockEnd):
            return self._call_done(event.index) + self._carried(event.index)
        if isinstance(event, ir.Finish):
            out = b"".join(self._call_done(index) for index in sorted(self.calls))
            out += b"".join(self._carried(index) for index in sorted(self.carried))
            if self.ended:
                return out
            self.ended = True
            return out + self._parts(
                finishReason=_FINISH[event.stop], usageMetadata=_usage(event.usage)
            )
        self.ended = True
        return self._data(_error(event.status, event.message))

    def _carried(self, index: int) -> bytes:
        """Another API's signature, on an empty thought that ends its thoughts."""
        reasoning = self.carried.pop(index, None)
        if reasoning is None:
            return b""
        return self._parts(
            {"text": "", "thought": True, "thoughtSignature": _signature_out(reasoning)}
        )

    def _call_done(self, index: int) -> bytes:
        if index not in self.calls:
            return b""
        call_id, name, fragments = self.calls.pop(index)
        try:
            part = _call_part(ir.ToolCall(call_id, name, "".join(fragments)), "functionCall.args")
        except ir.Untranslatable as exc:
            self.ended = True
            return self._data(
                _error(502, f"the model's tool call cannot be given as Gemini's: {exc}")
            )
        return self._parts(part)

    def close(self) -> bytes:
        """The end of the client's stream: an error chunk when the answer never finished."""
        if self.ended:
            return b""
        self.ended = True
        return self._data(_error(502, CUT_SHORT))


# --- provider side: request ----------------------------------------------------------------


def provider_path(model: str, stream: bool) -> str:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{quote(model, safe='')}:{method}"


def write_request(r: ir.Request) -> dict[str, Any]:
    if r.parallel_tool_calls is False:
        raise ir.Untranslatable("'parallel_tool_calls: false' has no counterpart in the Gemini API")
    body: dict[str, Any] = {"contents": _write_contents(r.messages)}
    if r.system:
        body["systemInstruction"] = {"parts": [{"text": r.system}]}
    if r.tools:
        declarations = [
            {"name": t.name, "description": t.description, "parametersJsonSchema": t.parameters}
            for t in r.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    if r.tool_choice is not None:
        body["toolConfig"] = {"functionCallingConfig": _write_choice(r.tool_choice)}
    config = _write_config(r)
    if config:
        body["generationConfig"] = config
    return body


def _write_choice(choice: ir.ToolChoice) -> dict[str, Any]:
    if choice.mode == "tool":
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice.mode]}


def _write_config(r: ir.Request) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, value in (
        ("maxOutputTokens", r.max_tokens),
        ("temperature", r.temperature),
        ("topP", r.top_p),
    ):
        if value is not None:
            config[key] = value
    if r.stop:
        config["stopSequences"] = list(r.stop)
    if r.response_format is not None:
        config["responseMimeType"] = "application/json"
        if r.response_format.kind == "json_schema":
            config["responseJsonSchema"] = r.response_format.schema or {}
    budget = r.reasoning_budget
    if budget is None and r.reasoning_effort is not None:
        budget = budget_of(r.reasoning_effort)
    if budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
    return config


def _write_contents(messages: tuple[ir.Message, ...]) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # call id -> function name (a result must name its function)
    for n, message in enumerate(messages):
        if message.role == "assistant":
            parts = _write_model_parts(message.parts, f"messages[{n}]")
            names.update((p.id, p.name) for p in message.parts if isinstance(p, ir.ToolCall))
        else:
            parts = [q for p in message.parts for q in _write_user_part(p, names, f"messages[{n}]")]
        if not parts:
            continue
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _write_model_parts(parts: tuple[ir.Part, ...], where: str) -> list[dict[str, Any]]:
    said: list[ir.Text | ir.ToolCall | ir.Reasoning] = []
    for part in parts:
        if isinstance(part, ir.Image | ir.ToolResult):
            raise ir.Untranslatable(f"'{where}' holds an image or tool result in an assistant turn")
        if isinstance(part, ir.Reasoning) and part.origin != FORMAT:
            continue  # another API's reasoning: Gemini takes back only its own thoughts
        said.append(part)
    return [p for p in _answer_parts(tuple(said)) if p.get("text") != "" or "thoughtSignature" in p]


def _image(image: ir.Image, where: str) -> dict[str, Any]:
    if image.url:
        raise ir.Untranslatable(
            f"'{where}' is an image URL: the Gemini API takes images inline (base64)"
        )
    return {"inlineData": {"mimeType": image.media_type, "data": image.data}}


def _write_user_part(part: ir.Part, names: dict[str, str], where: str) -> list[dict[str, Any]]:
    if isinstance(part, ir.Text):
        return [{"text": part.text}] if part.text else []
    if isinstance(part, ir.Image):
        return [_image(part, where)]
    if isinstance(part, ir.ToolResult):
        name = part.name or names.get(part.call_id, "")
        if not name:
            raise ir.Untranslatable(
                f"the tool result for call '{shown(part.call_id)}' answers no earlier tool call"
            )
        text = "".join(p.text for p in part.content if isinstance(p, ir.Text))
        response = {"error": text} if part.is_error else {"output": text}
        result = {"functionResponse": {"id": part.call_id, "name": name, "response": response}}
        return [result, *(_image(p, where) for p in part.content if isinstance(p, ir.Image))]
    raise ir.Untranslatable(f"'{where}' holds a tool call or reasoning in a user turn")


# --- provider side: answer -----------------------------------------------------------------

_STOPS: dict[str, ir.StopReason] = {
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "BLOCKLIST": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "SPII": "refusal",
    "IMAGE_SAFETY": "refusal",
    "LANGUAGE": "refusal",
}


def _read_usage(value: object) -> Usage:
    u = as_dict(value)
    thoughts = as_int(u.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=as_int(u.get("promptTokenCount")) + as_int(u.get("toolUsePromptTokenCount")),
        output_tokens=as_int(u.get("candidatesTokenCount")) + thoughts,
        cache_read_tokens=as_int(u.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


def _stop(reason: str, called: bool, blocked: bool) -> ir.StopReason:
    if blocked:
        return "refusal"
    return _STOPS.get(reason, "tool_use" if called else "end")


def _candidate(body: dict[str, Any]) -> dict[str, Any]:
    return as_dict(next(iter(as_list(body.get("candidates"))), None))


def read_response(body: dict[str, Any]) -> ir.Response:
    response_id = as_str(body.get("responseId"))
    parts: list[ir.Text | ir.ToolCall | ir.Reasoning] = []
    candidate = _candidate(body)
    for raw in as_list(as_dict(candidate.get("content")).get("parts")):
        part = as_dict(raw)
        signature = as_str(part.get("thoughtSignature"))
        if part.get("thought") is True:
            parts.append(
                ir.Reasoning(
                    as_str(part.get("text")), signature, origin=FORMAT if signature else ""
                )
            )
            continue
        if signature:
            parts.append(ir.Reasoning(signature=signature, origin=FORMAT))
        if "functionCall" in part:
            call = as_dict(part["functionCall"])
            calls = sum(isinstance(p, ir.ToolCall) for p in parts)
            call_id = as_str(call.get("id")) or _call_id(response_id, calls)
            parts.append(
                ir.ToolCall(call_id, as_str(call.get("name")), json_text(as_dict(call.get("args"))))
            )
        elif as_str(part.get("text")):
            if parts and isinstance(parts[-1], ir.Text):
                parts[-1] = ir.Text(parts[-1].text + part["text"])
            else:
                parts.append(ir.Text(part["text"]))
    called = any(isinstance(p, ir.ToolCall) for p in parts)
    blocked = bool(as_dict(body.get("promptFeedback")).get("blockReason"))
    return ir.Response(
        id=response_id,
        model=as_str(body.get("modelVersion")),
        parts=tuple(parts),
        stop=_stop(as_str(candidate.get("finishReason")), called, blocked),
        usage=_read_usage(body.get("usageMetadata")),
    )


def _call_id(response_id: str, n: int) -> str:
    return f"call_{_ID.sub('', response_id) or uuid.uuid4().hex}_{n}"


class Decoder:
    """The bytes of an `alt=sse` Gemini stream in, `ir.Event`s out (split at any byte)."""

    def __init__(self) -> None:
        self._parser = SSEParser()
        self._response_id = ""
        self._started = False
        self._open: tuple[str, int] | None = None  # the open block: ("text"|"thought", index)
        self._next = 0
        self._calls = 0
        self._usage: object = None
        self._ended = False

    def feed(self, data: bytes) -> list[ir.Event]:
        out: list[ir.Event] = []
        for sse in self._parser.feed(data):
            if self._ended:
                break
            try:
                chunk = stream_object(sse.data)
            except nesting.TooDeep:
                out.append(ir.StreamError(502, TOO_DEEP))
                self._ended = True
                break
            if chunk is not None:
                self._chunk(chunk, out)
        return out

    def finish(self) -> list[ir.Event]:
        if self._ended:
            return []
        self._ended = True
        return [ir.StreamError(502, CUT_SHORT)]

    def _block(self, kind: str, out: list[ir.Event]) -> int:
        if self._open is not None and self._open[0] == kind:
            return self._open[1]
        self._close(out)
        index, self._next = self._next, self._next + 1
        self._open = (kind, index)
        return index

    def _close(self, out: list[ir.Event]) -> None:
        if self._open is not None:
            out.append(ir.BlockEnd(self._open[1]))
            self._open = None

    def _chunk(self, chunk: dict[str, Any], out: list[ir.Event]) -> None:
        if "error" in chunk:
            error = as_dict(chunk["error"])
            message = shown(as_str(error.get("message")), MESSAGE_LIMIT) or "the provider failed"
            status = as_int(error.get("code"))
            out.append(ir.StreamError(status if 400 <= status <= 599 else 500, message))
            self._ended = True
            return
        if not self._started:
            self._started = True
            self._response_id = as_str(chunk.get("responseId"))
            out.append(ir.Start(self._response_id, as_str(chunk.get("modelVersion"))))
        if "usageMetadata" in chunk:
            self._usage = chunk["usageMetadata"]
        candidate = _candidate(chunk)
        for part in as_list(as_dict(candidate.get("content")).get("parts")):
            self._part(as_dict(part), out)
        reason = as_str(candidate.get("finishReason"))
        blocked = bool(as_dict(chunk.get("promptFeedback")).get("blockReason"))
        if reason or blocked:
            self._close(out)
            out.append(ir.Finish(_stop(reason, self._calls > 0, blocked), _read_usage(self._usage)))
            self._ended = True

    def _part(self, part: dict[str, Any], out: list[ir.Event]) -> None:
        signature = as_str(part.get("thoughtSignature"))
        text = as_str(part.get("text"))
        if part.get("thought") is True:
            index = self._block("thought", out)
            if text or signature:
                origin = FORMAT if signature else ""
                out.append(ir.ReasoningDelta(index, text, signature=signature, origin=origin))
            return
        if signature:  # the signature of the thinking behind this part: a block of its own
            index = self._block("signature", out)
            out.append(ir.ReasoningDelta(index, signature=signature, origin=FORMAT))
            self._close(out)
        if "functionCall" in part:
            self._close(out)
            call = as_dict(part["functionCall"])
            call_id = as_str(call.get("id")) or _call_id(self._response_id, self._calls)
            self._calls += 1
            index, self._next = self._next, self._next + 1
            out.append(ir.ToolCallStart(index, call_id, as_str(call.get("name"))))
            out.append(ir.ToolArgsDelta(index, json_text(as_dict(call.get("args")))))
            out.append(ir.BlockEnd(index))
        elif text:
            out.append(ir.TextDelta(self._block("text", out), text))


def read_error(status: int, body: bytes) -> str:
    """The message of a Google error body (`{"error": {"message": …}}`, or the same in a
    one-element array, as a streamed request's error comes)."""
    return provider_message(status, body, _error_message)


def _error_message(parsed: Any) -> object:
    if isinstance(parsed, list):
        parsed = next(iter(parsed), None)
    return nested(parsed, "error", "message")
