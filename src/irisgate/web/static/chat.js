// The chat app. Conversations live behind /api/chat/...; every model round goes to
// /api/chat/conversations/<id>/round, where irisgate writes it in the API the picked model's
// provider speaks and sends it through its own gateway as this user's request, so identity,
// grants, quotas, hooks, capture and cost apply exactly as to any other client; the answer
// streams back as the chat's own events, whatever the API. Answers are Markdown rendered by
// marked and sanitised by DOMPurify before they touch the page.
//
// Tools: the loop runs here. When the model answers with tool calls, each call goes to
// /api/chat/conversations/<id>/tools/call (the same grant checks, credentials and records as
// /v1/mcp), the results go back to the model in the next round, until it answers without
// calls or MAX_ROUNDS rounds have run. Each call shows its input and output inline. Stop
// aborts the running request, a model round or a tool call: irisgate cancels either upstream.
//
// Projects (/api/chat/projects) group conversations in the sidebar; a project's instructions
// go before a conversation's own and its tool access narrows the Tools menu (irisgate
// enforces both). Images are uploaded to /api/chat/conversations/<id>/attachments when a
// message is sent and shown again from their URL.
import { marked } from "/ui/static/vendor/marked.esm.js";
import DOMPurify from "/ui/static/vendor/purify.es.mjs";
import { MAX_ROUNDS, finishRound, foldEvent, newRound, readEvents, wireName } from "/ui/static/chat_wire.js";

const $ = (id) => document.getElementById(id);
const state = {
  models: [],
  conversation: null,
  messages: [],
  controller: null,
  files: [],
  images: [],
  tools: [], // the connector tools the user is granted
  toolsLoaded: null, // resolves when `tools` is known
  enabled: new Set(), // the tools switched on in this conversation
  projects: [], // the user's projects
  projectId: "", // the project of this conversation (or of the new chat), "" for none
  editingProject: null, // the project the editor shows (null: a new one)
  closedProjects: new Set(), // projects folded in the sidebar
};
// The largest text file one attachment may be (its text goes into the message).
const MAX_FILE_BYTES = 200_000;
// Images: the types every chat API takes, at most 4 per message of at most 3.75 MB each
// (irisgate.chat.parts checks the same).
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_IMAGES = 4;
const MAX_IMAGE_BYTES = 3_750_000;
// What a tool call cut short by Stop records (irisgate cancels the upstream call).
const STOPPED_CALL = "stopped by the user: the call was cancelled";

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

// Images in a reply load only from the gateway itself (or data:/blob: URLs): one elsewhere
// would send the browser to that host with whatever the model wrote into its URL, such as
// the conversation. The page's Content-Security-Policy refuses the fetch as well; here it
// becomes a link the user may choose to follow.
function markdown(text) {
  const template = document.createElement("template"); // inert: nothing in it loads
  template.innerHTML = DOMPurify.sanitize(marked.parse(text || ""));
  for (const img of template.content.querySelectorAll("img")) {
    const url = new URL(img.getAttribute("src") || "", location.href);
    if (url.origin === location.origin || ["data:", "blob:"].includes(url.protocol)) continue;
    const link = document.createElement("a");
    link.href = url.href;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    link.textContent = `image: ${img.alt || url.host}`;
    img.replaceWith(link);
  }
  return template.innerHTML;
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
    // an admin's label (config `chat.models`) names the model; else model and provider
    const label = m.label || `${m.model} · ${m.provider_name}`;
    if (needle && !label.toLowerCase().includes(needle) && !m.id.toLowerCase().includes(needle)) continue;
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = label;
    option.title = `${m.id} — ${m.api_title}: ${features(m)}`;
    select.appendChild(option);
  }
  if ([...select.options].some((o) => o.value === current)) select.value = current;
  updateComposer();
}

function pickModel(id) {
  if (!modelById(id)) return;
  $("model-search").value = "";
  fillModels();
  $("model-select").value = id;
  updateComposer();
}

// What the chat offers with a model (its API's abilities and the model's own).
function features(m) {
  const names = [
    [m.stream, "streaming"],
    [m.tools, "tools"],
    [m.images, "images"],
    [m.reasoning, "reasoning"],
  ];
  return names.filter(([on]) => on).map(([, name]) => name).join(" · ") || "text";
}

