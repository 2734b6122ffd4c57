// The visual config editors of Settings: providers, grants, quotas, rate limits, hooks,
// database and retention, exporters, flags, the chat's model picker and alerts. Each edits
// the config as `GET /api/config` parses it (`value`) and
// saves the whole value through `PUT /api/config` with `value`: irisgate writes only the
// values that changed into the stored text, so the file's comments, order and layout stay.
// Every field a form does not know is kept as it was. Secrets are write-only: a stored
// literal secret is never sent to the page ("[redacted]" stands for it), its field stays empty
// and a value typed there replaces it.
import { el } from "/ui/static/shell.js";

export const CAP = "tailscale.com/cap/aperture";
const REDACTED = "[redacted]";
const REFERENCE = /^(env:|file:|keyid:)/;

// A field: `key` (a path of keys inside the entry, dotted), a label, a type and its options.
// Types: text, number, bool, tristate, select, list (comma-separated), lines (one per line),
// secret, checks (a map of flags), buckets ([{bucket}] as names), json.
const f = (key, label, type = "text", extra = {}) => ({ key, label, type, ...extra });

export function sections(options) {
  return {
    providers: {
      kind: "map", title: "provider", idLabel: "Provider id",
      fields: [
        f("name", "Name (shown in the dashboard)"),
        f("description", "Description"),
        f("baseurl", "Base URL", "text", { placeholder: "https://api.example.com" }),
        f("apikey", "API key", "secret"),
        f("authorization", "Authorization header", "select", { choices: ["", ...options.authorization] }),
        f("auth_mode", "Auth mode", "select", { choices: ["", ...options.auth_modes] }),
        f("models", "Models (comma-separated)", "list"),
        f("compatibility", "API formats", "checks", { choices: options.formats }),
        f("translate", "Reachable from every client API (translation)", "bool"),
        f("cost_basis", "Cost basis (empty: inferred)", "select", { choices: ["", ...options.cost_bases] }),
        f("preference", "Preference (higher wins)", "number"),
        f("weight", "Weight (share among providers of equal preference)", "number"),
        f("add_headers", "Extra upstream headers (one \"Name: value\" a line)", "lines"),
        f("model_cost_map", "Model cost map (JSON list of {match, as, adjustment})", "json"),
        f("disabled", "Disabled", "bool"),
      ],
    },
    quotas: {
      kind: "map", title: "quota bucket", idLabel: "Bucket (may use <user>, <node>)",
      fields: [
        f("capacity", "Capacity", "text", { placeholder: "$10.00" }),
        f("rate", "Refill rate", "text", { placeholder: "$5.00/day" }),
        f("on_exceed", "On exceed", "select", { choices: ["", "reject"] }),
        f("default_estimate", "Default estimate", "text", { placeholder: "$0.01" }),
      ],
    },
    rate_limits: {
      kind: "map", title: "rate limit", idLabel: "Limit (may use <user>, <node>; grants list it in rate_limits)",
      fields: [
        f("requests", "Requests per period (or tokens, or in flight: give one of the three)", "number"),
        f("tokens", "Tokens per period", "number"),
        f("concurrent", "Requests in flight at once (no period)", "number"),
        f("per", "Period", "select", { choices: ["", ...options.rate_periods] }),
      ],
    },
    flags: {
      kind: "map", title: "flag", idLabel: "Flag (chat_ui, …)",
      fields: [f("value", "Value (JSON: true, false, a number or \"text\")", "json")],
    },
    chat: {
      kind: "object", path: ["chat"],
      fields: [
        f("models", "Models the chat offers, in order (JSON list of {\"model\": \"provider/model glob\", \"label\": \"…\"}; empty: every granted chat model)", "json"),
      ],
    },
    hooks: {
      kind: "map", title: "hook", idLabel: "Hook name",
      fields: [
        f("url", "URL", "text", { placeholder: "https://guard.example.ts.net/hook" }),
        f("apikey", "API key", "secret"),
        f("authorization", "Authorization header", "select", { choices: ["", ...options.authorization] }),
        f("timeout", "Timeout", "text", { placeholder: "5s" }),
        f("fail_policy", "When the hook fails", "select", { choices: ["", "fail_open", "fail_closed"] }),
        f("preference", "Preference (higher runs first)", "number"),
        f("disabled", "Disabled", "bool"),
      ],
    },
    database: {
      kind: "object", path: ["database"],
      fields: [
        f("retention.duration", "Keep request bodies for", "text", { placeholder: "720h (0: never stored)" }),
        f("retention.purge", "Purge (comma-separated: " + options.purge.join(", ") + ")", "list"),
        f("retention.require_export", "Purge only after the S3 export", "bool"),
        f("headers.filterable", "Indexed headers (JSON list of {name, redact_values})", "json"),
        f("save_raws", "Keep raw upstream answers", "bool"),
        f("keep_encrypted_blobs", "Keep encrypted blobs", "bool"),
      ],
    },
    exporters: {
      kind: "object", path: ["exporters", "s3"],
      fields: [
        f("bucket_name", "Bucket (empty: no export)"),
        f("region", "Region", "text", { placeholder: "us-east-1" }),
        f("endpoint", "Endpoint (S3-compatible stores)"),
        f("prefix", "Prefix"),
        f("access_key_id", "Access key id", "secret"),
        f("access_secret", "Access secret", "secret"),
        f("every", "Every (seconds)", "number"),
        f("limit", "Records a file", "number"),
        f("format", "Format", "select", { choices: ["", ...options.export_formats] }),
      ],
    },
    alerts: {
      kind: "object", path: ["alerts"],
      fields: [
        f("budgets", "Budget thresholds (JSON: bucket template → % of capacity)", "json", { placeholder: '{"daily:<user>": [50, 80, 100]}' }),
        f("spend_spike", "Spend spike (JSON {multiple, days, minimum}; empty: off)", "json"),
        f("upstream_errors", "Upstream error rate (JSON {rate, min_attempts}, or false)", "json"),
        f("providers", "Providers out of rotation", "tristate"),
        f("hooks", "Hook failures", "tristate"),
        f("exports", "Export failures", "tristate"),
        f("storage", "Database or spool unavailable", "tristate"),
        f("channels", "Channels (JSON: name → {type, url, to, kinds, min_severity}; stored URLs stay \"[redacted]\")", "json"),
        f("smtp.host", "SMTP host"),
        f("smtp.port", "SMTP port", "number"),
        f("smtp.security", "SMTP security", "select", { choices: ["", "starttls", "tls", "none"] }),
        f("smtp.username", "SMTP username"),
        f("smtp.password", "SMTP password", "secret"),
        f("smtp.from", "Sender address", "text", { placeholder: "irisgate@example.com" }),
        f("retry.first", "First retry after", "text", { placeholder: "30s" }),
        f("retry.max", "Longest retry wait", "text", { placeholder: "1h" }),
        f("retry.attempts", "Attempts before giving up", "number"),
      ],
    },
    capability: {
      fields: [
        f("role", "Role", "select", { choices: ["", "user", "admin"] }),
        f("models", "Models (provider/model globs, comma-separated)", "list", { placeholder: "openai/*, anthropic/**" }),
        f("quotas", "Quota buckets (comma-separated)", "buckets"),
        f("rate_limits", "Rate limits (template names, comma-separated)", "list"),
        f("send_hooks", "Hooks (JSON list of {name, events, send})", "json"),
        f("connectors", "Connectors (globs, comma-separated)", "list"),
        f("add_headers", "Extra upstream headers (one a line)", "lines"),
        f("filterable_headers", "May filter on headers (comma-separated)", "list"),
        f("enable_chat_ui", "Chat", "tristate"),
        f("read_metrics", "May read /metrics", "bool"),
      ],
    },
  };
}

