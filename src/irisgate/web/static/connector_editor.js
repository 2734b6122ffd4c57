// Connector Settings: the admins' editor of connectors.servers. It edits the parsed config
// (like the visual editors in Settings) and saves it through PUT /api/config as `value`, so
// every change is a config version with history and rollback, written into the stored text
// in place (the file's comments kept). Stored secrets arrive as
// "[redacted]" and are sent back unchanged, which tells irisgate to keep the stored value.
// Errors come back with their key path and are shown at the field they name.
import { el } from "/ui/static/shell.js";
import { api } from "/ui/static/pages.js";
import { authLabel } from "/ui/static/connectors.js";
import { CATALOG } from "/ui/static/connector_catalog.js";

const ID = /^[A-Za-z][A-Za-z0-9]*$/;
const SECRET_FIELDS = new Set(["token", "secret", "key", "password", "client_secret"]);
const REDACTED = "[redacted]";

// The six auth types and their fields, in form order. `aliases` are other spellings the config
// accepts for the same field: an existing connector keeps the spelling it was written with.
const AUTH_FIELDS = {
  none: [],
  bearer_token: [{ key: "token", label: "Token", secret: true, aliases: ["secret"] }],
  api_key: [
    { key: "in", label: "Send the key in", choices: [["header", "a header"], ["query", "a query parameter"]] },
    { key: "name", label: "Header or parameter name", placeholder: "X-API-Key" },
    { key: "secret", label: "API key", secret: true, aliases: ["key"] },
  ],
  basic: [
    { key: "username", label: "Username" },
    { key: "password", label: "Password", secret: true },
  ],
  oauth2_client_credentials: [
    { key: "token_url", label: "Token URL", placeholder: "https://auth.example.com/oauth/token", type: "url" },
    { key: "client_id", label: "Client ID" },
    { key: "client_secret", label: "Client secret", secret: true },
    { key: "scopes", label: "Scopes (comma-separated)", list: true },
  ],
  oauth2_authorization_code: [
    { key: "auth_url", label: "Authorization URL", placeholder: "https://auth.example.com/authorize", type: "url", aliases: ["authorization_url"] },
    { key: "token_url", label: "Token URL", placeholder: "https://auth.example.com/oauth/token", type: "url" },
    { key: "client_id", label: "Client ID" },
    { key: "client_secret", label: "Client secret", secret: true },
    { key: "scopes", label: "Scopes (comma-separated)", list: true },
  ],
  // irisgate finds the authorization server and registers itself: nothing else to fill in
  oauth2_dynamic_client_registration: [
    { key: "scopes", label: "Scopes (comma-separated, optional)", list: true },
  ],
};
const MANAGED = ["protocol", "url", "description", "context", "provider", "auth", "transport"];

const isSecretLiteral = (key, value) => SECRET_FIELDS.has(key) && typeof value === "string" && value !== ""
  && !value.startsWith("env:") && !value.startsWith("file:");
// The connector as the preview shows it: literal secrets masked, references (env:, file:) shown.
export function masked(entry) {
  const copy = { ...entry };
  if (entry.auth && typeof entry.auth === "object") {
    copy.auth = Object.fromEntries(Object.entries(entry.auth).map(([k, v]) => [k, isSecretLiteral(k, v) ? REDACTED : v]));
  }
  return copy;
}
const authType = (entry) => (entry.auth && entry.auth.type) || "none";
// Short names for the table's Auth column (the form and the details use the long ones).
const SHORT = { none: "none", bearer_token: "bearer token", api_key: "API key", basic: "basic",
  oauth2_client_credentials: "OAuth2 client", oauth2_authorization_code: "OAuth2 per user",
  oauth2_dynamic_client_registration: "OAuth2 registered" };
const list = (value) => value.split(",").map((s) => s.trim()).filter(Boolean);
const field = (label, input, path, extra = {}) => el("label", { class: "field", "data-field": path, ...extra },
  el("span", { text: label }), input, el("span", { class: "field-error", role: "alert" }));

