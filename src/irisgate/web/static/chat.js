// The chat app. Conversations live behind /api/chat/...; every turn is a streamed request to
// the gateway's own LLM endpoint (the path the picked model's provider speaks), so identity,
// grants, quotas, hooks, capture and cost apply exactly as to any other client. Answers are
// Markdown rendered by marked and sanitised by DOMPurify before they touch the page.
import { marked } from "/ui/static/vendor/marked.esm.js";
import DOMPurify from "/ui/static/vendor/purify.es.mjs";

const $ = (id) => document.getElementById(id);
const state = { models: [], conversation: null, messages: [], controller: null, files: [] };
// The largest text file one attachment may be (its text goes into the message).
const MAX_FILE_BYTES = 200_000;

async function api(path, options = {}) {
  const init = { ...options, headers: { "Content-Type": "application/json" } };
  if (options.body !== undefined) init.body = JSON.stringify(options.body);
  const resp = await fetch(path, init);
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
  return data;
}

function status(text) {
  $("chat-status").textContent = text || "";
}

function markdown(text) {
  return DOMPurify.sanitize(marked.parse(text || ""));
}

function addCopyButtons(body) {
  for (const pre of body.querySelectorAll("pre")) {
    const button = document.createElement("button");
    button.className = "copy";
    button.type = "button";
    button.textContent = "Copy";
    button.addEventListener("click", () => {
      navigator.clipboard?.writeText(pre.querySelector("code")?.textContent || pre.textContent);
      button.textContent = "Copied";
    });
    pre.appendChild(button);
  }
}

// --- models ---------------------------------------------------------------------------

function modelById(id) {
  return state.models.find((m) => m.id === id);
}