const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));
const splitList = (value) => value.split(",").map((s) => s.trim()).filter(Boolean);
const splitLines = (value) => value.split("\n").map((s) => s.trim()).filter(Boolean);

function getPath(object, key) {
  return key.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), object);
}

function setPath(object, key, value) {
  const parts = key.split(".");
  let node = object;
  for (const part of parts.slice(0, -1)) {
    if (value === undefined && (node[part] === undefined || typeof node[part] !== "object")) return;
    if (node[part] === undefined || typeof node[part] !== "object" || Array.isArray(node[part])) node[part] = {};
    node = node[part];
  }
  const last = parts.at(-1);
  if (value === undefined) delete node[last]; else node[last] = value;
}

// One field's input, given the value it starts from; `read()` answers the new value
// (undefined: leave the key out) or throws an Error naming what is wrong.
function input(field, value, name) {
  const id = `${name}:${field.key}`;
  const wrap = (...nodes) => el("label", { class: "field", "data-key": field.key }, el("span", { text: field.label }), ...nodes, el("span", { class: "field-error", role: "alert" }));
  const text = (attrs) => el("input", { name: id, "data-field": field.key, ...attrs });
  let node, read;
  switch (field.type) {
    case "bool": {
      const box = el("input", { type: "checkbox", name: id, "data-field": field.key, checked: value === true });
      node = el("label", { class: "inline field", "data-key": field.key }, box, ` ${field.label}`, el("span", { class: "field-error", role: "alert" }));
      read = () => (box.checked ? true : value === undefined ? undefined : false);
      return { node, read };
    }
    case "tristate": {
      const select = el("select", { name: id, "data-field": field.key },
        ...[["", "default (on)"], ["true", "on"], ["false", "off"]].map(([v, t]) => el("option", { value: v, text: t, selected: String(value ?? "") === v })));
      node = wrap(select);
      read = () => (select.value === "" ? undefined : select.value === "true");
      return { node, read };
    }
    case "select": {
      const select = el("select", { name: id, "data-field": field.key },
        ...field.choices.map((c) => el("option", { value: c, text: c || "(default)", selected: (value ?? "") === c })));
      node = wrap(select);
      read = () => select.value || undefined;
      return { node, read };
    }
    case "checks": {
      const flags = value || {};
      const boxes = field.choices.map((c) => el("input", { type: "checkbox", name: `${id}:${c}`, checked: flags[c] === true }));
      node = el("div", { class: "field", "data-key": field.key }, el("span", { text: field.label }),
        el("div", { class: "checks" }, ...field.choices.map((c, i) => el("label", {}, boxes[i], ` ${c}`))),
        el("span", { class: "field-error", role: "alert" }));
      read = () => {
        const next = clone(flags);
        field.choices.forEach((c, i) => {
          if (boxes[i].checked) next[c] = true;
          else if (c in next) next[c] = false;
        });
        return Object.keys(next).length || value !== undefined ? next : undefined;
      };
      return { node, read };
    }
    case "secret": {
      if (Array.isArray(value)) { // a provider's list of keys: kept as it is (raw editor)
        node = wrap(text({ value: `${value.length} keys: edit them in the raw config`, readonly: true }));
        read = () => value;
        return { node, read };
      }
      const stored = value === REDACTED;
      const box = text({ type: stored ? "password" : "text", value: stored ? "" : value ?? "", autocomplete: "off",
        placeholder: stored ? "stored (write-only): type to replace" : "env:NAME, file:PATH or the secret" });
      const clear = stored ? el("label", { class: "inline" }, el("input", { type: "checkbox", name: `${id}:clear` }), " remove the stored secret") : null;
      node = wrap(box, clear);
      read = () => {
        const typed = box.value.trim();
        if (typed) return typed;
        if (stored && !clear.querySelector("input").checked) return REDACTED;
        return undefined;
      };
      return { node, read };
    }
    case "number": {
      const box = text({ type: "number", value: value ?? "", step: "any" });
      node = wrap(box);
      read = () => {
        if (box.value.trim() === "") return undefined;
        const n = Number(box.value);
        if (!Number.isFinite(n)) throw new Error("must be a number");
        return n;
      };
      return { node, read };
    }
    case "list": case "buckets": {
      const shown = field.type === "buckets" ? (value || []).map((q) => q?.bucket ?? "") : [].concat(value ?? []);
      const box = text({ value: shown.join(", "), placeholder: field.placeholder || "" });
      node = wrap(box);
      read = () => {
        const items = splitList(box.value);
        if (field.type === "buckets") {
          const old = Object.fromEntries((value || []).map((q) => [q?.bucket, q]));
          return items.length ? items.map((b) => old[b] ?? { bucket: b }) : undefined;
        }
        if (!items.length) return undefined;
        return typeof value === "string" && items.length === 1 ? items[0] : items;
      };
      return { node, read };
    }
    case "lines": {
      const box = el("textarea", { name: id, "data-field": field.key, rows: 2, text: [].concat(value ?? []).join("\n") });
      node = wrap(box);
      read = () => (splitLines(box.value).length ? splitLines(box.value) : undefined);
      return { node, read };
    }
    case "json": {
      const box = el("textarea", { name: id, "data-field": field.key, rows: 3, class: "code", text: value === undefined ? "" : JSON.stringify(value, null, 2) });
      node = wrap(box);
      read = () => {
        if (box.value.trim() === "") return undefined;
        try { return JSON.parse(box.value); } catch (error) { throw new Error(`is not valid JSON: ${error.message}`); }
      };
      return { node, read };
    }
    default: {
      const box = text({ value: value ?? "", placeholder: field.placeholder || "" });
      node = wrap(box);
      read = () => box.value.trim() || undefined;
      return { node, read };
    }
  }
}

