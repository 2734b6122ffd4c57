// Quota buckets in the dashboard: the admin Quotas page, the viewer's own buckets on My
// Dashboard and the quota lines of the Models tooltip. Numbers come from GET /api/quotas
// (whose `caller_models` says which configured models charge a bucket, computed by the
// server's own rules) and GET /api/quotas/changes; changes go through POST /api/quotas/*.
import { el } from "/ui/static/shell.js";
import { api, usd, tooltipSources } from "/ui/static/pages.js";

const short = (iso) => new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
const updated = (b) => (b.updated_at ? short(b.updated_at) : "not charged yet");

// A balance bar: the filled share is balance / capacity (empty when overdrawn).
export function balanceBar(bucket) {
  const share = bucket.capacity_nanodollars > 0
    ? Math.max(0, Math.min(1, bucket.balance_nanodollars / bucket.capacity_nanodollars)) : 0;
  const level = bucket.balance_nanodollars <= 0 ? "empty" : share < 0.2 ? "low" : "";
  const text = `${usd(bucket.balance_nanodollars)} of ${usd(bucket.capacity_nanodollars)}`;
  return el("div", { class: `balance ${level}` },
    el("div", { class: "bar", role: "meter", "aria-label": `Balance of ${bucket.name}`,
      "aria-valuemin": 0, "aria-valuemax": bucket.capacity_nanodollars / 1e9,
      "aria-valuenow": bucket.balance_nanodollars / 1e9, "aria-valuetext": text },
      el("span", { class: "fill", style: `width: ${(share * 100).toFixed(1)}%` })),
    el("span", { class: "balance-text", text }));
}

function usedBy(bucket) {
  if (!bucket.used_by.length) return el("span", { class: "hint", text: "no grant charges it" });
  return el("ul", { class: "uses" }, ...bucket.used_by.map((use) => el("li", {},
    el("span", { class: "hint", text: "grant " }),
    ...use.src.map((s) => el("span", { class: "chip", title: "the grant's src", text: s })),
    el("span", { class: "hint", text: " models " }),
    ...use.models.map((m) => el("code", { class: "model-chip", text: m })))));
}

// Dollars typed by the admin, as nanodollars for the preview (the server validates).
function parseDollars(text) {
  const clean = text.trim().replace(/^\$/, "");
  if (!/^\d+(\.\d{0,9})?$/.test(clean) && !/^\.\d{1,9}$/.test(clean)) return null;
  const [whole, frac = ""] = clean.split(".");
  return Number(whole || 0) * 1e9 + Number(frac.padEnd(9, "0"));
}

