// Page modules of the dashboard. Every number shown is fetched from a documented /api/
// endpoint; text goes in through textContent (never innerHTML), so nothing is interpreted.
import { el } from "/ui/static/shell.js";
import { barChart, lineChart, stackedBars } from "/ui/static/charts.js";

export async function api(url, options = {}) {
  const response = await fetch(url, { headers: { accept: "application/json" }, ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

// A getter whose answers count only while no newer call was made: a slow answer to an old
// filter must not overwrite the table of a newer one. Stale answers resolve to null.
function latest() {
  let seq = 0;
  return async (url) => {
    const mine = ++seq;
    try {
      const data = await api(url);
      return mine === seq ? data : null;
    } catch (error) {
      if (mine !== seq) return null;
      throw error;
    }
  };
}

const NUM = new Intl.NumberFormat("en-US");
export const num = (v) => (v === null || v === undefined ? "–" : NUM.format(v));
export function compact(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "B";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return NUM.format(Math.round(v));
}
export function usd(nanodollars, redacted = false) {
  if (redacted) return "redacted";
  if (nanodollars === null || nanodollars === undefined) return "–";
  const dollars = nanodollars / 1e9;
  if (dollars !== 0 && Math.abs(dollars) < 0.01) {
    // two significant digits of small amounts, never exponent notation (nanodollar floor)
    return "$" + dollars.toFixed(Math.min(9, 1 - Math.floor(Math.log10(Math.abs(dollars)))));
  }
  return "$" + dollars.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}
const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
const short = (iso) => new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
const setText = (id, text) => { document.getElementById(id).textContent = text; };

function showError(container, error) {
  container.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
}

// Filters form <-> URL query (so every filtered view has a stable URL) <-> API query.
export function filterForm(form, onChange) {
  const params = new URLSearchParams(location.search);
  for (const input of form.elements) if (input.name && params.has(input.name)) input.value = params.get(input.name);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const input of form.elements) if (input.name && input.value) next.set(input.name, input.value);
    history.replaceState(null, "", next.size ? "?" + next : location.pathname);
    onChange();
  });
  return () => {
    const query = new URLSearchParams();
    for (const input of form.elements) {
      if (!input.name || !input.value) continue;
      if (input.name === "to") {
        const day = new Date(input.value + "T00:00:00Z");
        day.setUTCDate(day.getUTCDate() + 1);
        query.set("until", day.toISOString().slice(0, 10));
      } else query.set(input.name, input.value.trim());
    }
    return query;
  };
}

// ---- My Dashboard -----------------------------------------------------------------------
export function dashboardPage(login) {
  const query = filterForm(document.getElementById("filters"), load);
  const timeline = document.getElementById("timeline");
  let last = null;
  const get = latest();
  async function load() {
    let data;
    try {
      data = await get(`/api/dashboard/${encodeURIComponent(login)}?${query()}`);
    } catch (error) { showError(timeline, error); return; }
    if (!data) return;
    const key = JSON.stringify(data);
    if (key === last) return;
    last = key;
    setText("stat-requests", num(data.totals.requests));
    setText("stat-tokens", num(data.totals.total_tokens));
    setText("stat-sessions", num(data.active_sessions));
    setText("stat-sessions-hint", `with a request in the last ${data.active_session_minutes} minutes`);
    barChart(document.getElementById("chart-models"), data.models.map((m) => m.model),
      data.models.map((m) => m.total_tokens), compact);
    timeline.replaceChildren(...data.recent.map((r) => el("li", { class: r.status >= 400 ? "failed" : "" },
      el("time", { datetime: r.started_at, text: when(r.started_at) }),
      el("span", { class: "what" }, el("strong", { text: r.model || "(no model)" }), ` · ${r.provider || "–"}`),
      el("span", { class: "meta", text: `${num(r.total_tokens)} tokens · ${usd(r.cost_nanodollars)} · ${Math.round(r.duration_ms)} ms · HTTP ${r.status}` }),
    )));
    if (!data.recent.length) timeline.replaceChildren(el("li", { class: "empty", text: "No requests yet." }));
  }
  load();
  setInterval(() => { if (!document.hidden) load(); }, 5000);
}