// The reasoning control only for models that reason; its "none" says what it means there.
function updateComposer() {
  const model = modelById($("model-select").value);
  const effort = $("effort");
  effort.hidden = !model?.reasoning;
  effort.options[0].textContent = model?.effort_off || "Reasoning: default";
  $("model-features").textContent = model ? `${model.api_title} · ${features(model)}` : "";
  $("attach-label").title = model?.images
    ? "Attach images (PNG, JPEG, GIF, WebP) or text files"
    : "Attach text files (code, notes, CSV…)";
}

// --- conversation list ------------------------------------------------------------------

async function loadConversations() {
  const q = $("conv-search").value.trim();
  const [data, projects] = await Promise.all([
    api(`/api/chat/conversations${q ? `?q=${encodeURIComponent(q)}` : ""}`),
    api("/api/chat/projects"),
  ]);
  state.projects = projects.projects;
  fillProjectSelect();
  const inProject = new Map(state.projects.map((p) => [p.id, []]));
  const loose = [];
  for (const c of data.conversations) (inProject.get(c.project_id) || loose).push(c);
  const projectList = $("project-list");
  projectList.replaceChildren();
  for (const project of state.projects) {
    const found = inProject.get(project.id);
    if (q && !found.length) continue;
    projectList.appendChild(projectItem(project, found));
  }
  const list = $("conv-list");
  list.replaceChildren();
  for (const c of loose) list.appendChild(conversationItem(c));
}

// One project in the sidebar: its name, a new chat in it, its settings, its conversations.
function projectItem(project, conversations) {
  const li = document.createElement("li");
  li.dataset.project = project.id;
  const details = document.createElement("details");
  details.open = !state.closedProjects.has(project.id);
  details.addEventListener("toggle", () => {
    if (details.open) state.closedProjects.delete(project.id);
    else state.closedProjects.add(project.id);
  });
  const summary = document.createElement("summary");
  const name = document.createElement("span");
  name.className = "project-name";
  name.textContent = project.name;
  name.title = project.name;
  const count = document.createElement("span");
  count.className = "project-count";
  count.textContent = String(conversations.length);
  const add = document.createElement("button");
  add.type = "button";
  add.className = "conv-action project-new-chat";
  add.textContent = "+";
  add.title = `New chat in ${project.name}`;
  add.setAttribute("aria-label", `New chat in ${project.name}`);
  add.addEventListener("click", (e) => {
    e.preventDefault();
    newChatIn(project.id);
  });
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "conv-action project-edit";
  edit.textContent = "⚙";
  edit.title = `Project settings of ${project.name}`;
  edit.setAttribute("aria-label", `Settings of ${project.name}`);
  edit.addEventListener("click", (e) => {
    e.preventDefault();
    editProject(project);
  });
  summary.append(name, count, add, edit);
  const list = document.createElement("ul");
  list.className = "conv-list";
  for (const c of conversations) list.appendChild(conversationItem(c));
  if (!conversations.length) {
    const empty = document.createElement("li");
    empty.className = "conv-empty";
    empty.textContent = "No conversations yet";
    list.appendChild(empty);
  }
  details.append(summary, list);
  li.appendChild(details);
  return li;
}

// --- projects ---------------------------------------------------------------------------

function currentProject() {
  return state.projects.find((p) => p.id === state.projectId) || null;
}

// Whether the current project lets conversations use this tool (outside a project: yes).
function projectAllows(name) {
  const project = currentProject();
  return !project || project.tools === null || project.tools.includes(name);
}

function fillProjectSelect() {
  const select = $("project-select");
  select.replaceChildren(new Option("No project", ""));
  for (const p of state.projects) select.appendChild(new Option(`Project: ${p.name}`, p.id));
  select.value = state.projects.some((p) => p.id === state.projectId) ? state.projectId : "";
}

function showProjectNote() {
  const project = currentProject();
  const note = $("project-note");
  note.hidden = !project?.instructions;
  note.textContent = project?.instructions
    ? `Project ${project.name} sends these instructions first:\n${project.instructions}`
    : "";
}

function projectChanged() {
  fillProjectSelect();
  renderTools();
  showProjectNote();
}

