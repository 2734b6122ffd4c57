// The Tool Use page: tool calls per day by kind (a stacked histogram), by tool, per session,
// from GET /api/usage/tools with the filters of the form (kept in the URL).
import { stackedBars } from "/ui/static/charts.js";
import { api, filterForm, num } from "/ui/static/pages.js";
import { el } from "/ui/static/shell.js";

const KIND = { mcp: "MCP connector", http: "HTTP connector", model: "Model-side" };
const short = (iso) => new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

export function toolUsePage() {
  const query = filterForm(document.getElementById("filters"), load);
  const chart = document.getElementById("chart-tools");
  const toolsBody = document.querySelector("#tools-table tbody");
  const sessionsBody = document.querySelector("#tool-sessions-table tbody");
  let seq = 0;
  async function load() {
    const mine = ++seq;
    let data;
    try { data = await api(`/api/usage/tools?${query()}`); } catch (error) {
      if (mine !== seq) return;
      chart.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    if (mine !== seq) return;
    for (const key of ["mcp", "http", "model"]) document.getElementById(`tool-${key}`).textContent = num(data.totals[key]);
    document.getElementById("tool-total").textContent = num(data.totals.calls);
    const days = data.days.map((d) => d.day);
    stackedBars(chart, days, Object.entries(KIND).map(([key, label]) => ({ label, values: data.days.map((d) => d[key]) })), num, { integer: true });
    toolsBody.replaceChildren(...(data.tools.length ? data.tools.map((t) => el("tr", { "data-kind": t.kind },
      el("td", { text: KIND[t.kind] }), el("td", {}, t.connector ? el("code", { text: t.connector }) : "–"),
      el("td", {}, t.tool ? el("code", { text: t.tool }) : "–"), el("td", { text: t.model || "–" }),
      el("td", { class: "num calls", text: num(t.calls) }), el("td", { class: "num", text: num(t.errors) }),
      el("td", { class: "num", text: num(t.users) }))) :
      [el("tr", {}, el("td", { colspan: 7, class: "empty", text: "No tool calls in this range." }))]));
    sessionsBody.replaceChildren(...(data.sessions.length ? data.sessions.map((s) => el("tr", { "data-session": s.session_id },
      el("td", {}, el("a", { href: `?session=${encodeURIComponent(s.session_id)}`, text: s.session_id })), el("td", { text: s.login_name }),
      el("td", {}, el("time", { datetime: s.last_at, text: short(s.last_at) })),
      el("td", { class: "num", text: num(s.mcp) }), el("td", { class: "num", text: num(s.http) }),
      el("td", { class: "num", text: num(s.model) }), el("td", { class: "num calls", text: num(s.calls) }))) :
      [el("tr", {}, el("td", { colspan: 7, class: "empty", text: "No tool calls with a session id in this range." }))]));
    document.getElementById("tool-sessions-note").textContent = data.sessions_total > data.sessions.length
      ? `The ${data.sessions.length} sessions with the most calls of ${num(data.sessions_total)}.` : "";
  }
  load();
}
