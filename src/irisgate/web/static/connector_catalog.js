// Common connectors offered when an admin adds one (Connector Settings › Add connector): each
// fills the form with the server's public URL, its transport and the auth type it takes. The
// admin still reviews the id and adds the secret (a token) where one is needed; servers that
// register their clients themselves need nothing more (OAuth dynamic client registration).
export const CATALOG = [
  { key: "github", name: "GitHub", id: "github", protocol: "mcp", url: "https://api.githubcopilot.com/mcp/",
    provider: "GitHub", description: "Repositories, issues and pull requests", auth: { type: "bearer_token" },
    hint: "a personal access token" },
  { key: "linear", name: "Linear", id: "linear", protocol: "mcp", url: "https://mcp.linear.app/mcp",
    provider: "Linear", description: "Issues, projects and cycles", auth: { type: "oauth2_dynamic_client_registration" } },
  { key: "notion", name: "Notion", id: "notion", protocol: "mcp", url: "https://mcp.notion.com/mcp",
    provider: "Notion", description: "Pages and databases", auth: { type: "oauth2_dynamic_client_registration" } },
  { key: "sentry", name: "Sentry", id: "sentry", protocol: "mcp", url: "https://mcp.sentry.dev/mcp",
    provider: "Sentry", description: "Errors and performance issues", auth: { type: "oauth2_dynamic_client_registration" } },
  { key: "atlassian", name: "Atlassian (Jira, Confluence)", id: "atlassian", protocol: "mcp",
    url: "https://mcp.atlassian.com/v1/sse", transport: "sse", provider: "Atlassian",
    description: "Jira issues and Confluence pages", auth: { type: "oauth2_dynamic_client_registration" } },
  { key: "asana", name: "Asana", id: "asana", protocol: "mcp", url: "https://mcp.asana.com/sse", transport: "sse",
    provider: "Asana", description: "Tasks and projects", auth: { type: "oauth2_dynamic_client_registration" } },
  { key: "stripe", name: "Stripe", id: "stripe", protocol: "mcp", url: "https://mcp.stripe.com",
    provider: "Stripe", description: "Payments, customers and invoices", auth: { type: "bearer_token" },
    hint: "a restricted API key" },
  { key: "huggingface", name: "Hugging Face", id: "huggingface", protocol: "mcp", url: "https://huggingface.co/mcp",
    provider: "Hugging Face", description: "Models, datasets and Spaces", auth: { type: "bearer_token" },
    hint: "an access token" },
];