async function moveToProject(projectId) {
  const previous = state.projectId;
  state.projectId = projectId;
  if (state.conversation) {
    try {
      state.conversation = await api(`/api/chat/conversations/${state.conversation.id}`, {
        method: "PATCH",
        body: { project_id: projectId },
      });
    } catch (err) {
      state.projectId = previous;
      status(err.message);
    }
  }
  projectChanged();
  await loadConversations();
}

function newChatIn(projectId) {
  newChat();
  if (state.controller) return;
  state.projectId = projectId;
  projectChanged();
}

function editProject(project) {
  state.editingProject = project;
  $("project-panel-title").textContent = project ? `Project ${project.name}` : "New project";
  $("project-name").value = project ? project.name : "";
  $("project-instructions").value = project ? project.instructions : "";
  const some = Boolean(project) && project.tools !== null;
  $("project-tools-all").checked = !some;
  $("project-tools-some").checked = some;
  renderProjectTools(new Set(project && project.tools ? project.tools : []));
  $("project-delete").hidden = !project;
  $("project-status").textContent = "";
  $("project-panel").hidden = false;
  document.body.classList.remove("side-open");
  $("project-name").focus();
}

function renderProjectTools(chosen) {
  const list = $("project-tool-list");
  list.replaceChildren();
  if (!state.tools.length) {
    const li = document.createElement("li");
    li.className = "tool-none";
    li.textContent = "No connector tools are granted to you.";
    list.appendChild(li);
  }
  for (const tool of state.tools) {
    const li = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = tool.name;
    box.checked = chosen.has(tool.name);
    box.addEventListener("change", () => {
      $("project-tools-some").checked = true;
    });
    const name = document.createElement("span");
    name.className = "tool-name";
    name.textContent = tool.name;
    label.append(box, name);
    li.appendChild(label);
    list.appendChild(li);
  }
}

async function saveProject() {
  const name = $("project-name").value.trim();
  if (!name) {
    $("project-status").textContent = "Give the project a name.";
    return;
  }
  const tools = $("project-tools-some").checked
    ? [...$("project-tool-list").querySelectorAll("input:checked")].map((b) => b.value)
    : null;
  const body = { name, instructions: $("project-instructions").value, tools };
  const editing = state.editingProject;
  let saved;
  try {
    saved = editing
      ? await api(`/api/chat/projects/${editing.id}`, { method: "PATCH", body })
      : await api("/api/chat/projects", { method: "POST", body });
  } catch (err) {
    $("project-status").textContent = err.message;
    return;
  }
  $("project-panel").hidden = true;
  await loadConversations();
  if (!editing) newChatIn(saved.id);
  else projectChanged();
  status(editing ? `Project ${saved.name} saved.` : `Project ${saved.name} created: chats you start now belong to it.`);
}