function fillModels() {
  const select = $("model-select");
  const needle = $("model-search").value.trim().toLowerCase();
  const current = select.value;
  select.replaceChildren();
  for (const m of state.models) {
    const label = `${m.model} · ${m.provider_name}`;
    if (needle && !label.toLowerCase().includes(needle) && !m.id.toLowerCase().includes(needle)) continue;
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = label;
    select.appendChild(option);
  }
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

function pickModel(id) {
  if (!modelById(id)) return;
  $("model-search").value = "";
  fillModels();
  $("model-select").value = id;
}

// --- conversation list ------------------------------------------------------------------

async function loadConversations() {
  const q = $("conv-search").value.trim();
  const data = await api(`/api/chat/conversations${q ? `?q=${encodeURIComponent(q)}` : ""}`);
  const list = $("conv-list");
  list.replaceChildren();
  for (const c of data.conversations) list.appendChild(conversationItem(c));
}

function conversationItem(c) {
  const li = document.createElement("li");
  li.dataset.id = c.id;
  if (state.conversation && state.conversation.id === c.id) li.setAttribute("aria-current", "true");
  const open = document.createElement("button");
  open.className = "conv-open";
  open.textContent = c.title || "Untitled";
  open.title = c.title || "Untitled";
  open.addEventListener("click", () => openConversation(c.id));
  const rename = document.createElement("button");
  rename.className = "conv-action conv-rename";
  rename.textContent = "✎";
  rename.setAttribute("aria-label", `Rename ${c.title || "Untitled"}`);
  rename.addEventListener("click", () => startRename(li, c));
  const del = document.createElement("button");
  del.className = "conv-action conv-delete";
  del.textContent = "✕";
  del.setAttribute("aria-label", `Delete ${c.title || "Untitled"}`);
  del.addEventListener("click", () => deleteConversation(c));
  li.append(open, rename, del);
  return li;
}

function startRename(li, c) {
  const input = document.createElement("input");
  input.className = "conv-title-input";
  input.value = c.title;
  input.setAttribute("aria-label", "New title");
  li.replaceChildren(input);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    if (save && input.value.trim() && input.value !== c.title) {
      try {
        const updated = await api(`/api/chat/conversations/${c.id}`, {
          method: "PATCH",
          body: { title: input.value.trim() },
        });
        if (state.conversation && state.conversation.id === c.id) {
          state.conversation = updated;
          $("chat-title").textContent = updated.title;
        }
      } catch (err) {
        status(err.message);
      }
    }
    await loadConversations();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

async function deleteConversation(c) {
  if (!confirm(`Delete "${c.title || "Untitled"}"?`)) return;
  try {
    await api(`/api/chat/conversations/${c.id}`, { method: "DELETE" });
  } catch (err) {
    status(err.message);
  }
  if (state.conversation && state.conversation.id === c.id) newChat();
  await loadConversations();
}

// --- one conversation -------------------------------------------------------------------

function newChat() {
  if (state.controller) return;
  state.conversation = null;
  state.messages = [];
  $("chat-title").textContent = "New chat";
  $("instructions").value = "";
  $("messages").replaceChildren();
  history.replaceState(null, "", "/chat/");
  for (const li of $("conv-list").children) li.removeAttribute("aria-current");
  $("prompt").focus();
}

async function openConversation(id) {
  if (state.controller) return;
  let data;
  try {
    data = await api(`/api/chat/conversations/${encodeURIComponent(id)}`);
  } catch (err) {
    status(err.message);
    newChat();
    return;
  }
  state.conversation = data;
  state.messages = data.messages;
  $("chat-title").textContent = data.title || "Untitled";
  $("instructions").value = data.instructions;
  if (data.model) pickModel(data.model);
  history.replaceState(null, "", `/chat/#${data.id}`);
  renderMessages();
  for (const li of $("conv-list").children) {
    if (li.dataset.id === id) li.setAttribute("aria-current", "true");
    else li.removeAttribute("aria-current");
  }
}

function renderMessages() {
  const box = $("messages");
  box.replaceChildren();
  for (const m of state.messages) box.appendChild(messageElement(m));
  markRetry();
  box.scrollTop = box.scrollHeight;
}

function messageElement(m) {
  const el = document.createElement("article");
  el.className = `msg ${m.role}`;
  el.dataset.outcome = m.outcome || "";
  const body = document.createElement("div");
  body.className = "body";
  el.appendChild(body);
  if (m.role === "user") {
    body.textContent = m.content;
  } else if (m.outcome === "error") {
    body.innerHTML = "";
    const err = document.createElement("p");
    err.className = "turn-error";
    err.textContent = m.content;
    body.appendChild(err);
  } else {
    body.innerHTML = markdown(m.content);
    addCopyButtons(body);
  }
  if (m.role === "assistant") {
    const meta = document.createElement("div");
    meta.className = "meta";
    const model = document.createElement("span");
    model.textContent = m.model || "";
    meta.appendChild(model);
    if (m.outcome && m.outcome !== "completed") {
      const outcome = document.createElement("span");
      outcome.className = "outcome";
      outcome.textContent = m.outcome;
      meta.appendChild(outcome);
    }
    el.appendChild(meta);
  }
  return el;
}

function markRetry() {
  document.querySelectorAll(".msg .retry").forEach((b) => b.remove());
  const last = state.messages[state.messages.length - 1];
  const articles = $("messages").querySelectorAll(".msg");
  const el = articles[articles.length - 1];
  if (!last || last.role !== "assistant" || !el) return;
  const retry = document.createElement("button");
  retry.className = "retry";
  retry.type = "button";
  retry.textContent = "Retry";
  retry.addEventListener("click", () => retryLast());
  el.querySelector(".meta").appendChild(retry);
}

async function saveInstructions() {
  const text = $("instructions").value;
  if (!state.conversation) {
    $("instructions-status").textContent = "Saved with the first message.";
    return;
  }
  try {
    state.conversation = await api(`/api/chat/conversations/${state.conversation.id}`, {
      method: "PATCH",
      body: { instructions: text },
    });
    $("instructions-status").textContent = "Saved.";
  } catch (err) {
    $("instructions-status").textContent = err.message;
  }
}

// --- turns ------------------------------------------------------------------------------

function wireMessages(model, messages, instructions) {
  const turns = messages
    .filter((m) => m.content && m.outcome !== "error")
    .map((m) => ({ role: m.role, content: m.content }));
  if (model.api === "anthropic_messages") {
    const body = { model: model.id, max_tokens: 4096, stream: true, messages: turns };
    if (instructions) body.system = instructions;
    return body;
  }
  const all = instructions ? [{ role: "system", content: instructions }, ...turns] : turns;
  return { model: model.id, stream: true, stream_options: { include_usage: true }, messages: all };
}

// Reads an SSE stream and calls onEvent(parsed JSON) per `data:` line.
async function readEvents(resp, onEvent) {
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

// What one streamed event adds: {text, outcome, error}.
function openaiEvent(ev) {
  const choice = (ev.choices || [])[0];
  const out = { text: choice?.delta?.content || "" };
  const reason = choice?.finish_reason;
  if (reason === "length") out.outcome = "truncated";
  else if (reason === "content_filter") out.outcome = "refused";
  else if (reason) out.outcome = "completed";
  if (ev.error) out.error = ev.error.message || JSON.stringify(ev.error);
  return out;
}

function anthropicEvent(ev) {
  const out = { text: "" };
  if (ev.type === "content_block_delta" && ev.delta?.type === "text_delta") out.text = ev.delta.text;
  if (ev.type === "message_delta" && ev.delta?.stop_reason) {
    const reason = ev.delta.stop_reason;
    out.outcome = reason === "max_tokens" ? "truncated" : reason === "refusal" ? "refused" : "completed";
  }
  if (ev.type === "error") out.error = ev.error?.message || "upstream error";
  return out;
}

function waitText(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s)) return "";
  if (s < 90) return `${s} seconds`;
  if (s < 5400) return `${Math.round(s / 60)} minutes`;
  return `${Math.round(s / 3600)} hours`;
}

async function errorText(resp) {
  const text = await resp.text();
  let message = text;
  try {
    const data = JSON.parse(text);
    message = data.error?.message || data.error || data.message || text;
  } catch {
    // not JSON: the text as sent
  }
  let out = `Error ${resp.status}: ${message}`;
  if (resp.status === 429) {
    const after = resp.headers.get("Retry-After");
    out += after
      ? `\nYour quota refills enough to continue in ${waitText(after)} (Retry-After: ${after}s).`
      : "\nThis quota does not refill on its own: ask an administrator.";
  }
  return out;
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("prompt").disabled = false;
}

async function runTurn() {
  const model = modelById($("model-select").value);
  if (!model) {
    status("No model selected.");
    return;
  }
  const instructions = state.conversation?.instructions || "";
  const payload = wireMessages(model, state.messages, instructions);
  const pending = { role: "assistant", content: "", model: model.id, outcome: "" };
  const el = messageElement(pending);
  el.classList.add("streaming");
  $("messages").appendChild(el);
  const body = el.querySelector(".body");
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  status(`Asking ${model.model}…`);
  let text = "";
  let outcome = "";
  let error = "";
  let requestId = "";
  let frame = 0;
  const paint = () => {
    frame = 0;
    body.innerHTML = markdown(text);
    $("messages").scrollTop = $("messages").scrollHeight;
  };
  try {
    const resp = await fetch(model.path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
      signal: controller.signal,
    });
    requestId = resp.headers.get("x-irisgate-request-id") || "";
    if (!resp.ok) {
      error = await errorText(resp);
    } else {
      const parse = model.api === "anthropic_messages" ? anthropicEvent : openaiEvent;
      await readEvents(resp, (ev) => {
        const got = parse(ev);
        if (got.text) {
          text += got.text;
          if (!frame) frame = requestAnimationFrame(paint);
        }
        if (got.outcome) outcome = got.outcome;
        if (got.error) error = got.error;
      });
      if (!outcome && !error) error = "the answer ended before the model finished";
    }
  } catch (err) {
    if (controller.signal.aborted) outcome = "cancelled";
    else error = `Error: ${err.message}`;
  }
  if (frame) cancelAnimationFrame(frame);
  state.controller = null;
  setBusy(false);
  const saved = error
    ? { role: "assistant", content: text ? `${text}\n\n${error}` : error, model: model.id, outcome: "error" }
    : { role: "assistant", content: text, model: model.id, outcome: outcome || "completed" };
  saved.request_id = requestId;
  status(error ? "The turn failed." : outcome === "cancelled" ? "Stopped." : "");
  try {
    const stored = await api(`/api/chat/conversations/${state.conversation.id}/messages`, {
      method: "POST",
      body: saved,
    });
    state.messages.push(stored);
  } catch (err) {
    state.messages.push(saved);
    status(`The answer could not be saved: ${err.message}`);
  }
  el.replaceWith(messageElement(state.messages[state.messages.length - 1]));
  markRetry();
  loadConversations();
}

