// The admin Chat Activity page: /api/chat/activity per day, as activity (user messages vs
// assistant turns) or outcomes (how the turns ended), with totals.
import { el } from "/ui/static/shell.js";
import { lineChart } from "/ui/static/charts.js";
import { api, filterForm, num } from "/ui/static/pages.js";

const OUTCOMES = ["completed", "error", "cancelled", "refused", "truncated"];

export function chatActivityPage() {
  const query = filterForm(document.getElementById("filters"), load);
  const chart = document.getElementById("chart-chat");
  const buttons = document.querySelectorAll("[data-view]");
  let view = "activity";
  let data = null;
  for (const button of buttons) {
    button.addEventListener("click", () => {
      view = button.dataset.view;
      for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
      draw();
    });
  }
  function draw() {
    if (!data) return;
    document.getElementById("chart-title").textContent =
      view === "activity" ? "Activity per day" : "Outcomes per day";
    const any = data.days.some((d) => d.user_messages || d.assistant_turns);
    const days = any ? data.days.map((d) => d.day) : [];
    const series = view === "activity"
      ? [
          { label: "User messages", values: data.days.map((d) => d.user_messages) },
          { label: "Assistant turns", values: data.days.map((d) => d.assistant_turns) },
        ]
      : OUTCOMES.map((o) => ({ label: o, values: data.days.map((d) => d.outcomes[o]) }));
    lineChart(chart, days, series, num, { integer: true });
  }
  async function load() {
    try {
      data = await api(`/api/chat/activity?${query()}`);
    } catch (error) {
      chart.replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    const t = data.totals;
    document.getElementById("stat-conversations").textContent = num(t.conversations);
    document.getElementById("stat-user-messages").textContent = num(t.user_messages);
    document.getElementById("stat-assistant-turns").textContent = num(t.assistant_turns);
    document.getElementById("stat-users").textContent = num(t.users);
    const body = document.querySelector("#outcomes-table tbody");
    body.replaceChildren(
      ...OUTCOMES.map((o) => el("tr", { "data-outcome": o },
        el("td", { text: o }), el("td", { class: "num", text: num(t.outcomes[o]) }))),
    );
    draw();
  }
  load();
}