async function deleteProject() {
  const project = state.editingProject;
  if (!project) return;
  const count = project.conversations || 0;
  const kept = count ? ` Its ${count} conversation${count === 1 ? "" : "s"} will be kept, outside any project.` : "";
  if (!confirm(`Delete project "${project.name}"?${kept}`)) return;
  try {
    await api(`/api/chat/projects/${project.id}`, { method: "DELETE" });
  } catch (err) {
    $("project-status").textContent = err.message;
    return;
  }
  $("project-panel").hidden = true;
  if (state.projectId === project.id) state.projectId = "";
  if (state.conversation && state.conversation.project_id === project.id) state.conversation.project_id = "";
  await loadConversations();
  projectChanged();
  status(`Project ${project.name} deleted.`);
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
  state.projectId = "";
  projectChanged();
  document.body.classList.remove("side-open");
  $("chat-title").textContent = "New chat";
  $("instructions").value = "";
  $("effort").value = "";
  state.enabled = new Set();
  renderTools();
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
  $("effort").value = data.reasoning_effort || "";
  state.enabled = new Set(data.tools || []);
  state.projectId = data.project_id || "";
  projectChanged();
  document.body.classList.remove("side-open");
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
  if (m.role === "assistant") {
    const reasoning = reasoningElement();
    reasoning.hidden = !m.reasoning;
    reasoning.querySelector(".reasoning-text").textContent = m.reasoning || "";
    const rounds = document.createElement("div");
    rounds.className = "tool-rounds";
    for (const round of m.tool_calls || []) rounds.appendChild(roundElement(round));
    el.append(reasoning, rounds);
  }
  const body = document.createElement("div");
  body.className = "body";
  el.appendChild(body);
  if (m.role === "user") {
    body.textContent = m.content;
    if ((m.attachments || []).length) el.appendChild(imagesElement(m.attachments));
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

function reasoningElement() {
  const details = document.createElement("details");
  details.className = "reasoning";
  const summary = document.createElement("summary");
  summary.textContent = "Reasoning";
  const text = document.createElement("div");
  text.className = "reasoning-text";
  details.append(summary, text);
  return details;
}

function imagesElement(images) {
  const box = document.createElement("div");
  box.className = "msg-images";
  for (const image of images) {
    if (!IMAGE_TYPES.includes(image.media_type)) continue;
    const img = document.createElement("img");
    img.alt = image.name || "image";
    img.title = image.name || "";
    // stored once and served by irisgate; images kept before that are inline base64
    img.src = image.url || `data:${image.media_type};base64,${image.data}`;
    box.appendChild(img);
  }
  return box;
}

// One round of tool calls: the text the model wrote first, then each call (collapsed).
function roundElement(round) {
  const box = document.createElement("div");
  box.className = "tool-round";
  if (round.text) {
    const text = document.createElement("div");
    text.className = "round-text";
    text.innerHTML = markdown(round.text);
    box.appendChild(text);
  }
  for (const call of round.calls) box.appendChild(callElement(call));
  return box;
}

function callElement(call) {
  const details = document.createElement("details");
  details.className = "tool-call";
  details.dataset.tool = call.name;
  const summary = document.createElement("summary");
  details.appendChild(summary);
  const input = document.createElement("pre");
  input.className = "tool-input";
  input.textContent = JSON.stringify(call.arguments, null, 2);
  const output = document.createElement("pre");
  output.className = "tool-output";
  const inputLabel = document.createElement("div");
  inputLabel.className = "tool-label";
  inputLabel.textContent = "Input";
  const outputLabel = document.createElement("div");
  outputLabel.className = "tool-label";
  outputLabel.textContent = "Output";
  details.append(inputLabel, input, outputLabel, output);
  showCall(details, call);
  return details;
}

function showCall(details, call) {
  const done = call.output !== undefined;
  const stopped = call.output === STOPPED_CALL;
  details.dataset.state = !done ? "running" : stopped ? "stopped" : call.is_error ? "error" : "done";
  const what = !done ? "running…" : stopped ? "stopped" : call.is_error ? "failed" : "done";
  details.querySelector("summary").textContent = `Tool ${call.name} · ${what}`;
  details.querySelector(".tool-output").textContent = done ? call.output : "";
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

// --- tools ------------------------------------------------------------------------------

async function loadTools() {
  try {
    state.tools = (await api("/api/chat/tools")).tools;
  } catch (err) {
    state.tools = [];
    status(`Tools are not available: ${err.message}`);
  }
  renderTools();
  document.body.dataset.tools = "ready";
}

function renderTools() {
  const list = $("tool-list");
  list.replaceChildren();
  const tools = state.tools.filter((t) => projectAllows(t.name));
  if (!tools.length) {
    const li = document.createElement("li");
    li.className = "tool-none";
    li.textContent = state.tools.length
      ? `Project ${currentProject().name} allows no connector tools.`
      : "No connector tools are granted to you.";
    list.appendChild(li);
  }
  for (const tool of tools) {
    const li = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = tool.name;
    box.checked = state.enabled.has(tool.name);
    box.addEventListener("change", () => switchTool(tool.name, box.checked));
    const name = document.createElement("span");
    name.className = "tool-name";
    name.textContent = tool.title ? `${tool.name} (${tool.title})` : tool.name;
    const description = document.createElement("span");
    description.className = "tool-description";
    description.textContent = tool.description;
    label.append(box, name, description);
    li.appendChild(label);
    list.appendChild(li);
  }
  showToolCount();
}

function showToolCount() {
  const on = offeredTools().length;
  $("tools-toggle").textContent = on ? `Tools (${on})` : "Tools";
}

// The tools to offer the model: granted, switched on in this conversation and allowed by
// its project.
function offeredTools() {
  return state.tools.filter((t) => state.enabled.has(t.name) && projectAllows(t.name));
}

async function switchTool(name, on) {
  if (on) state.enabled.add(name);
  else state.enabled.delete(name);
  showToolCount();
  if (!state.conversation) return; // kept with the conversation when it is created
  try {
    state.conversation = await api(`/api/chat/conversations/${state.conversation.id}`, {
      method: "PATCH",
      body: { tools: [...state.enabled] },
    });
  } catch (err) {
    status(err.message);
  }
}

async function saveEffort() {
  if (!state.conversation) return;
  try {
    state.conversation = await api(`/api/chat/conversations/${state.conversation.id}`, {
      method: "PATCH",
      body: { reasoning_effort: $("effort").value },
    });
  } catch (err) {
    status(err.message);
  }
}

// Runs one call the model made; fills call.output and call.is_error.
async function runTool(call, offered, problem, signal) {
  if (problem) {
    call.output = problem;
    call.is_error = true;
    return;
  }
  if (!offered.some((t) => t.name === call.name)) {
    call.output = `tool ${call.name} is not available in this conversation`;
    call.is_error = true;
    return;
  }
  status(`Running tool ${call.name}…`);
  const resp = await fetch(`/api/chat/conversations/${state.conversation.id}/tools/call`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name: call.name, arguments: call.arguments }),
    signal,
  });
  const data = await resp.json().catch(() => ({}));
  if (resp.ok) {
    call.output = data.output;
    call.is_error = Boolean(data.is_error);
  } else {
    call.output = `refused: ${data.error || `HTTP ${resp.status}`}`;
    call.is_error = true;
  }
}

