"""The dashboard's sidebar as data: groups of pages, in order, and who may see each.

Adding a page to the sidebar is one `Page(...)` line here; the shell, the Ctrl/Cmd+K search
and the access check of `irisgate.web.pages` all read this table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Page:
    key: str  # stable id, also the template name's stem
    title: str
    path: str  # under /ui/ (an external app's own path when `new_tab`)
    admin: bool = False
    #: Another app (the chat at /chat/): opens in a new tab and is not one of the
    #: dashboard's pages (no route or template under /ui/).
    new_tab: bool = False
    #: Listed only for viewers with chat enabled (the Chat link, Chat activity).
    chat: bool = False

    @property
    def href(self) -> str:
        """The sidebar's link: admin pages at Aperture's `/admin/…` (`path` works too)."""
        if self.path.startswith("/ui/admin/"):
            return "/admin/" + self.path.removeprefix("/ui/admin/")
        return self.path


@dataclass(frozen=True, slots=True)
class Group:
    title: str
    pages: tuple[Page, ...]
    admin: bool = False


NAV: tuple[Group, ...] = (
    Group(
        "My irisgate",
        (
            Page("dashboard", "My Dashboard", "/ui/dashboard"),
            Page("notifications", "Notifications", "/ui/notifications"),
            Page("agent_config", "Agent Config", "/ui/agent-config"),
            Page("keys", "API Keys", "/ui/keys"),
            Page("models", "Models", "/ui/models"),
            Page("connectors", "Connectors", "/ui/connectors"),
            Page("chat", "Chat", "/chat/", new_tab=True, chat=True),
        ),
    ),
    Group(
        "Usage & Adoption",
        (
            Page("usage", "Usage Overview", "/ui/usage"),
            Page("tool_use", "Tool Use", "/ui/tool-use"),
            Page("user_activity", "User Activity", "/ui/admin/user-activity", admin=True),
            Page("model_activity", "Model Activity", "/ui/admin/model-activity", admin=True),
            Page("agent_activity", "Agent Activity", "/ui/admin/agent-activity", admin=True),
            Page(
                "chat_activity", "Chat Activity", "/ui/admin/chat-activity", admin=True, chat=True
            ),
        ),
    ),
    Group(
        "Security",
        (Page("sessions", "Session Logs", "/ui/admin/sessions", admin=True),),
        admin=True,
    ),
    Group(
        "Administration",
        (
            Page("quotas", "Quotas", "/ui/admin/quotas", admin=True),
            Page("providers", "Providers", "/ui/admin/providers", admin=True),
            Page("settings", "Settings", "/ui/admin/settings", admin=True),
            Page("connectors_admin", "Connector Settings", "/ui/admin/connectors", admin=True),
        ),
        admin=True,
    ),
    Group(
        "Reference",
        (
            Page("integrations", "Integrations", "/ui/admin/integrations", admin=True),
            Page("api_docs", "API Docs", "/ui/admin/api-docs", admin=True),
        ),
        admin=True,
    ),
)

PAGES: dict[str, Page] = {
    page.key: page for group in NAV for page in group.pages if not page.new_tab
}


def visible(is_admin: bool, chat: bool = False) -> list[Group]:
    """The groups and pages this viewer sees (empty groups left out); the Chat link only
    when chat is enabled for them."""
    groups = []
    for group in NAV:
        pages = tuple(
            p for p in group.pages if (is_admin or not p.admin) and (chat or not p.new_tab)
        )
        if pages and (is_admin or not group.admin):
            groups.append(Group(group.title, pages, group.admin))
    return groups
