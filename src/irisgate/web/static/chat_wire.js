// The chat's side of a model round, without I/O. Irisgate builds each round's request in
// the picked model's own API format (OpenAI, Anthropic, Responses, Gemini, Vertex, Bedrock
// Converse: irisgate.gateway.formats.chatwire) and streams the answer back as the chat's
// own events, the same for every API; this folds them into one round (text, reasoning,
// tool calls, what goes back with them, how it ended).

// The most model requests one turn makes (irisgate.chat.parts.MAX_ROUNDS keeps as many).
export const MAX_ROUNDS = 8;

// Tool names as the APIs accept them (letters, digits, _ and -, at most 64); irisgate
// writes them the same way (irisgate.chat.rounds.wire_name).
// Counted in characters (code points), as Python counts them.
export function wireName(name) {
  return Array.from(name.replace(/[^A-Za-z0-9_-]/gu, "_")).slice(0, 64).join("");
}

// What one model round streamed so far.
export function newRound() {
  return { text: "", reasoning: "", outcome: "", ended: false, error: "", calls: [], replay: [], usage: null };
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
      if (!data) continue;
      onEvent(JSON.parse(data));
    }
  }
}

// Folds one chat event into `round`.
export function foldEvent(ev, round) {
  if (ev.type === "text") round.text += ev.text;
  else if (ev.type === "reasoning") round.reasoning += ev.text;
  else if (ev.type === "call") round.calls.push(ev);
  else if (ev.type === "replay") round.replay.push(...(ev.items || []));
  else if (ev.type === "usage") round.usage = ev;
  else if (ev.type === "error") round.error = ev.message || "upstream error";
  else if (ev.type === "end") {
    round.ended = true;
    round.outcome = ev.outcome || "";
  }
}

// The finished round's tool calls [{id, wire, arguments, problem}] and what goes back with
// them to the model in the next round.
export function finishRound(round) {
  const calls = round.calls.map((c, i) => ({
    id: c.id || `call_${i}`,
    wire: c.name,
    arguments: c.arguments || {},
    problem: c.problem || "",
  }));
  return { calls, replay: round.replay };
}
