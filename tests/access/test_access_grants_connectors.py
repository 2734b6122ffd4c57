"""Connector globs in grants: `<id>/<tool>` for MCP tools, `<id>` or `<id>/<path>` for HTTP."""

from __future__ import annotations

import pytest

from irisgate.access.grants import Access
from irisgate.config.model import Capability


def access(*globs: str) -> Access:
    return Access(role="user", capabilities=(Capability(role="user", connectors=globs),))


@pytest.mark.parametrize(
    ("globs", "connector", "tool", "allowed"),
    [
        (("github/**",), "github", "search", True),
        (("github/*",), "github", "search", True),
        (("github/search",), "github", "issues", False),
        (("*/search",), "jira", "search", True),
        (("*/search",), "jira", "create", False),
        (("**",), "anything", "tool", True),
        (("gith*/*",), "github", "search", True),
        (("github",), "github", "search", False),  # a bare id is the HTTP form
        ((), "github", "search", False),
    ],
)
def test_tool_globs(globs: tuple[str, ...], connector: str, tool: str, allowed: bool) -> None:
    assert access(*globs).may_use_connector_item(connector, tool) is allowed


@pytest.mark.parametrize(
    ("globs", "connector", "allowed"),
    [
        (("github/search",), "github", True),
        (("*/search",), "jira", True),
        (("git*/x",), "github", True),
        (("salesforce/*",), "github", False),
        (("**",), "github", True),
        ((), "github", False),
    ],
)
def test_a_connector_is_reached_by_any_glob_on_its_id(
    globs: tuple[str, ...], connector: str, allowed: bool
) -> None:
    assert access(*globs).may_use_connector(connector) is allowed


@pytest.mark.parametrize(
    ("globs", "path", "allowed"),
    [
        (("api",), "v1/items/7", True),
        (("api/**",), "v1/items/7", True),
        (("api/v1/*",), "v1/items", True),
        (("api/v1/*",), "v2/items", False),
        (("other",), "v1/items", False),
    ],
)
def test_http_paths(globs: tuple[str, ...], path: str, allowed: bool) -> None:
    assert access(*globs).may_use_http_path("api", path) is allowed
