// Starts the page's own module. The pages' Content-Security-Policy allows scripts only from
// the gateway's files, never inline, so a template names what to run and with what instead
// of writing a script: <script type="module" src="/ui/static/start.js" data-start="NAME"
// data-args='[JSON]'>. Arguments are data (JSON), never code. The modules are imported
// statically, so a page starts as soon as an inline module would have.
import { notificationsPage } from "/ui/static/alerts.js";
import { chatActivityPage } from "/ui/static/chat_activity.js";
import { connectorEditor } from "/ui/static/connector_editor.js";
import { connectorsPage } from "/ui/static/connectors.js";
import {
  activityPage,
  apiDocsPage,
  dashboardPage,
  modelsPage,
  sessionsPage,
  usagePage,
  userActivityPage,
  userPicker,
} from "/ui/static/pages.js";
import { addQuotaTooltips, myQuotas, quotasPage } from "/ui/static/quotas.js";
import { settingsPage } from "/ui/static/settings.js";
import { copyButtons, tabs } from "/ui/static/shell.js";
import { toolUsePage } from "/ui/static/tool_use.js";
import { keyMaker, keysPage } from "/ui/static/keys.js";

const starts = {
  activity: (endpoint, key) => activityPage(endpoint, key),
  agentConfig: () => {
    tabs();
    copyButtons();
    keyMaker(document.getElementById("agent-key"), "agent off the tailnet");
  },
  keys: (admin, quotas) => keysPage(admin, quotas),
  apiDocs: () => apiDocsPage(),
  chatActivity: () => chatActivityPage(),
  connectors: () => connectorsPage(),
  connectorEditor: () => connectorEditor(),
  integrations: () => copyButtons(),
  dashboard: (subject, own, admin) => {
    dashboardPage(subject);
    if (admin) userPicker();
    if (own) myQuotas();
  },
  notifications: (admin) => notificationsPage(admin),
  models: async () => {
    await addQuotaTooltips();
    modelsPage();
  },
  quotas: () => quotasPage(),
  sessions: () => sessionsPage(),
  settings: (login, options) => settingsPage(login, options),
  toolUse: () => toolUsePage(),
  usage: async (isAdmin) => usagePage(isAdmin),
  userActivity: () => userActivityPage(),
};

for (const script of document.querySelectorAll("script[data-start]")) {
  const start = starts[script.dataset.start];
  if (!start) throw new Error(`no page module named ${script.dataset.start}`);
  await start(...JSON.parse(script.dataset.args || "[]"));
}