export function connectorEditor() {
  const tbody = document.querySelector("#connector-table tbody");
  const search = document.getElementById("connector-search");
  const editor = document.getElementById("editor");
  const form = document.getElementById("connector-form");
  const preview = document.getElementById("connector-preview");
  const status = document.getElementById("save-status");
  const formErrors = document.getElementById("form-errors");
  const dialog = document.getElementById("confirm-delete");
  const panes = document.getElementById("panes");
  const showEditor = (on) => { editor.hidden = !on; panes.classList.toggle("editing", on); };
  let config = null, hash = null;
  let editing = null; // the id being edited (null: adding)
  let original = {}; // the stored entry being edited
  let unknownAuth = null; // an auth object of a type the form does not edit, kept as it is

  const servers = () => config?.connectors?.servers || {};
  const say = (kind, message) => status.replaceChildren(el("p", { class: kind, role: kind === "error" ? "alert" : null, text: message }));

  async function load() {
    const data = await api("/api/config");
    hash = data.hash;
    config = data.value;
    renderTable();
  }

  function renderTable() {
    const rows = Object.entries(servers()).flatMap(([id, c]) => {
      const expanded = el("tr", { class: "connector-detail", "data-detail": id, hidden: true },
        el("td", { colspan: "5" }, detailFacts(c)));
      const arrow = el("span", { class: "arrow", "aria-hidden": "true", text: "▸" });
      const toggle = el("button", { type: "button", class: "ghost expand", "aria-expanded": "false", title: `Details of ${id}`,
        onclick: () => {
          const open = toggle.getAttribute("aria-expanded") !== "true";
          toggle.setAttribute("aria-expanded", String(open));
          arrow.textContent = open ? "▾" : "▸";
          expanded.hidden = !open;
        } }, arrow, el("code", { text: id }));
      const row = el("tr", { "data-connector": id },
        el("td", {}, toggle),
        el("td", { text: c.protocol || "–" }),
        el("td", { class: "url" }, el("code", { text: c.url || "–" })),
        el("td", { text: SHORT[authType(c)] || authType(c), title: authLabel(authType(c)) }),
        el("td", {}, el("div", { class: "row-actions" },
          el("button", { type: "button", class: "edit", onclick: () => openForm(id), text: "Edit" }),
          el("button", { type: "button", class: "delete", onclick: () => confirmDelete(id), text: "Delete" }))),
      );
      row.__search = [id, c.protocol, c.url, authType(c), authLabel(authType(c)), c.description, c.provider].join(" ").toLowerCase();
      return [row, expanded];
    });
    tbody.replaceChildren(...rows);
    if (!rows.length) tbody.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "empty", text: "No connectors yet: add one." })));
    filter();
  }

  function detailFacts(c) {
    const auth = masked(c).auth || {};
    const facts = [["Description", c.description], ["Context", c.context], ["Provider", c.provider],
      ["Auth type", authLabel(authType(c))],
      ...Object.entries(auth).filter(([k]) => k !== "type").map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : String(v)])];
    return el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { class: k === "Context" ? "context" : null, text: v || "–" })]));
  }

  function filter() {
    const wanted = search.value.trim().toLowerCase();
    let shown = 0;
    for (const row of tbody.querySelectorAll("tr[data-connector]")) {
      const hit = !wanted || row.__search.includes(wanted);
      row.hidden = !hit;
      const detailRow = row.nextElementSibling;
      if (!hit) detailRow.hidden = true;
      else if (row.querySelector(".expand").getAttribute("aria-expanded") === "true") detailRow.hidden = false;
      shown += hit ? 1 : 0;
    }
    document.getElementById("no-match").hidden = shown > 0 || !Object.keys(servers()).length;
  }
  search.addEventListener("input", filter);

  function openForm(id) {
    editing = id;
    original = id === null ? { protocol: "mcp" } : servers()[id];
    const type = authType(original);
    unknownAuth = type in AUTH_FIELDS ? null : original.auth;
    formErrors.replaceChildren();
    document.getElementById("form-title").textContent = id === null ? "Add connector" : `Edit ${id}`;
    const typeSelect = el("select", { name: "auth.type" },
      ...Object.keys(AUTH_FIELDS).map((t) => el("option", { value: t, selected: t === type, text: authLabel(t) === "OAuth 2.0 (your account)" ? "OAuth 2.0 authorization code (per user)" : authLabel(t) })),
      unknownAuth ? el("option", { value: type, selected: true, text: `${authLabel(type)} (kept as it is)` }) : null);
    const picker = id !== null ? null : field("Start from a common connector",
      el("select", { name: "catalog" }, el("option", { value: "", text: "— none: fill in below —" }),
        ...CATALOG.map((c) => el("option", { value: c.key, text: c.name }))), "catalog");
    form.replaceChildren(
      ...(picker ? [picker] : []),
      field("Connector ID (letters and digits, starting with a letter)", el("input", { name: "id", value: id || "", required: true, autocomplete: "off" }), "id"),
      field("Protocol", el("select", { name: "protocol" }, ...["mcp", "http"].map((p) => el("option", { value: p, selected: (original.protocol || "mcp") === p, text: p }))), "protocol"),
      field("Upstream URL", el("input", { name: "url", type: "url", value: original.url || "", placeholder: "https://mcp.example.com/mcp", required: true }), "url"),
      field("MCP transport", el("select", { name: "transport" },
        ...[["streamable_http", "Streamable HTTP"], ["sse", "Legacy SSE (2024-11-05)"]].map(([v, t]) =>
          el("option", { value: v, selected: (original.transport || "streamable_http") === v, text: t }))), "transport"),
      field("Description", el("input", { name: "description", value: original.description || "" }), "description"),
      field("Context (prompt text for agents)", el("textarea", { name: "context", rows: "3", text: original.context || "" }), "context"),
      field("Provider", el("input", { name: "provider", value: original.provider || "", placeholder: "Custom" }), "provider"),
      field("Authentication", typeSelect, "auth.type"),
      el("div", { id: "auth-fields", class: "auth-fields" }),
    );
    typeSelect.addEventListener("change", () => { renderAuthFields(); update(); });
    picker?.querySelector("select").addEventListener("change", (event) => prefill(event.target.value));
    // the transport is an MCP setting: hidden for HTTP connectors
    const protocolSelect = form.querySelector("[name=protocol]");
    const showTransport = () => { form.querySelector("[data-field=transport]").style.display = protocolSelect.value === "mcp" ? "" : "none"; };
    protocolSelect.addEventListener("change", showTransport);
    showTransport();
    renderAuthFields();
    showEditor(true);
    update();
    form.querySelector("[name=id]").focus();
  }

  // Fills the form from a catalog entry (the admin reviews it and adds a secret if needed).
  function prefill(key) {
    const chosen = CATALOG.find((c) => c.key === key);
    if (!chosen) return;
    const set = (name, value) => { form.querySelector(`[name="${name}"]`).value = value || ""; };
    set("id", chosen.id);
    set("protocol", chosen.protocol);
    form.querySelector("[name=protocol]").dispatchEvent(new Event("change", { bubbles: true }));
    set("url", chosen.url);
    set("transport", chosen.transport || "streamable_http");
    set("description", chosen.description);
    set("provider", chosen.provider);
    set("auth.type", chosen.auth.type);
    original = { protocol: chosen.protocol };
    renderAuthFields();
    const secret = form.querySelector("#auth-fields input[name='auth.token']");
    if (secret && chosen.hint) secret.placeholder = `${chosen.hint}, env:NAME or file:PATH`;
    update();
  }

  function renderAuthFields() {
    const type = form.querySelector("[name='auth.type']").value;
    const root = document.getElementById("auth-fields");
    const stored = authType(original) === type ? original.auth : {};
    root.dataset.type = type;
    if (!(type in AUTH_FIELDS)) {
      root.replaceChildren(el("p", { class: "hint", text: "This auth type is not edited here; it is kept as it is (edit it in Settings › Raw config)." }));
      return;
    }
    root.replaceChildren(...AUTH_FIELDS[type].map((f) => {
      const spelling = [f.key, ...(f.aliases || [])].find((k) => stored[k] !== undefined) || f.key;
      const value = stored[spelling];
      let input;
      if (f.choices) {
        input = el("select", { name: `auth.${f.key}` }, ...f.choices.map(([v, label]) => el("option", { value: v, selected: (value || f.choices[0][0]) === v, text: label })));
      } else {
        input = el("input", { name: `auth.${f.key}`, value: f.list ? (value || []).join(", ") : (value ?? ""),
          type: f.type || "text", placeholder: f.secret ? "the secret, env:NAME or file:PATH" : (f.placeholder || ""), autocomplete: "off" });
      }
      input.dataset.spelling = spelling;
      const label = f.secret && value === REDACTED ? `${f.label} (stored: leave "${REDACTED}" to keep it)` : f.label;
      return field(label, input, `auth.${spelling}`, { "data-auth-field": f.key });
    }));
  }

  // The connector entry the form describes, on top of the stored one (keys the form does not
  // edit, like labels, are kept).
  function collect() {
    const value = (name) => form.querySelector(`[name="${name}"]`).value.trim();
    const entry = Object.fromEntries(Object.entries(original).filter(([k]) => !MANAGED.includes(k)));
    entry.protocol = value("protocol");
    entry.url = value("url");
    for (const key of ["description", "context", "provider"]) if (value(key)) entry[key] = value(key);
    if (entry.protocol === "mcp" && value("transport") === "sse") entry.transport = "sse";
    const type = value("auth.type");
    if (unknownAuth && type === authType(original)) entry.auth = unknownAuth;
    else if (type !== "none") {
      entry.auth = { type };
      for (const f of AUTH_FIELDS[type]) {
        const input = form.querySelector(`[name="auth.${f.key}"]`);
        const v = input.value.trim();
        if (f.list) { if (list(v).length) entry.auth[input.dataset.spelling] = list(v); }
        else if (v) entry.auth[input.dataset.spelling] = v;
      }
    }
    return { id: value("id"), entry };
  }

  function update() {
    const { id, entry } = collect();
    preview.textContent = JSON.stringify({ [id || "<id>"]: masked(entry) }, null, 2);
  }
  form.addEventListener("input", update);
  form.addEventListener("change", update);

  function clearErrors() {
    formErrors.replaceChildren();
    for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
    for (const node of form.querySelectorAll(".invalid")) node.classList.remove("invalid");
  }

  function showErrors(errors, id) {
    const prefix = `connectors.servers.${id}`;
    const unplaced = [];
    for (const e of errors) {
      let target = null;
      if (e.path === prefix || e.path === "connectors.servers") target = form.querySelector("[data-field=id]");
      else if (e.path.startsWith(prefix + ".")) {
        const rest = e.path.slice(prefix.length + 1);
        target = [...form.querySelectorAll("[data-field]")]
          .filter((f) => rest === f.dataset.field || rest.startsWith(f.dataset.field + ".") || rest.startsWith(f.dataset.field + "["))
          .sort((a, b) => b.dataset.field.length - a.dataset.field.length)[0] || null;
      }
      if (target) {
        target.classList.add("invalid");
        target.querySelector(".field-error").textContent = e.message;
      } else unplaced.push(e);
    }
    formErrors.replaceChildren(...unplaced.map((e) => el("li", {}, el("code", { text: e.path || "(config)" }), `: ${e.message}`)));
    form.querySelector(".invalid input, .invalid select, .invalid textarea")?.focus();
  }

  // Saves `next` (the whole config) as a new version; true when saved.
  async function save(next, errorsFor = null) {
    status.replaceChildren();
    try {
      const result = await api("/api/config", {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ value: next, hash }),
      });
      say("ok", `Saved as version ${result.version}.`);
      await load();
      return true;
    } catch (error) {
      if (error.status === 409) {
        say("error", "Someone saved a newer config since this page loaded it, so your save was refused to avoid " +
          "overwriting it. Reload the page and make your change again.");
      } else if (error.status === 400 && error.body.errors) {
        say("error", error.message);
        if (errorsFor !== null) showErrors(error.body.errors, errorsFor);
        else formErrors.replaceChildren(...error.body.errors.map((e) => el("li", {}, el("code", { text: e.path }), `: ${e.message}`)));
      } else say("error", error.message);
      return false;
    }
  }

  function withServers(entries) {
    return { ...config, connectors: { ...(config.connectors || {}), servers: Object.fromEntries(entries) } };
  }

  document.getElementById("save-connector").addEventListener("click", async () => {
    clearErrors();
    const { id, entry } = collect();
    if (!ID.test(id)) {
      showErrors([{ path: `connectors.servers.${id}`, message: "must start with a letter and hold only letters and digits" }], id);
      return;
    }
    if (id !== editing && id in servers()) {
      showErrors([{ path: `connectors.servers.${id}`, message: `a connector named ${id} exists already` }], id);
      return;
    }
    // Renaming replaces the old entry in place: the old id is deleted, the new one created.
    const entries = Object.entries(servers());
    const at = entries.findIndex(([k]) => k === editing);
    if (at >= 0) entries.splice(at, 1, [id, entry]); else entries.push([id, entry]);
    if (await save(withServers(entries), id)) {
      showEditor(false);
      const renamed = editing !== null && editing !== id ? ` (renamed from ${editing})` : "";
      say("ok", `${status.textContent} Connector ${id} saved${renamed}.`);
      editing = null;
    }
  });
  document.getElementById("cancel-edit").addEventListener("click", () => { showEditor(false); editing = null; });
  document.getElementById("add-connector").addEventListener("click", () => openForm(null));

  function confirmDelete(id) {
    document.getElementById("confirm-text").textContent =
      `Delete connector ${id}? Agents lose its tools at once and users' sign-ins to it stop working. Settings › History can roll the change back (literal secrets then have to be typed again).`;
    dialog.returnValue = "";
    dialog.showModal();
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "ok") return;
      const entries = Object.entries(servers()).filter(([k]) => k !== id);
      if (await save(withServers(entries))) {
        if (editing === id) { showEditor(false); editing = null; }
        say("ok", `${status.textContent} Connector ${id} deleted.`);
      }
    }, { once: true });
  }

  load().catch((error) => say("error", error.message));
}
