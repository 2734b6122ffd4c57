// Settings: the visual editors (visual.js), the raw HuJSON editor (errors inline at their
// line, conflicts explained, self-lockout refused by the API) and the config history with
// diff and rollback. Every save is `PUT /api/config` on top of the loaded version's hash.
import { el, tabs } from "/ui/static/shell.js";
import { api } from "/ui/static/pages.js";
import { visualEditors } from "/ui/static/visual.js";

export function settingsPage(login, options) {
  tabs();
  const text = document.getElementById("config-text");
  const gutter = document.getElementById("gutter");
  const errors = document.getElementById("config-errors");
  const status = document.getElementById("save-status");
  let hash = null;

  const say = (kind, message) => status.replaceChildren(el("p", { class: kind, role: kind === "error" ? "alert" : null, text: message }));
  const lines = (bad = new Set()) => {
    const count = text.value.split("\n").length;
    gutter.replaceChildren(...Array.from({ length: count }, (_, i) => el("span", { class: bad.has(i + 1) ? "bad" : "", text: `${i + 1}\n` })));
  };
  text.addEventListener("input", () => lines());
  text.addEventListener("scroll", () => { gutter.scrollTop = text.scrollTop; });

  async function loadConfig() {
    const data = await api("/api/config");
    text.value = data.config;
    hash = data.hash;
    document.getElementById("config-version").textContent = data.version;
    errors.replaceChildren();
    lines();
    visual.load(data.value);
  }

  function goToLine(line) {
    const offset = text.value.split("\n").slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
    text.focus();
    text.setSelectionRange(offset, offset);
    const lineHeight = parseFloat(getComputedStyle(text).lineHeight) || 18;
    text.scrollTop = Math.max(0, (line - 3) * lineHeight);
  }

  // Saves a new version (PUT of the text, or a rollback) and reports the API's answer.
  async function send(url, method, payload, done) {
    status.replaceChildren();
    errors.replaceChildren();
    try {
      const result = await api(url, {
        method,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(payload),
      });
      say("ok", done(result) + (result.warnings.length ? ` ${result.warnings.length} warning(s).` : ""));
      await loadConfig();
      await loadHistory();
      return true;
    } catch (error) {
      if (error.status === 409) {
        say("error", "Someone saved a newer version since you loaded this one, so your save was refused " +
          "to avoid overwriting it. Copy your change, press Reload to load the newest version, reapply your change and save again.");
      } else if (error.status === 400 && error.body.errors) {
        say("error", error.message);
        const bad = new Set(error.body.errors.map((e) => e.line).filter(Boolean));
        lines(bad);
        errors.replaceChildren(...error.body.errors.map((e) => el("li", {},
          e.line ? el("button", { type: "button", class: "link", onclick: () => goToLine(e.line), text: `line ${e.line}` }) : "",
          e.path ? el("code", { text: ` ${e.path}` }) : "", `: ${e.message}`)));
        if (!document.getElementById("panel-raw").hidden) {
          const first = error.body.errors.find((e) => e.line);
          if (first) goToLine(first.line);
        }
        return error.body.errors;
      } else {
        say("error", error.message);
      }
      return false;
    }
  }
  function save(configText) {
    return send("/api/config", "PUT", { config: configText, hash }, (result) => `Saved as version ${result.version}.`);
  }

  const saveValue = (value) => send("/api/config", "PUT", { value, hash }, (result) => `Saved as version ${result.version}.`);
  const visual = visualEditors({ options, save: saveValue });
  document.getElementById("save-raw").addEventListener("click", () => save(text.value));
  document.getElementById("reload-config").addEventListener("click", () => loadConfig().then(() => say("ok", "Reloaded the newest version.")));

  const table = document.querySelector("#history-table tbody");
  const dialog = document.getElementById("confirm");
  async function loadHistory() {
    const data = await api("/api/config/versions");
    table.replaceChildren(...data.versions.map((v) => el("tr", { "data-version": v.id },
      el("td", {}, `${v.id}`, v.current ? el("span", { class: "badge", text: "current" }) : null),
      el("td", { text: new Date(v.created_at).toLocaleString() }),
      el("td", { text: v.created_by || "–" }),
      el("td", { text: v.source }),
      el("td", { class: "actions" },
        el("button", { type: "button", class: "show-diff", onclick: () => showDiff(v.id), text: "Diff" }),
        v.current ? null : el("button", { type: "button", class: "rollback", onclick: () => rollback(v.id), text: "Roll back" })),
    )));
  }
  async function showDiff(id) {
    const data = await api(`/api/config/versions/${id}`);
    document.getElementById("version-detail").hidden = false;
    document.getElementById("diff-version").textContent = id;
    const pre = document.getElementById("diff");
    pre.replaceChildren(...(data.diff || "(no changes)\n").split("\n").map((line) => el("span", {
      class: line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "",
      text: line + "\n" })));
  }
  async function rollback(id) {
    document.getElementById("confirm-text").textContent =
      `Roll back to version ${id}? Its text is saved as a new version; the history keeps every version.`;
    dialog.showModal();
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "ok") return;
      await loadConfig();  // the rollback is based on the newest version
      await send(`/api/config/versions/${id}/rollback`, "POST", { hash },
        (result) => `Rolled back to version ${id}: saved as version ${result.version}.`);
    }, { once: true });
  }
  document.getElementById("tab-history").addEventListener("tab-selected", () =>
    loadHistory().catch((error) => say("error", error.message)));
  loadConfig().catch((error) => say("error", error.message));
  loadHistory().catch((error) => say("error", error.message));
}