// ---- Admin: Quotas ------------------------------------------------------------------------
export function quotasPage() {
  const body = document.querySelector("#buckets-table tbody");
  const status = document.getElementById("quota-status");
  const filter = document.getElementById("changes-bucket");
  const dialog = document.getElementById("quota-dialog");
  const form = document.getElementById("quota-form");
  const input = document.getElementById("quota-amount");
  const preview = document.getElementById("quota-preview");
  const problem = document.getElementById("quota-error");
  const confirm = document.getElementById("quota-confirm");
  let pending = null; // {bucket, action}

  async function loadBuckets() {
    let data;
    try { data = await api("/api/quotas"); } catch (error) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "error", role: "alert", text: error.message })));
      return;
    }
    body.replaceChildren(...data.buckets.map(bucketRow));
    if (!data.buckets.length) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No quotas are configured." })));
    }
    const chosen = filter.value;
    filter.replaceChildren(el("option", { value: "", text: "All buckets" }),
      ...data.buckets.map((b) => el("option", { value: b.name, text: b.name })));
    filter.value = data.buckets.some((b) => b.name === chosen) ? chosen : "";
  }

  function bucketRow(bucket) {
    const name = el("td", {}, el("code", { class: "bucket-name", text: bucket.name }),
      bucket.template !== bucket.name ? el("div", { class: "hint", text: `template ${bucket.template}` }) : null);
    if (bucket.error) {
      return el("tr", { "data-bucket": bucket.name }, name,
        el("td", { colspan: 2, class: "error", text: bucket.error }),
        el("td", {}, usedBy(bucket)), el("td", { text: "–" }), el("td", {}));
    }
    return el("tr", { "data-bucket": bucket.name }, name,
      el("td", {}, balanceBar(bucket)),
      el("td", { class: "rate", text: bucket.rate }),
      el("td", {}, usedBy(bucket)),
      el("td", { class: "updated", text: updated(bucket) }),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "add-funds", onclick: () => open(bucket, "refill") }, "Add funds"), " ",
        el("button", { type: "button", class: "set-balance", onclick: () => open(bucket, "set") }, "Set balance")));
  }

  async function loadChanges() {
    const tbody = document.querySelector("#changes-table tbody");
    const q = new URLSearchParams({ limit: 100 });
    if (filter.value) q.set("bucket", filter.value);
    let data;
    try { data = await api(`/api/quotas/changes?${q}`); } catch (error) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "error", role: "alert", text: error.message })));
      return;
    }
    tbody.replaceChildren(...data.changes.map((c) => el("tr", {},
      el("td", {}, el("time", { datetime: c.changed_at, text: short(c.changed_at) })),
      el("td", {}, el("code", { text: c.bucket })),
      el("td", { class: "change", text: c.action === "refill" ? `Added ${usd(c.amount_nanodollars)}` : `Set to ${usd(c.amount_nanodollars)}` }),
      el("td", { class: "num", text: usd(c.balance_before_nanodollars) }),
      el("td", { class: "num", text: usd(c.balance_after_nanodollars) }),
      el("td", { class: "who", text: c.changed_by }),
    )));
    if (!data.changes.length) tbody.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No manual changes yet." })));
  }

  function open(bucket, action) {
    pending = { bucket, action };
    const refill = action === "refill";
    document.getElementById("quota-dialog-title").textContent = `${refill ? "Add funds to" : "Set the balance of"} ${bucket.name}`;
    document.getElementById("quota-dialog-now").textContent =
      `Balance now ${usd(bucket.balance_nanodollars)} of ${usd(bucket.capacity_nanodollars)}, refilling at ${bucket.rate}.`;
    document.getElementById("quota-amount-label").textContent = refill ? "Dollars to add" : "New balance in dollars";
    confirm.textContent = refill ? "Add funds" : "Set balance";
    input.value = "";
    problem.textContent = "";
    showPreview();
    dialog.showModal();
    input.focus();
  }

  function showPreview() {
    if (!pending) return;
    const { bucket, action } = pending;
    const amount = parseDollars(input.value);
    if (amount === null) {
      preview.textContent = input.value.trim() ? "Enter dollars, e.g. 5 or 2.50." : "";
      return;
    }
    const before = bucket.balance_nanodollars, cap = bucket.capacity_nanodollars;
    const after = action === "refill" ? Math.max(before, Math.min(cap, before + amount)) : amount;
    const capped = action === "refill" && before + amount > cap ? " (capped at capacity)" : "";
    const over = action === "set" && amount > cap ? ` — above the capacity ${usd(cap)}` : "";
    preview.textContent = `Balance: ${usd(before)} → ${usd(after)}${capped}${over}`;
  }
  input.addEventListener("input", showPreview);

  // Cancel is not a submit button, so Enter in the amount field confirms.
  document.getElementById("quota-cancel").addEventListener("click", () => dialog.close("cancel"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!pending) return;
    const { bucket, action } = pending;
    const key = action === "refill" ? "amount" : "balance";
    confirm.disabled = true;
    problem.textContent = "";
    try {
      const reply = await api(`/api/quotas/${action}`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ bucket: bucket.name, [key]: input.value.trim() }),
      });
      pending = null;
      dialog.close("ok");
      status.replaceChildren(el("p", { class: "ok", text:
        `${action === "refill" ? "Added funds to" : "Set the balance of"} ${reply.bucket.name}: now ${usd(reply.bucket.balance_nanodollars)}.` }));
      await Promise.all([loadBuckets(), loadChanges()]);
    } catch (error) {
      problem.textContent = error.message;
    } finally {
      confirm.disabled = false;
    }
  });
  dialog.addEventListener("close", () => { pending = null; });
  filter.addEventListener("change", loadChanges);

  loadBuckets().then(loadChanges);
  setInterval(() => { if (!document.hidden && !dialog.open) loadBuckets(); }, 10000);
}