// --- turns ------------------------------------------------------------------------------

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

// One model round: streams the answer into `view`, folding it into `round`.
async function modelRound(request, view, signal, round) {
  const resp = await fetch(`/api/chat/conversations/${state.conversation.id}/round`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
    signal,
  });
  round.requestId = resp.headers.get("x-irisgate-request-id") || "";
  if (!resp.ok) {
    round.error = await errorText(resp);
    return round;
  }
  let frame = 0;
  const paint = () => {
    frame = 0;
    view.paint(round);
  };
  try {
    await readEvents(resp, (ev) => {
      foldEvent(ev, round);
      if (!frame) frame = requestAnimationFrame(paint);
    });
  } finally {
    if (frame) cancelAnimationFrame(frame);
    view.paint(round);
  }
  if (!round.outcome && !round.error) round.error = "the answer ended before the model finished";
  return round;
}

// The streaming assistant message and what it shows while the turn runs.
function pendingView(pending) {
  const el = messageElement(pending);
  el.classList.add("streaming");
  const body = el.querySelector(".body");
  const reasoning = el.querySelector(".reasoning");
  const rounds = el.querySelector(".tool-rounds");
  let earlier = "";
  return {
    el,
    paint(round) {
      const thought = earlier + round.reasoning;
      reasoning.hidden = !thought;
      reasoning.querySelector(".reasoning-text").textContent = thought;
      body.innerHTML = markdown(round.text);
      $("messages").scrollTop = $("messages").scrollHeight;
    },
    // the round asked for tools: its text moves into the round block
    startRound(round, step) {
      earlier += round.reasoning ? `${round.reasoning}\n\n` : "";
      body.innerHTML = "";
      const box = roundElement({ text: step.text, calls: [] });
      rounds.appendChild(box);
      return box;
    },
    addCall(box, call) {
      const details = callElement(call);
      box.appendChild(details);
      return details;
    },
  };
}