// A form for one entry (a provider, a quota, the database section …): its field nodes and
// `collect()`, the entry with the form's values written over the original's.
function entryForm(fields, original, name) {
  const inputs = fields.map((field) => ({ field, ...input(field, getPath(original, field.key), name) }));
  return {
    nodes: inputs.map((i) => i.node),
    collect(errors) {
      const entry = clone(original) ?? {};
      for (const { field, read, node } of inputs) {
        try {
          setPath(entry, field.key, read());
        } catch (error) {
          errors.push({ node, message: error.message });
        }
      }
      return entry;
    },
  };
}

// The card list of a map section (providers, quotas, hooks): an id field, the fields, Remove.
function mapEditor(root, spec, section, value) {
  const cards = [];
  const card = (id, original) => {
    const form = entryForm(spec.fields, original, `${section}:${cards.length}`);
    const idBox = el("input", { name: "id", value: id, required: true });
    const node = el("fieldset", { class: `entry ${section}`, "data-id": id },
      el("legend", { text: id || `new ${spec.title}` }),
      el("label", { class: "field", "data-key": "" }, el("span", { text: spec.idLabel }), idBox, el("span", { class: "field-error", role: "alert" })),
      ...form.nodes,
      el("button", { type: "button", class: "remove", text: `Remove ${spec.title}`, onclick: () => { node.remove(); item.removed = true; } }));
    const item = { node, form, idBox, removed: false };
    cards.push(item);
    return node;
  };
  root.replaceChildren(...Object.entries(value || {}).map(([id, entry]) => card(id, entry)));
  return {
    add() {
      const node = card("", {});
      root.append(node);
      node.querySelector("[name=id]").focus();
    },
    collect(errors) {
      const out = {};
      for (const item of cards) {
        if (item.removed) continue;
        const id = item.idBox.value.trim();
        item.node.dataset.path = `${section}.${id}`;
        if (!id) errors.push({ node: item.idBox.closest(".field"), message: "needs a name" });
        else if (id in out) errors.push({ node: item.idBox.closest(".field"), message: `"${id}" is used twice` });
        out[id] = item.form.collect(errors);
      }
      return out;
    },
  };
}

