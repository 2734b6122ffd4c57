// Visual editor of the config's providers and grants. It edits the parsed config (HuJSON
// read with comments and trailing commas removed) and saves it as plain JSON through the
// same PUT /api/config as the raw editor; errors come back with their key path and are shown
// next to the field they name. Grants with more than a role and models are shown read-only
// (edit them in the raw config) so that nothing the form cannot show is lost.
import { el } from "/ui/static/shell.js";

const CAP = "tailscale.com/cap/aperture";
const FORMATS = ["openai_chat", "openai_responses", "anthropic_messages", "gemini_generate_content",
  "google_generate_content", "google_raw_predict", "bedrock_model_invoke", "bedrock_converse"];
const AUTHORIZATION = ["bearer", "x-api-key", "x-goog-api-key", "hec", "cf-aig-authorization"];

// HuJSON -> JSON text: drop comments and trailing commas, leave strings alone.
export function hujsonToJson(text) {
  let out = "", i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else if (c === ",") {
      let j = i + 1;
      while (j < text.length && /\s/.test(text[j])) j++;
      if (text[j] !== "}" && text[j] !== "]") out += c;
      i++;
    } else { out += c; i++; }
  }
  return out;
}

// Fields carry the key path suffix they edit; the prefix (provider id, grant position) is
// resolved when errors arrive, since both can change while editing.
const field = (label, input, suffix) => el("label", { class: "field", "data-suffix": suffix }, el("span", { text: label }), input, el("span", { class: "field-error", role: "alert" }));
const list = (value) => value.split(",").map((s) => s.trim()).filter(Boolean);

function simpleGrant(grant) {
  const caps = grant?.app?.[CAP];
  if (!Array.isArray(grant?.src) || !Array.isArray(caps) || Object.keys(grant).some((k) => k !== "src" && k !== "app")) return false;
  if (Object.keys(grant.app).length !== 1) return false;
  return caps.every((cap) => cap && Object.keys(cap).every((k) => k === "role" || k === "models"));
}