async function runTurn() {
  const model = modelById($("model-select").value);
  if (!model) {
    status("No model selected.");
    return;
  }
  await state.toolsLoaded;
  const effort = model.reasoning ? $("effort").value : "";
  const offered = offeredTools();
  const byWire = new Map(offered.map((t) => [wireName(t.name), t.name]));
  const pending = { role: "assistant", content: "", model: model.id, outcome: "", tool_calls: [] };
  const view = pendingView(pending);
  $("messages").appendChild(view.el);
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  let outcome = "";
  let error = "";
  let requestId = "";
  let reasoning = "";
  let text = "";
  let round = null; // the model round streaming now (null while tools run)
  try {
    for (let n = 1; ; n++) {
      status(n === 1 ? `Asking ${model.model}…` : `Asking ${model.model} (round ${n})…`);
      const request = {
        model: model.id,
        effort,
        tools: offered.map((t) => ({ name: t.name, description: t.description || t.name, input_schema: t.input_schema })),
        pending: pending.tool_calls,
      };
      round = newRound();
      await modelRound(request, view, controller.signal, round);
      requestId = round.requestId || requestId;
      reasoning += round.reasoning ? (reasoning ? "\n\n" : "") + round.reasoning : "";
      text = round.text;
      if (round.error) {
        error = round.error;
        break;
      }
      const { calls, replay } = finishRound(round);
      if (!calls.length) {
        outcome = round.outcome;
        break;
      }
      const step = { text: round.text, calls: [], replay };
      pending.tool_calls.push(step);
      text = "";
      const box = view.startRound(round, step);
      round = null;
      const limit = n >= MAX_ROUNDS;
      for (const c of calls) {
        const call = { id: c.id, name: byWire.get(c.wire) || c.wire, arguments: c.arguments };
        step.calls.push(call);
        const details = view.addCall(box, call);
        if (limit) {
          call.output = `not run: the chat stops after ${MAX_ROUNDS} rounds of tool calls`;
          call.is_error = true;
        } else {
          try {
            await runTool(call, offered, c.problem, controller.signal);
          } catch (err) {
            call.output = controller.signal.aborted ? STOPPED_CALL : `failed: ${err.message}`;
            call.is_error = true;
            showCall(details, call);
            throw err;
          }
        }
        showCall(details, call);
      }
      if (limit) {
        outcome = "truncated";
        text = `Stopped after ${MAX_ROUNDS} rounds of tool calls: the model kept asking for tools. Send a message to let it continue.`;
        break;
      }
    }
  } catch (err) {
    if (round) {
      // stopped (or failed) while the answer streamed: keep what came
      text = round.text;
      reasoning += round.reasoning ? (reasoning ? "\n\n" : "") + round.reasoning : "";
    }
    if (controller.signal.aborted) outcome = "cancelled";
    else error = `Error: ${err.message}`;
  }
  state.controller = null;
  setBusy(false);
  const rounds = pending.tool_calls.map((r) => ({
    text: r.text,
    calls: r.calls.map((c) => ({
      id: c.id,
      name: c.name,
      arguments: c.arguments,
      output: c.output ?? STOPPED_CALL,
      is_error: c.output === undefined ? true : Boolean(c.is_error),
    })),
  }));
  const saved = error
    ? { content: text ? `${text}\n\n${error}` : error, outcome: "error" }
    : { content: text, outcome: outcome || "completed" };
  Object.assign(saved, { role: "assistant", model: model.id, request_id: requestId, reasoning, tool_calls: rounds });
  status(
    error
      ? "The turn failed."
      : outcome === "cancelled"
        ? "Stopped."
        : outcome === "truncated" && rounds.length >= MAX_ROUNDS
          ? `Stopped after ${MAX_ROUNDS} rounds of tool calls.`
          : "",
  );
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
  view.el.replaceWith(messageElement(state.messages[state.messages.length - 1]));
  markRetry();
  loadConversations();
}

// --- attachments: text files inlined in the message, images as image parts -----------

// Stores each attached image of the message in the conversation (irisgate checks its
// bytes' type and its size); their references go with the message.
async function uploadImages(conversationId) {
  const refs = [];
  for (const image of state.images) {
    const resp = await fetch(
      `/api/chat/conversations/${conversationId}/attachments?name=${encodeURIComponent(image.name)}`,
      { method: "POST", headers: { "Content-Type": image.media_type }, body: image.file },
    );
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(`${image.name} was not attached: ${data.error || `HTTP ${resp.status}`}`);
    refs.push({ id: data.id });
  }
  return refs;
}

async function attachImage(file) {
  const model = modelById($("model-select").value);
  if (!IMAGE_TYPES.includes(file.type)) {
    status(`${file.name}: only PNG, JPEG, GIF and WebP images can be attached.`);
  } else if (!model?.images) {
    status(`${model ? model.model : "This model"} does not accept images: pick one that does to attach ${file.name}.`);
  } else if (file.size > MAX_IMAGE_BYTES) {
    status(`${file.name} is larger than ${MAX_IMAGE_BYTES / 1_000_000} MB: attach a smaller image.`);
  } else if (state.images.length >= MAX_IMAGES) {
    status(`At most ${MAX_IMAGES} images per message: ${file.name} was not attached.`);
  } else {
    state.images.push({ name: file.name, media_type: file.type, file, preview: URL.createObjectURL(file) });
  }
}

