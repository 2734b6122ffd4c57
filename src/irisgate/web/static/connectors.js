// Connectors, the users' view: every connector with the caller's status from GET
// /api/connectors, and Connect / Reconnect for per-user OAuth connectors. Connect asks
// irisgate for the authorization URL and sends the browser there; the OAuth server sends it
// back to irisgate's callback page, which links back here.
import { el } from "/ui/static/shell.js";
import { api } from "/ui/static/pages.js";

const AUTH_LABELS = {
  none: "None",
  bearer_token: "Bearer token",
  api_key: "API key",
  basic: "HTTP basic",
  oauth2_client_credentials: "OAuth 2.0 client credentials",
  oauth2_authorization_code: "OAuth 2.0 (your account)",
  oauth2_dynamic_client_registration: "OAuth 2.0 dynamic registration",
};
export const authLabel = (type) => AUTH_LABELS[type] || type;

async function connect(connector, button, status) {
  button.disabled = true;
  status.replaceChildren();
  try {
    const { auth_url } = await api(`/api/connectors/${encodeURIComponent(connector.id)}/connect`, { method: "POST" });
    location.assign(auth_url);
  } catch (error) {
    button.disabled = false;
    status.replaceChildren(el("p", { class: "error", role: "alert", text: `${connector.id}: ${error.message}` }));
  }
}

function actionButton(connector, status) {
  if (!connector.per_user || connector.status === "no_access") return null;
  const label = connector.status === "needs_auth" ? "Connect" : "Reconnect";
  const button = el("button", { type: "button", class: label === "Connect" ? "primary connect" : "connect", "data-connector": connector.id,
    onclick: (event) => { event.stopPropagation(); connect(connector, button, status); }, text: label });
  return button;
}

function detail(root, connector, status) {
  const origin = location.origin;
  const endpoint = connector.protocol === "mcp" ? `${origin}/v1/mcp` : `${origin}/v1/connectors/${connector.id}/`;
  const how = connector.protocol === "mcp"
    ? `Its tools appear in irisgate's MCP server as ${connector.id}_<tool>.`
    : `Requests to this address go to the connector's API with its credential added.`;
  root.replaceChildren(...[
    el("div", { class: "panel-head" }, el("h2", { text: connector.id }), actionButton(connector, status)),
    el("p", {}, el("span", { class: `status status-${connector.status}`, text: connector.status_label })),
    connector.status_detail ? el("p", { class: "hint", text: connector.status_detail }) : null,
    el("dl", { class: "facts" },
      el("dt", { text: "Description" }), el("dd", { text: connector.description || "–" }),
      el("dt", { text: "Provider" }), el("dd", { text: connector.provider || "–" }),
      el("dt", { text: "Protocol" }), el("dd", { text: connector.protocol }),
      el("dt", { text: "Authentication" }), el("dd", { text: authLabel(connector.auth_type) }),
      connector.url ? [el("dt", { text: "Upstream URL" }), el("dd", {}, el("code", { text: connector.url }))] : null,
      el("dt", { text: "Endpoint" }), el("dd", {}, el("code", { id: "connector-endpoint", text: endpoint })),
    ),
    el("p", { class: "hint", text: how }),
    connector.context ? [el("h3", { text: "Context for agents" }), el("pre", { class: "context", text: connector.context })] : null,
  ].flat().filter(Boolean));
}

export async function connectorsPage() {
  const list = document.getElementById("connector-list");
  const detailRoot = document.getElementById("connector-detail");
  const status = document.getElementById("connect-status");
  let data;
  try { data = await api("/api/connectors"); } catch (error) {
    list.replaceChildren(el("li", { class: "error", role: "alert", text: error.message }));
    return;
  }
  if (!data.connectors.length) {
    list.replaceChildren(el("li", { class: "empty", text: "No connectors are configured." }));
    return;
  }
  const items = data.connectors.map((connector) => {
    const select = () => {
      for (const other of list.querySelectorAll("[aria-current]")) other.removeAttribute("aria-current");
      item.querySelector("button.select").setAttribute("aria-current", "true");
      detail(detailRoot, connector, status);
    };
    const item = el("li", { class: "connector", "data-connector": connector.id, "data-status": connector.status },
      el("button", { type: "button", class: "select", onclick: select },
        el("span", { class: "name", text: connector.id }),
        el("span", { class: "meta", text: connector.description || `${connector.protocol} · ${authLabel(connector.auth_type)}` })),
      el("span", { class: `status status-${connector.status}`, text: connector.status_label }),
      actionButton(connector, status),
    );
    item.select = select;
    return item;
  });
  list.replaceChildren(...items);
  const wanted = new URLSearchParams(location.search).get("connector");
  (items.find((i) => i.dataset.connector === wanted) || items[0]).select();
}
