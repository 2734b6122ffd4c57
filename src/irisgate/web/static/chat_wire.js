// The chat's wire formats, without I/O: the request body of one model round (OpenAI chat
// completions or Anthropic messages, whichever the picked model's provider speaks) built from
// the stored conversation, and the streamed events of the answer folded into one round
// (text, reasoning, tool calls, how it ended).

// The most model requests one turn makes (irisgate.chat.parts.MAX_ROUNDS keeps as many).
export const MAX_ROUNDS = 8;
// Anthropic thinking budgets per effort; max_tokens leaves ANSWER_TOKENS beyond the budget.
const THINKING_BUDGET = { low: 2048, medium: 8192, high: 24576 };
const ANSWER_TOKENS = 4096;

// Tool names as the APIs accept them (letters, digits, _ and -, at most 64).
export function wireName(name) {
  return name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 64);
}

function isAnthropic(model) {
  return model.api === "anthropic_messages";
}

function userContent(model, m) {
  const images = m.attachments || [];
  let text = m.content || "";
  if (!images.length) return text;
  if (!model.images) {
    const names = images.map((i) => i.name || "image").join(", ");
    return `${text}\n\n[${names} not sent: ${model.model} does not accept images]`.trim();
  }
  const textPart = text ? [{ type: "text", text }] : [];
  if (isAnthropic(model)) {
    const parts = images.map((i) => ({
      type: "image",
      source: { type: "base64", media_type: i.media_type, data: i.data },
    }));
    return [...parts, ...textPart];
  }
  const parts = images.map((i) => ({
    type: "image_url",
    image_url: { url: `data:${i.media_type};base64,${i.data}` },
  }));
  return [...textPart, ...parts];
}

function output(call) {
  return call.output || "(no output)";
}

// A turn's tool rounds as plain text, for requests that offer no tools (Anthropic refuses
// tool_use blocks then) and for earlier turns in such requests.
function roundsAsText(m) {
  const lines = [];
  for (const round of m.tool_calls || []) {
    if (round.text) lines.push(round.text);
    for (const c of round.calls) {
      const state = c.is_error ? "failed" : "returned";
      lines.push(`[tool ${c.name} called with ${JSON.stringify(c.arguments)} ${state}: ${output(c)}]`);
    }
  }
  if (m.content) lines.push(m.content);
  return lines.length ? [{ role: "assistant", content: lines.join("\n\n") }] : [];
}

function anthropicRounds(m) {
  const out = [];
  for (const round of m.tool_calls || []) {
    const content = [...(round.thinking || [])];
    if (round.text) content.push({ type: "text", text: round.text });
    for (const c of round.calls) {
      content.push({ type: "tool_use", id: c.id, name: wireName(c.name), input: c.arguments });
    }
    out.push({ role: "assistant", content });
    const results = round.calls.map((c) => {
      const result = { type: "tool_result", tool_use_id: c.id, content: output(c) };
      if (c.is_error) result.is_error = true;
      return result;
    });
    out.push({ role: "user", content: results });
  }
  if (m.content) out.push({ role: "assistant", content: m.content });
  return out;
}

function openaiRounds(m) {
  const out = [];
  for (const round of m.tool_calls || []) {
    out.push({
      role: "assistant",
      content: round.text || null,
      tool_calls: round.calls.map((c) => ({
        id: c.id,
        type: "function",
        function: { name: wireName(c.name), arguments: JSON.stringify(c.arguments) },
      })),
    });
    for (const c of round.calls) out.push({ role: "tool", tool_call_id: c.id, content: output(c) });
  }
  if (m.content) out.push({ role: "assistant", content: m.content });
  return out;
}

function assistantTurns(model, m, structured) {
  if (!structured) return roundsAsText(m);
  return isAnthropic(model) ? anthropicRounds(m) : openaiRounds(m);
}

// The body of one model round. `history`: the stored messages; `pending`: the turn in
// progress ({tool_calls: rounds so far}); `tools`: [{name, description, input_schema}]
// offered to the model; `effort`: "", "low", "medium" or "high".
export function buildRequest(model, { history, pending, instructions, tools, effort }) {
  const structured = tools.length > 0;
  const turns = [];
  for (const m of history) {
    if (m.outcome === "error") continue;
    if (m.role === "user") {
      if (m.content || (m.attachments || []).length) {
        turns.push({ role: "user", content: userContent(model, m) });
      }
    } else {
      turns.push(...assistantTurns(model, m, structured));
    }
  }
  if (pending) turns.push(...assistantTurns(model, pending, structured));
  if (isAnthropic(model)) {
    const body = { model: model.id, max_tokens: ANSWER_TOKENS, stream: true, messages: turns };
    if (instructions) body.system = instructions;
    if (structured) {
      body.tools = tools.map((t) => ({
        name: wireName(t.name),
        description: t.description || t.name,
        input_schema: t.input_schema,
      }));
    }
    if (effort && model.reasoning) {
      body.thinking = { type: "enabled", budget_tokens: THINKING_BUDGET[effort] };
      body.max_tokens = THINKING_BUDGET[effort] + ANSWER_TOKENS;
    }
    return body;
  }
  const messages = instructions ? [{ role: "system", content: instructions }, ...turns] : turns;
  const body = {
    model: model.id,
    stream: true,
    stream_options: { include_usage: true },
    messages,
  };
  if (structured) {
    body.tools = tools.map((t) => ({
      type: "function",
      function: {
        name: wireName(t.name),
        description: t.description || t.name,
        parameters: t.input_schema,
      },
    }));
  }
  if (effort && model.reasoning) body.reasoning_effort = effort;
  return body;
}