async function attach(fileList) {
  for (const file of fileList) {
    if (file.type.startsWith("image/")) {
      await attachImage(file);
      continue;
    }
    if (file.size > MAX_FILE_BYTES) {
      status(`${file.name} is larger than ${MAX_FILE_BYTES / 1000} kB: attach a smaller text file.`);
      continue;
    }
    const text = await file.text();
    if (text.includes("\u0000") || text.includes("\uFFFD")) {
      status(`${file.name} is not a text file: only text files and images can be attached.`);
      continue;
    }
    state.files.push({ name: file.name, text });
  }
  $("attach").value = "";
  showAttachments();
}

function attachmentChip(name, onRemove, image) {
  const li = document.createElement("li");
  if (image) {
    const img = document.createElement("img");
    img.alt = "";
    img.src = image.preview;
    li.appendChild(img);
  }
  li.append(name);
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "✕";
  remove.setAttribute("aria-label", `Remove ${name}`);
  remove.addEventListener("click", () => {
    onRemove();
    showAttachments();
  });
  li.appendChild(remove);
  return li;
}

function showAttachments() {
  const list = $("attachments");
  list.replaceChildren();
  state.images.forEach((image, i) => {
    const remove = () => URL.revokeObjectURL(state.images.splice(i, 1)[0].preview);
    list.appendChild(attachmentChip(image.name, remove, image));
  });
  state.files.forEach((f, i) => {
    list.appendChild(attachmentChip(f.name, () => state.files.splice(i, 1)));
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
  if ((!typed && !state.files.length && !state.images.length) || !model) return;
  if (state.images.length && !modelById(model)?.images) {
    status(`${modelById(model)?.model || model} does not accept images: remove them or pick another model.`);
    return;
  }
  const text = withAttachments(typed);
  try {
    if (!state.conversation) {
      state.conversation = await api("/api/chat/conversations", {
        method: "POST",
        body: {
          title: (typed || (state.images[0] || state.files[0]).name).slice(0, 80),
          model,
          instructions: $("instructions").value,
          tools: [...state.enabled],
          reasoning_effort: $("effort").value,
          project_id: state.projectId,
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
    const attachments = await uploadImages(state.conversation.id);
    const stored = await api(`/api/chat/conversations/${state.conversation.id}/messages`, {
      method: "POST",
      body: { role: "user", content: text, attachments },
    });
    state.messages.push(stored);
  } catch (err) {
    status(err.message);
    loadConversations();
    return;
  }
  $("prompt").value = "";
  state.files = [];
  for (const image of state.images) URL.revokeObjectURL(image.preview);
  state.images = [];
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

function togglePanel(button, panel) {
  panel.hidden = !panel.hidden;
  button.setAttribute("aria-expanded", String(!panel.hidden));
}

async function start() {
  $("composer").addEventListener("submit", send);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) send(e);
  });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("new-chat").addEventListener("click", newChat);
  $("model-search").addEventListener("input", fillModels);
  $("model-select").addEventListener("change", updateComposer);
  $("effort").addEventListener("change", saveEffort);
  $("attach").addEventListener("change", () => attach($("attach").files));
  let timer = 0;
  $("conv-search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => loadConversations().catch((err) => status(err.message)), 200);
  });
  $("instructions-toggle").addEventListener("click", () =>
    togglePanel($("instructions-toggle"), $("instructions-panel")),
  );
  $("tools-toggle").addEventListener("click", () => togglePanel($("tools-toggle"), $("tools-panel")));
  $("instructions-save").addEventListener("click", saveInstructions);
  $("new-project").addEventListener("click", () => editProject(null));
  $("project-save").addEventListener("click", saveProject);
  $("project-cancel").addEventListener("click", () => {
    $("project-panel").hidden = true;
  });
  $("project-delete").addEventListener("click", deleteProject);
  $("project-select").addEventListener("change", () => moveToProject($("project-select").value));
  $("side-toggle").addEventListener("click", () => {
    const open = document.body.classList.toggle("side-open");
    $("side-toggle").setAttribute("aria-expanded", String(open));
  });
  state.toolsLoaded = loadTools(); // connectors may answer slowly: do not hold the app up
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