// Grants: who (src) and one card per capability object, each with every capability field.
function grantsEditor(root, capSpec, grants) {
  const rows = [];
  const capCard = (caps, original, n) => {
    const form = entryForm(capSpec.fields, original, `cap:${rows.length}:${n}`);
    const node = el("fieldset", { class: "capability" }, el("legend", { text: "Capability" }), ...form.nodes,
      el("button", { type: "button", class: "remove", text: "Remove capability", onclick: () => { node.remove(); item.removed = true; } }));
    const item = { node, form, removed: false };
    caps.push(item);
    return node;
  };
  const row = (grant) => {
    const caps = [];
    const capsRoot = el("div", { class: "capabilities" });
    const originalCaps = Array.isArray(grant.app?.[CAP]) ? grant.app[CAP] : [];
    capsRoot.append(...originalCaps.map((c, n) => capCard(caps, c, n)));
    const src = el("input", { name: "src", value: [].concat(grant.src ?? []).join(", ") });
    const node = el("fieldset", { class: "grant" },
      el("legend", { text: `Grant ${rows.length + 1}` }),
      el("label", { class: "field", "data-key": "src" }, el("span", { text: "Who (logins, tag:…, group:…, * — comma-separated)" }), src, el("span", { class: "field-error", role: "alert" })),
      capsRoot,
      el("button", { type: "button", class: "add-capability", text: "Add capability", onclick: () => capsRoot.append(capCard(caps, {}, caps.length)) }),
      el("button", { type: "button", class: "remove", text: "Remove grant", onclick: () => { node.remove(); item.removed = true; } }));
    const item = { node, grant, src, caps, removed: false };
    rows.push(item);
    return node;
  };
  root.replaceChildren(...(grants || []).map(row));
  return {
    add() {
      const node = row({ src: [], app: { [CAP]: [{ role: "user" }] } });
      root.append(node);
      node.querySelector("[name=src]").focus();
    },
    collect(errors) {
      return rows.filter((r) => !r.removed).map((r, index) => {
        r.node.dataset.path = `grants[${index}]`;
        const grant = clone(r.grant);
        grant.src = splitList(r.src.value);
        grant.app = grant.app && typeof grant.app === "object" ? grant.app : {};
        const caps = r.caps.filter((c) => !c.removed).map((c) => c.form.collect(errors));
        // a grant of other apps' capabilities only stays without an empty irisgate list
        if (caps.length || CAP in grant.app) grant.app[CAP] = caps;
        return grant;
      });
    },
  };
}