// The admin's User Dashboard: pick a login (suggested from the last 30 days' users) and
// see their dashboard at /ui/dashboard/<login>.
export async function userPicker() {
  const form = document.getElementById("user-picker");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const login = form.elements.login.value.trim();
    if (login) location.assign(`/ui/dashboard/${encodeURIComponent(login)}`);
  });
  try {
    const data = await api("/api/usage/users?sort=login_name&order=asc&per_page=500");
    document.getElementById("user-choices").replaceChildren(...data.users.map((u) => el("option", { value: u.login_name })));
  } catch { /* suggestions only: the form works without them */ }
}

// ---- Models -----------------------------------------------------------------------------
const PRICE_LINES = [
  ["input_cache_read", "Cache read"],
  ["input_cache_write", "Cache write (5 min)"],
  ["input_cache_write_1h", "Cache write (1 h)"],
  ["image_input", "Image input"],
  ["image_output", "Image output"],
];

// Tooltip lines for one model; other features (quota buckets) append their own lines here.
export const tooltipSources = [
  (model) => {
    const p = model.prices_per_million;
    if (!p) return [["Pricing", "not priced"]];
    const lines = PRICE_LINES.filter(([k]) => k in p).map(([k, label]) => [label, `$${p[k]} / M`]);
    if ("output" in p) lines.push(["Reasoning", `$${p.output} / M (billed as output)`]);
    if ("web_search_per_thousand" in p) lines.push(["Web search", `$${p.web_search_per_thousand} / 1k`]);
    return lines;
  },
];