// ---- My Dashboard: the viewer's own buckets -----------------------------------------------
// "Burn rate $0.42/day · lasts 6.5 days at this rate", from /api/quotas.
function burnText(bucket) {
  if (!bucket.burn_per_day_nanodollars) return "Burn rate: nothing spent in the last 7 days";
  const lasts = bucket.days_left === null ? "" : ` · lasts ${bucket.days_left} days at this rate`;
  return `Burn rate ${bucket.burn_per_day}/day (last 7 days)${lasts}`;
}

export function myQuotas() {
  const section = document.getElementById("my-quotas");
  const list = document.getElementById("my-quota-list");
  async function load() {
    let data;
    try { data = await api("/api/quotas?own=1"); } catch (error) {
      section.hidden = false;
      list.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    section.hidden = !data.buckets.length;
    list.replaceChildren(...data.buckets.map((b) => el("div", { class: "card quota-card", "data-bucket": b.name },
      el("h3", {}, el("code", { text: b.name })),
      b.error ? el("p", { class: "error", text: b.error }) : [
        balanceBar(b),
        el("p", { class: "hint", text: `Refills at ${b.rate} · updated ${updated(b)}` }),
        el("p", { class: "hint burn", text: burnText(b) }),
        b.caller_models.length ? el("p", { class: "hint", text: `Charged by ${b.caller_models.join(", ")}` }) : null,
      ])));
  }
  load();
  setInterval(() => { if (!document.hidden) load(); }, 5000);
}

// ---- Models: quota lines of each model's tooltip ------------------------------------------
// With quota lines a tooltip is taller than its table row, and the table's scroll box would
// clip it: shown tooltips are placed in the viewport instead (below the button, or above it
// when there is no room below).
function floatTooltips() {
  const place = (event) => {
    const tip = event.target.closest?.(".tip");
    const body = tip?.querySelector(".tip-body");
    if (!body) return;
    const anchor = tip.getBoundingClientRect();
    body.classList.add("floating");
    body.style.right = `${Math.max(4, innerWidth - anchor.right)}px`;
    body.style.top = `${anchor.bottom}px`;
    const height = body.getBoundingClientRect().height;
    if (anchor.bottom + height > innerHeight && anchor.top - height > 0) {
      body.style.top = `${anchor.top - height}px`;
    }
  };
  document.addEventListener("mouseover", place);
  document.addEventListener("focusin", place);
}


// Loads the viewer's buckets once, then adds a tooltip source listing those that charge a
// model. A failure to load becomes a tooltip line, never a broken page.
export async function addQuotaTooltips() {
  floatTooltips();
  let buckets = null, failure = null;
  try { buckets = (await api("/api/quotas?own=1")).buckets; } catch (error) { failure = error.message; }
  tooltipSources.push((model, group) => {
    if (failure) return [["Quotas", `unavailable: ${failure}`]];
    const fqn = `${group.provider}/${model.id}`;
    const hits = buckets.filter((b) => b.caller_models.includes(fqn));
    if (!hits.length) return model.granted ? [["Quotas", "none apply to you"]] : [];
    return hits.flatMap((b) => b.error
      ? [["Quota", b.name], ["Problem", b.error]]
      : [["Quota", b.name], ["Balance", `${usd(b.balance_nanodollars)} of ${usd(b.capacity_nanodollars)}`],
         ["Refill rate", b.rate], ["Last update", updated(b)]]);
  });
}