export function visualEditor({ getConfig, save }) {
  const providersRoot = document.getElementById("providers-editor");
  const grantsRoot = document.getElementById("grants-editor");
  let config = null;

  function providerCard(id, p) {
    const compat = p.compatibility || {};
    const card = el("fieldset", { class: "provider", "data-provider": id },
      el("legend", { text: id || "new provider" }),
      field("Provider id", el("input", { name: "id", value: id, required: true }), ""),
      field("Base URL", el("input", { name: "baseurl", value: p.baseurl || "", placeholder: "https://api.example.com", type: "url" }), ".baseurl"),
      field("API key", Array.isArray(p.apikey)
        ? el("input", { name: "apikey", value: `${p.apikey.length} keys: edit them in the raw config`, readonly: true })
        : el("input", { name: "apikey", value: p.apikey || "", placeholder: "env:NAME, file:PATH or the key" }), ".apikey"),
      field("Authorization", el("select", { name: "authorization" }, ...AUTHORIZATION.map((a) => el("option", { value: a, selected: (p.authorization || "bearer") === a, text: a }))), ".authorization"),
      field("Models (comma-separated)", el("input", { name: "models", value: (p.models || []).join(", ") }), ".models"),
      el("div", { class: "field", "data-suffix": ".compatibility" }, el("span", { text: "API formats" }),
        el("div", { class: "checks" }, ...FORMATS.map((f) => el("label", {}, el("input", { type: "checkbox", name: `compat:${f}`, checked: Boolean(compat[f]) }), ` ${f}`))),
        el("span", { class: "field-error", role: "alert" })),
      el("label", { class: "inline" }, el("input", { type: "checkbox", name: "disabled", checked: Boolean(p.disabled) }), " Disabled"),
      el("button", { type: "button", class: "remove", onclick: () => card.remove(), text: "Remove provider" }),
    );
    card.__original = p;
    return card;
  }

  function grantRow(grant, index) {
    if (!simpleGrant(grant)) {
      const row = el("fieldset", { class: "grant readonly", "data-index": index },
        el("legend", { text: `Grant ${index + 1}` }),
        el("p", { class: "hint", text: "This grant has more than a role and models: edit it in the raw config." }),
        el("pre", { text: JSON.stringify(grant, null, 2) }));
      row.__original = grant;
      return row;
    }
    const caps = grant.app[CAP];
    const role = caps.find((c) => c.role)?.role || "";
    const models = caps.flatMap((c) => (c.models === undefined ? [] : [].concat(c.models)));
    const row = el("fieldset", { class: "grant", "data-index": index },
      el("legend", { text: `Grant ${index + 1}` }),
      field("Who (logins, tag:…, group:…, * — comma-separated)", el("input", { name: "src", value: grant.src.join(", ") }), ".src"),
      field("Role", el("select", { name: "role" }, ...["", "user", "admin"].map((r) => el("option", { value: r, selected: r === role, text: r || "(none)" }))), ""),
      field("Models (provider/model globs, comma-separated)", el("input", { name: "models", value: models.join(", "), placeholder: "openai/*, anthropic/**" }), ".app"),
      el("button", { type: "button", class: "remove", onclick: () => row.remove(), text: "Remove grant" }),
    );
    return row;
  }

  async function load() {
    const loaded = await getConfig();
    try {
      config = JSON.parse(hujsonToJson(loaded));
    } catch (error) {
      providersRoot.replaceChildren(el("p", { class: "error", text: `The config could not be read for the visual editor (${error.message}); use the raw editor.` }));
      return;
    }
    providersRoot.replaceChildren(...Object.entries(config.providers || {}).map(([id, p]) => providerCard(id, p)));
    grantsRoot.replaceChildren(...(config.grants || []).map(grantRow));
  }

  function collect() {
    const providers = {};
    for (const card of providersRoot.querySelectorAll("fieldset.provider")) {
      const value = (name) => card.querySelector(`[name="${name}"]`).value.trim();
      const entry = { ...card.__original };
      entry.baseurl = value("baseurl");
      if (Array.isArray(entry.apikey)) { /* a list of keys is kept as it is (raw editor) */ }
      else if (value("apikey")) entry.apikey = value("apikey"); else delete entry.apikey;
      entry.authorization = value("authorization");
      entry.models = list(value("models"));
      entry.compatibility = Object.fromEntries(FORMATS.filter((f) => card.querySelector(`[name="compat:${f}"]`).checked).map((f) => [f, true]));
      if (card.querySelector("[name=disabled]").checked) entry.disabled = true; else delete entry.disabled;
      providers[value("id")] = entry;
    }
    const grants = [...grantsRoot.querySelectorAll("fieldset.grant")].map((row) => {
      if (row.__original) return row.__original;
      const value = (name) => row.querySelector(`[name="${name}"]`).value.trim();
      const caps = [];
      if (value("role")) caps.push({ role: value("role") });
      const models = list(value("models"));
      if (models.length) caps.push({ models: models.length === 1 ? models[0] : models });
      return { src: list(value("src")), app: { [CAP]: caps } };
    });
    return { ...config, providers, grants };
  }

  function showErrors(errors) {
    for (const node of document.querySelectorAll("#panel-visual .field-error")) node.textContent = "";
    for (const node of document.querySelectorAll("#panel-visual .invalid")) node.classList.remove("invalid");
    for (const card of providersRoot.querySelectorAll("fieldset.provider")) {
      const id = card.querySelector("[name=id]").value.trim();
      for (const f of card.querySelectorAll("[data-suffix]")) f.dataset.path = `providers.${id}${f.dataset.suffix}`;
    }
    [...grantsRoot.querySelectorAll("fieldset.grant")].forEach((row, index) => {
      for (const f of row.querySelectorAll("[data-suffix]")) f.dataset.path = `grants[${index}]${f.dataset.suffix}`;
    });
    const fields = [...document.querySelectorAll("#panel-visual [data-path]")];
    const unplaced = [];
    for (const e of errors) {
      // the field whose path is the longest prefix of the error's path
      const target = fields.filter((f) => e.path === f.dataset.path || e.path.startsWith(f.dataset.path + ".") || e.path.startsWith(f.dataset.path + "["))
        .sort((a, b) => b.dataset.path.length - a.dataset.path.length)[0];
      if (target) {
        target.classList.add("invalid");
        target.querySelector(".field-error").textContent = e.message;
      } else unplaced.push(e);
    }
    document.getElementById("visual-errors").replaceChildren(...unplaced.map((e) => el("li", {}, el("code", { text: e.path || "(config)" }), `: ${e.message}`)));
    document.querySelector("#panel-visual .invalid input, #panel-visual .invalid select")?.focus();
  }

  document.getElementById("add-provider").addEventListener("click", () => {
    const card = providerCard("", { compatibility: { openai_chat: true } });
    providersRoot.append(card);
    card.querySelector("[name=id]").focus();
  });
  document.getElementById("add-grant").addEventListener("click", () => {
    const row = grantRow({ src: [], app: { [CAP]: [{ role: "user" }] } }, grantsRoot.children.length);
    grantsRoot.append(row);
    row.querySelector("[name=src]").focus();
  });
  document.getElementById("save-visual").addEventListener("click", async () => {
    showErrors([]);
    const result = await save(JSON.stringify(collect(), null, 2) + "\n");
    if (result === true) await load();
    else if (Array.isArray(result)) showErrors(result);
  });
  return { load };
}
