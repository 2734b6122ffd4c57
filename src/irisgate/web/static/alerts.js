// The notification bell in the top bar and the Notifications page, over /api/alerts.
// Text goes in through textContent only.
import { el, showUnread } from "/ui/static/shell.js";
import { api } from "/ui/static/pages.js";

const JSON_HEADERS = { accept: "application/json", "content-type": "application/json" };
const when = (value) => (value ? value.replace("T", " ").slice(0, 19) + " UTC" : "–");

async function markRead(body) {
  const answer = await api("/api/alerts/read", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(body) });
  showUnread(answer.unread);
  return answer;
}

function alertItem(alert, admin, reload) {
  const meta = [alert.severity, alert.kind, when(alert.raised_at)];
  if (alert.cleared_at) meta.push(`cleared ${when(alert.cleared_at)}`);
  if (admin && alert.user) meta.push(`user ${alert.user}`);
  const item = el("li", { class: `alert-item${alert.read ? "" : " unread"}`, "data-id": alert.id, "data-severity": alert.severity },
    el("p", { class: "alert-message", text: alert.message }),
    el("p", { class: "hint", text: meta.join(" · ") }));
  if (admin && alert.deliveries.length) {
    item.append(el("p", { class: "hint deliveries", text: alert.deliveries.map((d) => `${d.channel}: ${d.state}`).join(" · ") }));
  }
  if (!alert.read) {
    item.append(el("button", { type: "button", class: "ghost mark-read", text: "Mark read", onclick: async () => { await markRead({ ids: [alert.id] }); reload(); } }));
  }
  return item;
}

export function notificationsPage(admin) {
  const list = document.getElementById("alert-list");
  const load = async () => {
    let data;
    try { data = await api("/api/alerts"); } catch (error) {
      list.replaceChildren(el("li", { class: "error", role: "alert", text: error.message }));
      return;
    }
    document.getElementById("alerts-unread").textContent = data.unread ? `${data.unread} unread` : "";
    document.getElementById("alerts-empty").hidden = data.alerts.length > 0;
    list.replaceChildren(...data.alerts.map((a) => alertItem(a, admin, load)));
    showUnread(data.unread);
    if (admin) {
      const failed = data.failed_deliveries;
      document.getElementById("failed-empty").hidden = failed.length > 0;
      document.getElementById("failed-rows").replaceChildren(...failed.map((d) => el("tr", { "data-id": d.id },
        el("td", { text: d.message }),
        el("td", { text: d.channel }),
        el("td", { text: d.state === "failed" ? "given up" : "retrying" }),
        el("td", { text: String(d.attempts) }),
        el("td", { class: "error", text: d.last_error }),
        el("td", { text: when(d.next_attempt_at) }))));
    }
  };
  document.getElementById("mark-all-read").addEventListener("click", async () => {
    await markRead({ all: true });
    load();
  });
  load();
  setInterval(() => { if (!document.hidden) load(); }, 15000);
}