// --- answers --------------------------------------------------------------------------

// What one model round streamed so far.
export function newRound() {
  return { text: "", reasoning: "", outcome: "", error: "", calls: [], blocks: [] };
}

// Reads an SSE stream and calls onEvent(parsed JSON) per `data:` line.
export async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, cut).replace(/\r$/, "");
      buffer = buffer.slice(cut + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (!data || data === "[DONE]") continue;
      onEvent(JSON.parse(data));
    }
  }
}

function openaiOutcome(reason) {
  if (reason === "length") return "truncated";
  if (reason === "content_filter") return "refused";
  return "completed";
}

// Folds one OpenAI chat completion chunk into `round`.
export function openaiEvent(ev, round) {
  if (ev.error) round.error = ev.error.message || JSON.stringify(ev.error);
  const choice = (ev.choices || [])[0];
  if (!choice) return;
  const delta = choice.delta || {};
  if (delta.content) round.text += delta.content;
  // OpenAI-compatible servers (DeepSeek, vLLM, OpenRouter…) stream their reasoning here.
  const thought = delta.reasoning_content ?? delta.reasoning;
  if (typeof thought === "string") round.reasoning += thought;
  for (const piece of delta.tool_calls || []) {
    const index = piece.index ?? 0;
    const call = (round.calls[index] ||= { id: "", name: "", json: "" });
    if (piece.id) call.id = piece.id;
    if (piece.function?.name) call.name = piece.function.name;
    if (piece.function?.arguments) call.json += piece.function.arguments;
  }
  if (choice.finish_reason) round.outcome = openaiOutcome(choice.finish_reason);
}

function anthropicBlock(block) {
  if (block.type === "tool_use") return { type: "tool_use", id: block.id, name: block.name, json: "" };
  if (block.type === "thinking") return { type: "thinking", thinking: block.thinking || "", signature: "" };
  if (block.type === "redacted_thinking") return { type: "redacted_thinking", data: block.data };
  return { type: block.type };
}

// Folds one Anthropic message event into `round`.
export function anthropicEvent(ev, round) {
  if (ev.type === "content_block_start") {
    round.blocks[ev.index] = anthropicBlock(ev.content_block || {});
    if (ev.content_block?.type === "text" && ev.content_block.text) round.text += ev.content_block.text;
  } else if (ev.type === "content_block_delta") {
    const block = round.blocks[ev.index] || {};
    const delta = ev.delta || {};
    if (delta.type === "text_delta") round.text += delta.text;
    else if (delta.type === "thinking_delta") {
      block.thinking = (block.thinking || "") + delta.thinking;
      round.reasoning += delta.thinking;
    } else if (delta.type === "signature_delta") block.signature = delta.signature;
    else if (delta.type === "input_json_delta") block.json = (block.json || "") + delta.partial_json;
  } else if (ev.type === "message_delta" && ev.delta?.stop_reason) {
    const reason = ev.delta.stop_reason;
    round.outcome = reason === "max_tokens" ? "truncated" : reason === "refusal" ? "refused" : "completed";
  } else if (ev.type === "error") {
    round.error = ev.error?.message || "upstream error";
  }
}

// The finished round's tool calls [{id, wire, arguments, problem}] and, for Anthropic, the
// thinking blocks that must go back with them.
export function finishRound(model, round) {
  const raw = isAnthropic(model)
    ? round.blocks.filter((b) => b && b.type === "tool_use")
    : round.calls.filter(Boolean);
  const calls = raw.map((c, i) => {
    const call = { id: c.id || `call_${i}`, wire: c.name, arguments: {}, problem: "" };
    try {
      const parsed = c.json ? JSON.parse(c.json) : {};
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) call.arguments = parsed;
      else call.problem = "the tool arguments were not a JSON object";
    } catch (err) {
      call.problem = `the tool arguments were not valid JSON (${err.message})`;
    }
    return call;
  });
  const thinking = isAnthropic(model)
    ? round.blocks.filter((b) => b && (b.type === "thinking" || b.type === "redacted_thinking"))
    : [];
  return { calls, thinking };
}