// --- attachments: text files, sent as part of the user's message ----------------------

async function attach(fileList) {
  for (const file of fileList) {
    if (file.size > MAX_FILE_BYTES) {
      status(`${file.name} is larger than ${MAX_FILE_BYTES / 1000} kB: attach a smaller text file.`);
      continue;
    }
    const text = await file.text();
    if (text.includes("\u0000") || text.includes("\uFFFD")) {
      status(`${file.name} is not a text file: only text files can be attached.`);
      continue;
    }
    state.files.push({ name: file.name, text });
  }
  $("attach").value = "";
  showAttachments();
}

function showAttachments() {
  const list = $("attachments");
  list.replaceChildren();
  state.files.forEach((f, i) => {
    const li = document.createElement("li");
    li.textContent = f.name;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "✕";
    remove.setAttribute("aria-label", `Remove ${f.name}`);
    remove.addEventListener("click", () => {
      state.files.splice(i, 1);
      showAttachments();
    });
    li.appendChild(remove);
    list.appendChild(li);
  });
}

function withAttachments(text) {
  const fence = (body) => {
    let ticks = "```";
    while (body.includes(ticks)) ticks += "`";
    return ticks;
  };
  const parts = state.files.map((f) => {
    const ticks = fence(f.text);
    return `Attached file ${f.name}:\n${ticks}\n${f.text}\n${ticks}`;
  });
  return [text, ...parts].filter(Boolean).join("\n\n");
}