export async function modelsPage() {
  const root = document.getElementById("model-groups");
  let data;
  try { data = await api("/api/models"); } catch (error) { showError(root, error); return; }
  if (!data.providers.length) {
    root.replaceChildren(el("p", { class: "empty", text: "No providers are configured." }));
    return;
  }
  root.replaceChildren(...data.providers.map((group) => el("section", { class: "panel" },
    el("h2", {}, group.name, group.enabled ? null : el("span", { class: "badge warn", text: group.unavailable_reason || "disabled" })),
    group.description ? el("p", { class: "hint", text: group.description }) : null,
    el("div", { class: "table-wrap" }, el("table", { class: "data models" },
      el("thead", {}, el("tr", {}, ...["Model", "Provider", "API formats", "Input $/M", "Output $/M", "", ""].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...group.models.flatMap((model) => modelRow(group, model))),
    )),
  )));
}

function modelRow(group, model) {
  const p = model.prices_per_million;
  const lines = tooltipSources.flatMap((source) => source(model, group));
  const tipId = `tip-${group.provider}-${model.id}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const result = el("td", { class: "test-result", "aria-live": "polite" });
  const testable = model.granted && group.enabled && model.test !== null;
  const button = el("button", { type: "button", class: "test", disabled: !testable,
    title: testable ? `Send a minimal request to ${model.id}` : "Not granted to you, or the provider is unavailable",
    onclick: () => testModel(model, button, result) }, "Test");
  const row = el("tr", { "data-model": model.id },
    el("td", {}, el("code", { text: model.id })),
    el("td", { text: group.provider }),
    el("td", {}, ...model.formats.map((f) => el("span", { class: "chip", text: f }))),
    el("td", { class: "num", text: p && "input" in p ? `$${p.input}` : "–" }),
    el("td", { class: "num", text: p && "output" in p ? `$${p.output}` : "–" }),
    el("td", {}, el("span", { class: "tip" },
      el("button", { type: "button", class: "ghost info", "aria-describedby": tipId, "aria-label": `More pricing for ${model.id}`, text: "i" }),
      el("span", { role: "tooltip", id: tipId, class: "tip-body" },
        el("dl", {}, ...lines.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]))))),
    el("td", {}, button),
  );
  result.setAttribute("colspan", "7");
  return [row, el("tr", { class: "result-row" }, result)];
}

// The answer's text, per API format (the request itself comes from /api/models: `model.test`).
const geminiText = (b) => b.candidates?.[0]?.content?.parts?.map((p) => (p.thought ? "" : p.text || "")).join("");
const messagesText = (b) => b.content?.map((c) => c.text || "").join("");
const ANSWERS = {
  openai_chat: (b) => b.choices?.[0]?.message?.content,
  openai_responses: (b) => b.output_text || b.output?.flatMap((o) => o.content || []).map((c) => c.text || "").join(""),
  anthropic_messages: messagesText,
  gemini_generate_content: geminiText,
  google_generate_content: geminiText,
  google_raw_predict: messagesText,
  bedrock_model_invoke: messagesText,
  bedrock_converse: (b) => b.output?.message?.content?.map((c) => c.text || "").join(""),
};

// A minimal request, sent by the browser itself so irisgate sees the viewer.
async function testModel(model, button, cell) {
  const { format, path, body } = model.test;
  const answerOf = ANSWERS[format] || (() => "");
  button.disabled = true;
  cell.replaceChildren(el("span", { class: "hint", text: "Testing…" }));
  const started = performance.now();
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", "anthropic-version": "2023-06-01" },
      body: JSON.stringify(body),
    });
    const latency = Math.round(performance.now() - started);
    const reply = await response.json().catch(() => ({}));
    const id = response.headers.get("x-irisgate-request-id");
    if (!response.ok) {
      const message = reply.error?.message || reply.message || reply.error || `HTTP ${response.status}`;
      cell.replaceChildren(el("span", { class: "error test-error", text: `Error (HTTP ${response.status}, ${latency} ms): ${message}` }));
      return;
    }
    const answer = el("span", { class: "test-answer", text: answerOf(reply) || "(empty answer)" });
    const cost = el("span", { class: "test-cost", text: "cost: waiting for the record…" });
    cell.replaceChildren(el("span", { class: "ok", text: "OK" }), " ", answer,
      el("span", { class: "meta test-latency", text: ` · ${latency} ms · ` }), cost);
    cost.textContent = "cost: " + await costOf(id);
  } catch (error) {
    cell.replaceChildren(el("span", { class: "error test-error", text: `Error: ${error.message}` }));
  } finally {
    button.disabled = false;
  }
}

async function costOf(requestId) {
  for (let i = 0; i < 40; i++) {
    try {
      const record = await api(`/api/requests/${encodeURIComponent(requestId)}`);
      return record.cost_nanodollars === null ? "not priced" : usd(record.cost_nanodollars);
    } catch (error) {
      if (error.status !== 404) return error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return "not recorded yet";
}

// ---- Usage Overview -----------------------------------------------------------------------
// The token-kind columns of a table that the viewer chose (checkboxes with data-col), kept
// in this browser; returns the function that shows and hides the cells after a redraw.
function tokenColumns(table) {
  const boxes = [...document.querySelectorAll("#token-columns [data-col]")];
  const KEY = "irisgate-usage-columns";
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(KEY) || "null"); } catch { saved = null; }
  if (Array.isArray(saved)) for (const box of boxes) box.checked = saved.includes(box.dataset.col);
  const apply = () => {
    const shown = new Set(boxes.filter((b) => b.checked).map((b) => b.dataset.col));
    for (const cell of table.querySelectorAll("[data-col]")) cell.hidden = !shown.has(cell.dataset.col);
  };
  for (const box of boxes) {
    box.addEventListener("change", () => {
      localStorage.setItem(KEY, JSON.stringify(boxes.filter((b) => b.checked).map((b) => b.dataset.col)));
      apply();
    });
  }
  apply();
  return apply;
}

// The Usage Overview's agent list and the indexed headers this viewer may filter on.
async function facetChoices(form) {
  let choices;
  try { choices = await api("/api/usage/filters"); } catch { return; }
  document.getElementById("agent-choices").replaceChildren(...choices.agents.map((a) => el("option", { value: a })));
  if (!choices.headers.length) return;
  const select = form.elements.header;
  select.append(...choices.headers.map((h) => el("option", { value: h.name, text: h.redact_values ? `${h.name} (present)` : h.name })));
  const redacted = new Set(choices.headers.filter((h) => h.redact_values).map((h) => h.name));
  const value = form.elements.header_value;
  const sync = () => {
    value.disabled = !select.value || redacted.has(select.value);
    if (value.disabled) value.value = "";
  };
  select.addEventListener("change", sync);
  document.getElementById("header-filter").hidden = false;
  return sync;
}

export async function usagePage(isAdmin) {
  const form = document.getElementById("filters");
  const syncHeader = await facetChoices(form);
  const query = filterForm(form, () => { state.page = 1; load(); });
  syncHeader?.();
  const state = { sort: "total_tokens", order: "desc", page: 1, per_page: 10, metric: "tokens", summary: null };
  const table = document.getElementById("users-table");
  const csv = document.getElementById("download-csv");
  const columns = tokenColumns(table);

  for (const button of table.querySelectorAll("[data-sort]")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      state.order = state.sort === key ? (state.order === "desc" ? "asc" : "desc") : (key === "login_name" ? "asc" : "desc");
      state.sort = key;
      state.page = 1;
      loadUsers();
    });
  }
  for (const button of document.querySelectorAll("#users-pager [data-page]")) {
    button.addEventListener("click", () => { state.page += button.dataset.page === "next" ? 1 : -1; loadUsers(); });
  }
  for (const button of document.querySelectorAll("[data-metric]")) {
    button.addEventListener("click", () => {
      state.metric = button.dataset.metric;
      for (const b of document.querySelectorAll("[data-metric]")) b.setAttribute("aria-pressed", String(b === button));
      drawDaily();
    });
  }

  function drawDaily() {
    const s = state.summary;
    if (!s) return;
    const cost = state.metric === "cost";
    setText("metric-name", cost ? "estimated cost" : "tokens");
    const chart = document.getElementById("chart-daily");
    if (cost && s.totals.cost_redacted) {
      chart.__render = null;
      chart.replaceChildren(el("p", { class: "empty", text: "Cost is redacted: it includes other users' requests. Filter by your own login to see yours." }));
      return;
    }
    lineChart(chart, s.daily.map((d) => d.day),
      [{ label: cost ? "Cost" : "Tokens", values: s.daily.map((d) => (cost ? d.cost_nanodollars / 1e9 : d.total_tokens)) }],
      cost ? (v) => "$" + v.toFixed(2) : compact);
  }

  const getSummary = latest(), getUsers = latest();
  async function loadSummary() {
    const s = await getSummary(`/api/usage/summary?${query()}`);
    if (!s) return;
    state.summary = s;
    setText("stat-users", num(s.totals.active_users));
    setText("stat-tokens", num(s.totals.total_tokens));
    setText("stat-cost", usd(s.totals.cost_nanodollars, s.totals.cost_redacted));
    setText("cost-hint", s.totals.cost_redacted ? "Only admins see cost that includes other users." : `${num(s.totals.unpriced_requests)} unpriced requests`);
    const breakdown = [["Input", s.totals.input_tokens], ["Output", s.totals.output_tokens],
      ["Cached", s.totals.cache_read_tokens], ["Reasoning", s.totals.reasoning_tokens]];
    document.getElementById("token-breakdown").replaceChildren(...breakdown.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: num(v) })]));
    drawDaily();
  }

  async function loadUsers() {
    const q = query();
    for (const k of ["sort", "order", "page", "per_page"]) q.set(k, state[k]);
    const body = table.querySelector("tbody");
    let data;
    try { data = await getUsers(`/api/usage/users?${q}`); } catch (error) { showError(body, error); return; }
    if (!data) return;
    for (const button of table.querySelectorAll("[data-sort]")) {
      const th = button.parentElement;
      th.setAttribute("aria-sort", button.dataset.sort === data.sort ? (data.order === "asc" ? "ascending" : "descending") : "none");
    }
    body.replaceChildren(...data.users.map((u) => el("tr", {},
      el("td", { text: u.rank }),
      el("td", {}, isAdmin ? el("a", { href: `/ui/dashboard/${encodeURIComponent(u.login_name)}`, text: u.login_name }) : u.login_name),
      ...["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"].map((k) =>
        el("td", { class: "num", "data-col": k, text: num(k === "cache_write_tokens" ? u.cache_write_5m_tokens + u.cache_write_1h_tokens : u[k]) })),
      el("td", { class: "num", text: num(u.total_tokens) }),
      el("td", { class: "num", text: usd(u.avg_cost_per_mtok_nanodollars, u.cost_redacted) }),
    )));
    columns();
    if (!data.users.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "empty", text: "No usage in this range." })));
    const pages = Math.max(1, Math.ceil(data.total / data.per_page));
    setText("page-info", `Page ${data.page} of ${pages} · ${num(data.total)} users`);
    document.querySelector("#users-pager [data-page=prev]").disabled = data.page <= 1;
    document.querySelector("#users-pager [data-page=next]").disabled = data.page >= pages;
  }

  function load() {
    if (csv) csv.href = `/api/usage/export.csv?${query()}`;
    loadSummary().catch((error) => showError(document.getElementById("chart-daily"), error));
    loadUsers();
  }
  load();
}

// ---- Admin: activity pages --------------------------------------------------------------
const GROUP_LABEL = { day: "Daily active users", week: "Weekly active users", month: "Monthly active users", "4of7": "Users active on 4 of 7 days" };

export function userActivityPage() {
  const query = filterForm(document.getElementById("filters"), load);
  const get = latest();
  const state = { group: new URLSearchParams(location.search).get("group") || "day" };
  const buttons = [...document.querySelectorAll("[data-group]")];
  const press = () => { for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.group === state.group)); };
  for (const button of buttons) {
    button.addEventListener("click", () => {
      state.group = button.dataset.group;
      const params = new URLSearchParams(location.search);
      params.set("group", state.group);
      history.replaceState(null, "", "?" + params);
      press();
      load();
    });
  }
  press();
  async function load() {
    const chart = document.getElementById("chart-active");
    const grouped = document.getElementById("chart-grouped");
    let data;
    const q = query();
    q.set("group", state.group);
    try { data = await get(`/api/usage/active-users?${q}`); } catch (error) { showError(chart, error); return; }
    if (!data) return;
    const last = data.days[data.days.length - 1] || { daily: 0, weekly: 0, monthly: 0 };
    setText("stat-dau", num(last.daily));
    setText("stat-wau", num(last.weekly));
    setText("stat-mau", num(last.monthly));
    const any = data.days.some((d) => d.monthly > 0);
    lineChart(chart, any ? data.days.map((d) => d.day) : [], [
      { label: "Daily", values: data.days.map((d) => d.daily) },
      { label: "Weekly", values: data.days.map((d) => d.weekly) },
      { label: "Monthly", values: data.days.map((d) => d.monthly) },
    ], num, { integer: true });
    setText("group-title", GROUP_LABEL[data.group]);
    const periods = data.periods.some((p) => p.users > 0) ? data.periods : [];
    stackedBars(grouped, periods.map((p) => p.start), [{ label: GROUP_LABEL[data.group], values: periods.map((p) => p.users) }], num, { integer: true });
    const body = document.querySelector("#periods-table tbody");
    body.replaceChildren(...data.periods.map((p) => el("tr", { "data-start": p.start },
      el("td", { text: p.start }), el("td", { class: "num", text: num(p.users) }))));
  }
  load();
}

const PER_PAGE = 10;

export function activityPage(endpoint, key) {
  const query = filterForm(document.getElementById("filters"), () => { state.page = 1; load(); });
  const table = document.getElementById("activity-table");
  const state = { sort: "total_tokens", order: "desc", rows: [], page: 1, metric: "tokens", daily: null };
  const nameOf = (row) => (key === "models" ? row.model : row.agent);
  for (const button of table.querySelectorAll("[data-sort]")) {
    button.addEventListener("click", () => {
      const k = button.dataset.sort;
      state.order = state.sort === k && state.order === "desc" ? "asc" : k === "name" && state.sort !== k ? "asc" : "desc";
      state.sort = k;
      state.page = 1;
      render();
    });
  }
  for (const button of document.querySelectorAll("#activity-pager [data-page]")) {
    button.addEventListener("click", () => { state.page += button.dataset.page === "next" ? 1 : -1; render(); });
  }
  for (const button of document.querySelectorAll("[data-metric]")) {
    button.addEventListener("click", () => {
      state.metric = button.dataset.metric;
      for (const b of document.querySelectorAll("[data-metric]")) b.setAttribute("aria-pressed", String(b === button));
      drawStacked();
    });
  }
  function drawStacked() {
    const d = state.daily;
    if (!d) return;
    const cost = state.metric === "cost";
    setText("metric-name", cost ? "cost" : "tokens");
    const any = d.series.some((s) => s.tokens.some((v) => v > 0) || s.cost.some((v) => v > 0));
    stackedBars(document.getElementById("chart-stacked"), any ? d.days : [],
      d.series.map((s) => ({ label: s.name ?? "Other", values: cost ? s.cost.map((v) => v / 1e9) : s.tokens })),
      cost ? (v) => usd(v * 1e9) : compact);
  }
  function render() {
    const value = (row) => (state.sort === "name" ? nameOf(row) : row[state.sort] ?? -1);
    const rows = [...state.rows].sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0) * (state.order === "asc" ? 1 : -1));
    for (const button of table.querySelectorAll("[data-sort]")) {
      button.parentElement.setAttribute("aria-sort", button.dataset.sort === state.sort ? (state.order === "asc" ? "ascending" : "descending") : "none");
    }
    const pages = Math.max(1, Math.ceil(rows.length / PER_PAGE));
    state.page = Math.min(Math.max(1, state.page), pages);
    const shown = rows.slice((state.page - 1) * PER_PAGE, state.page * PER_PAGE);
    const body = table.querySelector("tbody");
    body.replaceChildren(...shown.map((r) => el("tr", {},
      el("td", {}, el("code", { text: nameOf(r) }), key === "models" ? el("span", { class: "hint", text: ` ${r.provider}` }) : null),
      ...["input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens", "total_tokens", "requests"].map((k) => el("td", { class: "num", text: num(r[k]) })),
      el("td", { class: "num", text: usd(r.avg_cost_per_mtok_nanodollars) }),
      el("td", { class: "num", text: usd(r.cost_nanodollars) }),
    )));
    if (!rows.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "empty", text: "No requests in this range." })));
    setText("page-info", `Page ${state.page} of ${pages} · ${num(rows.length)} ${key}`);
    document.querySelector("#activity-pager [data-page=prev]").disabled = state.page <= 1;
    document.querySelector("#activity-pager [data-page=next]").disabled = state.page >= pages;
  }
  const get = latest();
  async function load() {
    const chart = document.getElementById("chart-activity");
    let data;
    try { data = await get(`${endpoint}?${query()}`); } catch (error) { showError(chart, error); return; }
    if (!data) return;
    state.rows = data[key];
    state.daily = data.daily;
    barChart(chart, state.rows.map(nameOf), state.rows.map((r) => r.total_tokens), compact);
    drawStacked();
    render();
  }
  load();
}

// ---- Admin: session logs ----------------------------------------------------------------
export function sessionsPage() {
  const form = document.getElementById("session-filters");
  const state = { page: 1, per_page: 20 };
  const query = filterForm(form, () => { state.page = 1; load(); });
  for (const button of document.querySelectorAll("#sessions-pager [data-page]")) {
    button.addEventListener("click", () => { state.page += button.dataset.page === "next" ? 1 : -1; load(); });
  }
  const getSessions = latest(), getRequests = latest(), getCapture = latest();
  let kind = "";  // the kind of request a session's list shows ("" for every kind)
  async function load() {
    const q = query();
    const since = q.get("since"), until = q.get("until");
    kind = q.get("kind") || "";
    q.delete("since"); q.delete("until"); q.delete("kind");
    if (since) q.set("since", since + "T00:00:00Z");
    if (until) q.set("until", until + "T00:00:00Z");
    q.set("page", state.page); q.set("per_page", state.per_page);
    const body = document.querySelector("#sessions-table tbody");
    let data;
    try { data = await getSessions(`/api/sessions?${q}`); } catch (error) { showError(body, error); return; }
    if (!data) return;
    body.replaceChildren(...data.sessions.map((s) => el("tr", {},
      el("td", {}, el("button", { type: "button", class: "link", onclick: () => openSession(s), text: short(s.last_at) })),
      el("td", { text: s.login_name }), el("td", { text: s.agent || "–" }),
      el("td", { class: "num", text: num(s.requests) }), el("td", { class: "num", text: num(s.total_tokens) }),
      el("td", { class: "num", text: usd(s.cost_nanodollars) }),
    )));
    if (!data.sessions.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No sessions match." })));
    const pages = Math.max(1, Math.ceil(data.total / data.per_page));
    setText("page-info", `Page ${data.page} of ${pages} · ${num(data.total)} sessions`);
    document.querySelector("#sessions-pager [data-page=prev]").disabled = data.page <= 1;
    document.querySelector("#sessions-pager [data-page=next]").disabled = data.page >= pages;
  }
  async function openSession(session) {
    document.getElementById("session-detail").hidden = false;
    setText("session-name", session.session_id);
    const body = document.querySelector("#requests-table tbody");
    const q = new URLSearchParams({ user: session.login_name, session: session.session_id, limit: 200 });
    if (kind) q.set("kind", kind);
    let data;
    try { data = await getRequests(`/api/requests?${q}`); } catch (error) { showError(body, error); return; }
    if (!data) return;
    body.replaceChildren(...data.requests.map((r) => el("tr", {},
      el("td", {}, el("button", { type: "button", class: "link", onclick: () => openCapture(r.request_id), text: short(r.started_at) })),
      el("td", { text: r.kind }),
      el("td", { text: r.model }),
      el("td", {}, String(r.status), retried(r.attempts) ? el("span", { class: "badge warn retried", title: attemptsText(r.attempts), text: `${r.attempts.length} attempts` }) : null),
      el("td", { class: "num", text: num(r.total_tokens) }), el("td", { class: "num", text: usd(r.cost_nanodollars) }),
      el("td", { class: "num", text: `${Math.round(r.duration_ms)} ms` }),
    )));
    if (!data.requests.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "empty", text: `No ${kind} requests in this session.` })));
    document.getElementById("session-detail").scrollIntoView({ block: "nearest" });
  }
  async function openCapture(id) {
    const panel = document.getElementById("capture");
    panel.hidden = false;
    let r;
    try { r = await getCapture(`/api/requests/${encodeURIComponent(id)}`); } catch (error) { showError(panel, error); return; }
    if (!r) return;
    setText("capture-id", r.request_id);
    const facts = [["User", r.login_name], ["Kind", r.kind], ["Model", `${r.model} (${r.provider})`], ["Path", `${r.method} ${r.path}`],
      ["Status", r.status], ["Input tokens", num(r.input_tokens)], ["Output tokens", num(r.output_tokens)],
      ["Cached tokens", num(r.cache_read_tokens)], ["Reasoning tokens", num(r.reasoning_tokens)],
      ["Cost", usd(r.cost_nanodollars)], ["Duration", `${Math.round(r.duration_ms)} ms`],
      ["Time to first byte", r.ttfb_ms === null ? "–" : `${Math.round(r.ttfb_ms)} ms`],
      ["User agent", r.user_agent || "–"], ["Started", when(r.started_at)]];
    if (r.unit) facts.push(["Priced per", `${r.unit}: ${num(r.units)}`]);
    if (r.attempts && r.attempts.length) facts.push(["Upstream attempts", attemptsText(r.attempts)]);
    if (r.upstream_format) facts.push(["Translated", `${r.api_format} → ${r.upstream_format}`]);
    document.getElementById("capture-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
    setText("capture-tools", r.tool_calls ? `${r.tool_calls} tool call(s) in the answer (see the response body).` : "None.");
    const pretty = (text) => { try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text ?? "(not captured)"; } };
    setText("capture-req-headers", JSON.stringify(r.request_headers, null, 2));
    setText("capture-resp-headers", JSON.stringify(r.response_headers, null, 2));
    setText("capture-req-body", r.captured ? pretty(r.request_body) : "(not captured)");
    setText("capture-resp-body", r.captured ? pretty(r.response_body) : "(not captured)");
    document.getElementById("capture-upstream").hidden = !r.upstream_format;
    setText("capture-up-req-body", r.captured ? pretty(r.upstream_request_body) : "(not captured)");
    setText("capture-up-resp-body", r.captured ? pretty(r.upstream_response_body) : "(not captured)");
    panel.scrollIntoView({ block: "start" });
  }
  load();
}

// A request's upstream attempts (failover, several keys): one line each, never a key itself.
function retried(attempts) { return Boolean(attempts && attempts.length > 1); }
function attemptsText(attempts) {
  return attempts.map((a, i) => `${i + 1}. ${a.provider} key #${a.key}: ${a.status ? `HTTP ${a.status}` : "no answer"}${a.error ? ` (${a.error})` : ""}, ${Math.round(a.ms)} ms`).join("\n");
}

// ---- Admin: API docs --------------------------------------------------------------------
export async function apiDocsPage() {
  const root = document.getElementById("endpoints");
  let doc;
  try { doc = await api("/api/openapi.json"); } catch (error) { showError(root, error); return; }
  setText("api-intro", doc.info.description);
  const sections = [];
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(operations)) {
      sections.push(el("details", { class: "panel endpoint" },
        el("summary", {}, el("span", { class: `method ${method}`, text: method.toUpperCase() }), el("code", { text: path }), el("span", { class: "hint", text: ` ${op.summary}` })),
        ...op.description.split("\n\n").map((p) => el("p", { text: p })),
        op.parameters.length ? el("div", { class: "table-wrap" }, el("table", { class: "data" },
          el("thead", {}, el("tr", {}, el("th", { text: "Parameter" }), el("th", { text: "In" }), el("th", { text: "Description" }))),
          el("tbody", {}, ...op.parameters.map((p) => el("tr", {}, el("td", {}, el("code", { text: p.name })), el("td", { text: p.in }), el("td", { text: p.description || "" })))))) : null,
        op.requestBody ? el("p", {}, "Body: ", el("code", { text: op.requestBody.description })) : null,
      ));
    }
  }
  root.replaceChildren(...sections);
}
