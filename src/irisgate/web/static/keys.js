// API keys: the Keys page (make, list, budget, revoke through /api/keys; balances from
// /api/quotas) and the Agent Config
// page's "key for an agent off the tailnet". A secret is shown once, in the page only; it
// is never stored by the page or sent anywhere but to the gateway.
import { el } from "/ui/static/shell.js";
import { api } from "/ui/static/pages.js";

const JSON_HEADERS = { accept: "application/json", "content-type": "application/json" };
const day = (value) => (value ? value.slice(0, 10) : "–");

async function make(body) {
  return api("/api/keys", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(body) });
}

function shownSecret(key) {
  const code = el("code", { id: "key-secret", text: key.secret });
  const copy = el("button", { type: "button", class: "copy", text: "Copy",
    onclick: () => navigator.clipboard?.writeText(key.secret) });
  return el("div", { class: "notice" },
    el("p", { text: `Key “${key.name}” made. Copy it now: irisgate shows it only once.` }),
    el("div", { class: "code-wrap" }, el("pre", {}, code), copy),
    el("p", { class: "hint", text: "For irisgate launch and agents: export IRISGATE_API_KEY=<the key>" }));
}

function failure(error) {
  return el("p", { class: "error", role: "alert", text: error.message });
}

// A one-button maker of a key for an agent (Agent Config).
export function keyMaker(root, name) {
  if (!root) return;
  const status = el("div", { role: "status", "aria-live": "polite" });
  const button = el("button", { type: "button", class: "primary", id: "agent-key-create", text: "Create a key for an agent",
    onclick: async () => {
      button.disabled = true;
      try {
        status.replaceChildren(shownSecret(await make({ name })));
      } catch (error) {
        status.replaceChildren(failure(error));
      } finally {
        button.disabled = false;
      }
    } });
  root.append(button, status);
}

// A key's own budget: its bucket's balance of its capacity, and (active keys) a choice of
// the config's quotas to follow, saved with PATCH /api/keys/{id}.
function budget(key, bucket, quotas, active, reload) {
  const shown = !key.quota ? "none"
    : bucket && !bucket.error ? `${bucket.balance} of ${bucket.capacity} (${key.quota})`
    : bucket?.error ? `${key.quota}: ${bucket.error}` : key.quota;
  const cell = el("td", { class: "key-budget" }, el("span", { class: "key-budget-balance", text: shown }));
  if (!active) return cell;
  const choice = el("select", { class: "key-budget-select", "aria-label": `Budget of ${key.name}` },
    el("option", { value: "", text: "none of its own" }),
    ...quotas.map((name) => el("option", { value: name, text: name, selected: name === key.quota })));
  const status = el("span", { role: "status", class: "key-budget-status" });
  const save = el("button", { type: "button", class: "key-budget-save", text: "Set budget",
    onclick: async () => {
      save.disabled = true;
      try {
        await api(`/api/keys/${encodeURIComponent(key.id)}`, { method: "PATCH", headers: JSON_HEADERS,
          body: JSON.stringify({ quota: choice.value }) });
        reload();
      } catch (error) {
        status.replaceChildren(failure(error));
        save.disabled = false;
      }
    } });
  cell.append(" ", choice, save, status);
  return cell;
}

function row(key, bucket, quotas, reload) {
  const state = key.revoked_at ? "revoked" : key.expires_at && new Date(key.expires_at) <= new Date() ? "expired" : "active";
  const revoke = state === "active"
    ? el("button", { type: "button", class: "danger revoke", "data-key": key.id, text: "Revoke",
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await api(`/api/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
        } finally {
          reload();
        }
      } })
    : null;
  return el("tr", { "data-key": key.id },
    el("td", { text: key.name }),
    el("td", {}, el("code", { text: `${key.prefix}…` })),
    el("td", { text: key.owner }),
    el("td", { text: key.models.length ? key.models.join(", ") : "all granted" }),
    budget(key, bucket, quotas, state === "active", reload),
    el("td", { text: day(key.created_at) }),
    el("td", { text: day(key.expires_at) }),
    el("td", { text: day(key.last_used_at) }),
    el("td", { class: `key-state key-${state}`, text: state }),
    el("td", {}, revoke));
}

export function keysPage(admin, quotas = []) {
  const rows = document.getElementById("keys-rows");
  const all = document.getElementById("keys-all");
  const made = document.getElementById("key-made");
  const form = document.getElementById("key-form");
  // Loads can overlap (the page's first load, then "all keys" ticked at once): only the
  // latest one's answer is shown, whichever arrives last.
  let loads = 0;
  async function reload() {
    const load = ++loads;
    try {
      const [keys, balances] = await Promise.all([
        api(all?.checked ? "/api/keys?all=1" : "/api/keys"),
        api(all?.checked ? "/api/quotas" : "/api/quotas?own=1"),
      ]);
      if (load !== loads) return;
      const buckets = new Map(balances.buckets.map((bucket) => [bucket.name, bucket]));
      rows.replaceChildren(...keys.map((key) => row(key, buckets.get(`key:${key.id}`), quotas, reload)));
      if (!keys.length) rows.replaceChildren(el("tr", {}, el("td", { colspan: "10", class: "empty", text: "No keys yet." })));
    } catch (error) {
      if (load !== loads) return;
      rows.replaceChildren(el("tr", {}, el("td", { colspan: "10" }, failure(error))));
    }
  }
  all?.addEventListener("change", reload);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const body = { name: data.get("name").trim() };
    const expires = data.get("expires");
    if (expires) body.expires_at = `${expires}T00:00:00Z`;
    const models = (data.get("models") || "").split(",").map((m) => m.trim()).filter(Boolean);
    if (models.length) body.models = models;
    if (data.get("quota")) body.quota = data.get("quota");
    if (admin && data.get("owner")?.trim()) body.owner = data.get("owner").trim();
    try {
      made.replaceChildren(shownSecret(await make(body)));
      form.reset();
    } catch (error) {
      made.replaceChildren(failure(error));
    }
    reload();
  });
  reload();
}