async function send(event) {
  event.preventDefault();
  if (state.controller) return;
  const typed = $("prompt").value.trim();
  const model = $("model-select").value;
  if ((!typed && !state.files.length) || !model) return;
  const text = withAttachments(typed);
  try {
    if (!state.conversation) {
      state.conversation = await api("/api/chat/conversations", {
        method: "POST",
        body: {
          title: (typed || state.files[0].name).slice(0, 80),
          model,
          instructions: $("instructions").value,
        },
      });
      $("chat-title").textContent = state.conversation.title;
      history.replaceState(null, "", `/chat/#${state.conversation.id}`);
    } else if (state.conversation.model !== model) {
      state.conversation = await api(`/api/chat/conversations/${state.conversation.id}`, {
        method: "PATCH",
        body: { model },
      });
    }
    const stored = await api(`/api/chat/conversations/${state.conversation.id}/messages`, {
      method: "POST",
      body: { role: "user", content: text },
    });
    state.messages.push(stored);
  } catch (err) {
    status(err.message);
    return;
  }
  $("prompt").value = "";
  state.files = [];
  showAttachments();
  document.querySelectorAll(".msg .retry").forEach((b) => b.remove());
  $("messages").appendChild(messageElement(state.messages[state.messages.length - 1]));
  await runTurn();
}

async function retryLast() {
  if (state.controller) return;
  const last = state.messages[state.messages.length - 1];
  if (!last || last.role !== "assistant") return;
  try {
    await api(`/api/chat/conversations/${state.conversation.id}/messages/${last.id}`, {
      method: "DELETE",
    });
  } catch (err) {
    status(err.message);
    return;
  }
  state.messages.pop();
  renderMessages();
  await runTurn();
}

// --- start ------------------------------------------------------------------------------

async function start() {
  $("composer").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) send(e);
  });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("new-chat").addEventListener("click", newChat);
  $("model-search").addEventListener("input", fillModels);
  $("attach").addEventListener("change", () => attach($("attach").files));
  let timer = 0;
  $("conv-search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => loadConversations().catch((err) => status(err.message)), 200);
  });
  $("instructions-toggle").addEventListener("click", () => {
    const panel = $("instructions-panel");
    panel.hidden = !panel.hidden;
    $("instructions-toggle").setAttribute("aria-expanded", String(!panel.hidden));
  });
  $("instructions-save").addEventListener("click", saveInstructions);
  try {
    state.models = (await api("/api/chat/models")).models;
  } catch (err) {
    status(err.message);
  }
  fillModels();
  if (!state.models.length) status("No model you are granted offers a chat API.");
  await loadConversations();
  const wanted = location.hash.slice(1);
  if (wanted) await openConversation(wanted);
  document.body.dataset.ready = "true";
}

start();
