"""The config a new instance starts with, as Aperture ships it (reference §2.11).

Everyone is admin and may use every model until an admin narrows the grants; the provider
keys come from the environment, so a provider whose variable is unset simply stays out of
routing (with a warning) instead of failing the start.
"""

from __future__ import annotations

DEFAULT_CONFIG_TEXT = """\
// irisgate configuration (Aperture-compatible HuJSON: comments and trailing commas allowed).
// Edit it in the dashboard (Administration > Configuration) or check a file with
//   irisgate config check FILE
{
  // Upstream LLM APIs. The key of each entry is the provider id: it is the first segment of
  // the "provider/model" names that grants match.
  "providers": {
    "openai": {
      "baseurl": "https://api.openai.com",
      // A literal key, "env:NAME" (environment variable) or "file:PATH" (file content).
      // While OPENAI_API_KEY is unset this provider stays out of routing.
      "apikey": "env:OPENAI_API_KEY",
      "authorization": "bearer",
      "compatibility": {
        "openai_chat": true,
        "openai_responses": true,
      },
      "models": ["gpt-5.1", "gpt-5-mini", "gpt-4.1", "gpt-4o-mini"],
    },
    "anthropic": {
      "baseurl": "https://api.anthropic.com",
      "apikey": "env:ANTHROPIC_API_KEY",
      "authorization": "x-api-key",
      "compatibility": {
        "anthropic_messages": true,
      },
      "models": ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"],
    },
  },

  // Who may do what. Every grant whose "src" matches the caller adds its capabilities.
  // This default makes EVERYONE who can reach irisgate an admin with access to every model:
  // narrow "src" to your admins (e.g. "alice@example.com", "group:ai-admins") and add a
  // grant with "role": "user" for everyone else.
  "grants": [
    {
      "src": ["*"],
      "app": {
        "tailscale.com/cap/aperture": [
          { "role": "admin" },
          { "models": "**" },
        ],
      },
    },
  ],
}
"""