// An object section (database, exporters.s3): one form; the section left out when empty.
function objectEditor(root, spec, config) {
  const original = spec.path.reduce((node, key) => node?.[key], config);
  const form = entryForm(spec.fields, original ?? {}, spec.path.join("."));
  root.replaceChildren(el("fieldset", { class: "entry", "data-path": spec.path.join(".") }, ...form.nodes));
  return {
    collect(errors) {
      const entry = form.collect(errors);
      return Object.keys(entry).length || original !== undefined ? entry : undefined;
    },
  };
}

// Puts each API error next to the field whose key path is the longest prefix of the error's.
export function placeErrors(panel, errors) {
  for (const node of panel.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of panel.querySelectorAll(".invalid")) node.classList.remove("invalid");
  const unplaced = [];
  for (const e of errors) {
    if (e.node) {
      e.node.classList.add("invalid");
      e.node.querySelector(".field-error").textContent = e.message;
      continue;
    }
    let target = null, best = -1;
    for (const container of panel.querySelectorAll("[data-path]")) {
      const base = container.dataset.path;
      if (e.path !== base && !e.path.startsWith(base + ".") && !e.path.startsWith(base + "[")) continue;
      for (const fieldNode of container.querySelectorAll(":scope .field")) {
        const key = fieldNode.dataset.key;
        const full = key ? `${base}.${key}` : base;
        const hit = e.path === full || e.path.startsWith(full + ".") || e.path.startsWith(full + "[");
        if (hit && full.length > best && fieldNode.closest("[data-path]") === container) { target = fieldNode; best = full.length; }
      }
    }
    if (target) {
      target.classList.add("invalid");
      target.querySelector(".field-error").textContent = e.message;
    } else unplaced.push(e);
  }
  panel.querySelector(".errors")?.replaceChildren(...unplaced.map((e) => el("li", {}, el("code", { text: e.path || "(config)" }), `: ${e.message}`)));
  panel.querySelector(".invalid input, .invalid select, .invalid textarea")?.focus();
}

// The sections edited as a list of named cards.
const MAPS = ["providers", "quotas", "rate_limits", "hooks", "flags"];

// Builds every visual panel from the loaded config; `save(value)` is the page's PUT.
export function visualEditors({ options, save }) {
  const specs = sections(options);
  const editors = {};
  let config = null;

  function load(value) {
    config = value;
    for (const section of MAPS) {
      editors[section] = mapEditor(document.getElementById(`${section}-editor`), specs[section], section, config[section]);
    }
    editors.grants = grantsEditor(document.getElementById("grants-editor"), specs.capability, config.grants);
    editors.database = objectEditor(document.getElementById("database-editor"), specs.database, config);
    editors.exporters = objectEditor(document.getElementById("exporters-editor"), specs.exporters, config);
    editors.chat = objectEditor(document.getElementById("chat-editor"), specs.chat, config);
    editors.alerts = objectEditor(document.getElementById("alerts-editor"), specs.alerts, config);
  }

  function collect(section, errors) {
    const next = clone(config);
    const value = editors[section].collect(errors);
    const path = section === "exporters" ? ["exporters", "s3"] : [section];
    let node = next;
    for (const key of path.slice(0, -1)) node = node[key] && typeof node[key] === "object" ? node[key] : (node[key] = {});
    if (value === undefined) delete node[path.at(-1)]; else node[path.at(-1)] = value;
    return next;
  }

  for (const section of [...MAPS, "grants"]) {
    document.getElementById(`add-${section}`)?.addEventListener("click", () => editors[section].add());
  }
  for (const button of document.querySelectorAll("[data-save]")) {
    button.addEventListener("click", async () => {
      const section = button.dataset.save;
      const panel = button.closest("[role=tabpanel]");
      const errors = [];
      const value = collect(section, errors);
      placeErrors(panel, errors);
      if (errors.length) return;
      const result = await save(value);
      if (Array.isArray(result)) placeErrors(panel, result);
    });
  }
  return { load };
}
