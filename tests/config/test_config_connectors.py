"""Validation of `connectors.servers` and the deprecated `mcp` section."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from irisgate.config.model import ConfigIssue
from irisgate.config.schema import Analysis

Check = Callable[..., Analysis]
IssueAt = Callable[[list[ConfigIssue], str], ConfigIssue]
LineWith = Callable[[str, str], int]

URL = '"url": "https://mcp.example.com/mcp"'


def connector_config(*fields: str, connector_id: str = "crm") -> str:
    """A config with one connector whose members are `fields`, one per line."""
    body = ",\n".join(f"      {field}" for field in fields)
    return (
        '{\n  "connectors": {"servers": {\n'
        f'    "{connector_id}": {{\n{body}\n    }},\n'
        "  }},\n}\n"
    )


def auth(auth_fields: str) -> tuple[str, ...]:
    return ('"protocol": "mcp"', URL, f'"auth": {{{auth_fields}}}')


@pytest.mark.parametrize(
    ("fields", "path", "needle", "message"),
    [
        ((URL,), "connectors.servers.crm.protocol", '"crm"', "is required (mcp or http)"),
        (
            ('"protocol": "grpc"', URL),
            "connectors.servers.crm.protocol",
            '"protocol"',
            '"grpc" is not one of: mcp, http',
        ),
        (
            ('"protocol": "mcp"', URL, '"transport": "websocket"'),
            "connectors.servers.crm.transport",
            '"transport"',
            '"websocket" is not one of: streamable_http, sse',
        ),
        (
            ('"protocol": "http"', URL, '"transport": "sse"'),
            "connectors.servers.crm.transport",
            '"transport"',
            "is for mcp connectors only",
        ),
        (
            ('"protocol": "mcp"', '"url": "mcp.example.com"'),
            "connectors.servers.crm.url",
            '"url"',
            '"mcp.example.com" must be an absolute http(s) URL',
        ),
        (
            auth('"token": "t"'),
            "connectors.servers.crm.auth.type",
            '"auth"',
            "is required (one of: none, bearer_token, api_key, basic,",
        ),
        (
            auth('"type": "kerberos"'),
            "connectors.servers.crm.auth.type",
            '"auth"',
            '"kerberos" is not one of: none, bearer_token, api_key, basic,',
        ),
        (
            auth('"type": "bearer_token"'),
            "connectors.servers.crm.auth.token",
            '"auth"',
            "is required (or secret)",
        ),
        (
            auth('"type": "bearer_token", "token": ""'),
            "connectors.servers.crm.auth.token",
            '"auth"',
            "must not be empty",
        ),
        (
            auth('"type": "api_key", "secret": "s", "in": "header"'),
            "connectors.servers.crm.auth.name",
            '"auth"',
            "is required",
        ),
        (
            auth('"type": "api_key", "secret": "s", "name": "X-Key", "in": "cookie"'),
            "connectors.servers.crm.auth.in",
            '"auth"',
            '"cookie" is not one of: header, query',
        ),
        (
            auth('"type": "api_key", "name": "X-Key", "in": "query"'),
            "connectors.servers.crm.auth.secret",
            '"auth"',
            "is required (or key)",
        ),
        (
            auth('"type": "basic", "username": "bot"'),
            "connectors.servers.crm.auth.password",
            '"auth"',
            "is required",
        ),
        (
            auth('"type": "oauth2_client_credentials", "client_id": "c", "client_secret": "s"'),
            "connectors.servers.crm.auth.token_url",
            '"auth"',
            "is required (a non-empty string)",
        ),
        (
            auth(
                '"type": "oauth2_client_credentials", "token_url": "/token",'
                ' "client_id": "c", "client_secret": "s"'
            ),
            "connectors.servers.crm.auth.token_url",
            '"auth"',
            '"/token" must be an absolute http(s) URL',
        ),
        (
            auth(
                '"type": "oauth2_client_credentials", "token_url": "https://a.example/t",'
                ' "client_id": "c", "client_secret": "s", "scopes": "read"'
            ),
            "connectors.servers.crm.auth.scopes",
            '"auth"',
            "must be a list of strings, not a string",
        ),
        (
            auth(
                '"type": "oauth2_authorization_code", "token_url": "https://a.example/t",'
                ' "client_id": "c"'
            ),
            "connectors.servers.crm.auth.auth_url",
            '"auth"',
            "is required (or authorization_url)",
        ),
        (
            ('"protocol": "mcp"', URL, '"auth": "bearer"'),
            "connectors.servers.crm.auth",
            '"auth"',
            "must be an object, not a string",
        ),
    ],
)
def test_connector_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    fields: tuple[str, ...],
    path: str,
    needle: str,
    message: str,
) -> None:
    text = connector_config(*fields)
    analysis = check(text)
    assert analysis.config is None
    issue = issue_at(analysis.errors, path)
    assert message in issue.message
    assert issue.line == line_with(text, needle)


@pytest.mark.parametrize("connector_id", ["my-crm", "crm_2", "2crm"])
def test_connector_id_pattern(check: Check, issue_at: IssueAt, connector_id: str) -> None:
    text = connector_config('"protocol": "mcp"', URL, connector_id=connector_id)
    issue = issue_at(check(text).errors, f"connectors.servers.{connector_id}")
    assert issue.line == 3
    assert "must start with a letter and hold only letters and digits" in issue.message


def test_missing_url_is_a_warning_and_the_connector_loads(check: Check, issue_at: IssueAt) -> None:
    analysis = check(connector_config('"protocol": "mcp"'))
    assert analysis.errors == []
    warning = issue_at(analysis.warnings, "connectors.servers.crm.url")
    assert warning.line == 3
    assert "missing" in warning.message
    assert analysis.config is not None
    assert analysis.config.connectors["crm"].url == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/mcp",
        "http://127.0.0.1/mcp",
        "http://[::1]:9000/mcp",
        "http://169.254.169.254/latest",
        "http://api.localhost/mcp",
    ],
)
def test_local_urls_warn(check: Check, issue_at: IssueAt, line_with: LineWith, url: str) -> None:
    text = connector_config('"protocol": "mcp"', f'"url": "{url}"')
    analysis = check(text)
    assert analysis.errors == []
    warning = issue_at(analysis.warnings, "connectors.servers.crm.url")
    assert "loopback or link-local" in warning.message
    assert warning.line == line_with(text, '"url"')


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5/mcp", "http://100.101.102.103/mcp", "https://crm.example.ts.net/mcp"],
)
def test_private_and_tailnet_urls_are_fine(check: Check, url: str) -> None:
    analysis = check(connector_config('"protocol": "mcp"', f'"url": "{url}"'))
    assert analysis.errors == []
    assert analysis.warnings == []


def test_connectors_are_converted(check: Check) -> None:
    text = (
        '{"connectors": {"servers": {\n'
        '  "github": {"protocol": "mcp", "url": "https://api.githubcopilot.com/mcp/",\n'
        '             "description": "GitHub", "context": "repos", "labels": ["restricted"],\n'
        '             "auth": {"type": "bearer_token", "secret": "env:GH_TOKEN"}},\n'
        '  "jira": {"protocol": "http", "url": "https://org.atlassian.net/rest/api/3/",\n'
        '           "provider": "Atlassian",\n'
        '           "auth": {"type": "api_key", "key": "k1", "name": "X-Key", "in": "query"}},\n'
        '  "sf": {"protocol": "mcp", "url": "https://sf.example.com/mcp",\n'
        '         "auth": {"type": "oauth2_authorization_code",\n'
        '                  "authorization_url": "https://login.example.com/authorize",\n'
        '                  "token_url": "https://login.example.com/token",\n'
        '                  "client_id": "irisgate", "scopes": ["api", "refresh_token"]}},\n'
        '  "docs": {"protocol": "mcp", "url": "https://docs.example.com/mcp",\n'
        '           "auth": {"type": "oauth2_dcr"}},\n'
        '  "old": {"protocol": "mcp", "url": "https://old.example.com/sse", "transport": "sse"},\n'
        '  "open": {"protocol": "http", "url": "https://open.example.com"},\n'
        "}}}"
    )
    analysis = check(text, {"GH_TOKEN": "ghp_1"})
    assert analysis.errors == []
    assert analysis.warnings == []
    assert analysis.config is not None
    connectors = analysis.config.connectors
    github = connectors["github"]
    assert (github.protocol, github.url) == ("mcp", "https://api.githubcopilot.com/mcp/")
    assert (github.description, github.context, github.provider) == ("GitHub", "repos", "Custom")
    assert github.auth.type == "bearer_token"
    assert github.auth.secrets["secret"].value == "ghp_1"
    jira = connectors["jira"]
    assert jira.url == "https://org.atlassian.net/rest/api/3"  # HTTP base: trailing / dropped
    assert jira.provider == "Atlassian"
    assert jira.auth.fields == {"name": "X-Key", "in": "query"}
    assert jira.auth.secrets["key"].value == "k1"
    sf = connectors["sf"]
    assert sf.auth.type == "oauth2_authorization_code"
    assert sf.auth.fields["scopes"] == ["api", "refresh_token"]
    assert sf.auth.secrets == {}
    assert connectors["docs"].auth.type == "oauth2_dynamic_client_registration"
    assert connectors["open"].auth.type == "none"
    assert connectors["old"].transport == "sse"
    assert connectors["docs"].transport == "streamable_http"


def test_unset_connector_secret_warns(check: Check, issue_at: IssueAt) -> None:
    analysis = check(
        connector_config(*auth('"type": "basic", "username": "u", "password": "env:JIRA_PW"'))
    )
    assert analysis.errors == []
    warning = issue_at(analysis.warnings, "connectors.servers.crm.auth.password")
    assert "env:JIRA_PW is not set" in warning.message


def test_unknown_connector_and_auth_keys_warn(check: Check, issue_at: IssueAt) -> None:
    analysis = check(
        connector_config(
            '"protocol": "mcp"', URL, '"timeout": 5', '"auth": {"type": "none", "token": "x"}'
        )
    )
    assert analysis.errors == []
    assert "unknown key" in issue_at(analysis.warnings, "connectors.servers.crm.timeout").message
    assert "unknown key" in issue_at(analysis.warnings, "connectors.servers.crm.auth.token").message


def test_deprecated_mcp_section_warns_and_is_kept(
    check: Check, issue_at: IssueAt, line_with: LineWith
) -> None:
    text = (
        "{\n"
        '  "mcp": {"servers": {"local": {"url": "http://mcp.example.ts.net/v1/mcp"}},\n'
        '          "accept_registrations": true},\n'
        "}"
    )
    analysis = check(text)
    assert analysis.errors == []
    warning = issue_at(analysis.warnings, "mcp")
    assert warning.line == 2
    assert "deprecated" in warning.message
    assert analysis.config is not None
    assert analysis.config.raw["mcp"]["servers"]["local"]["url"].endswith("/v1/mcp")
    assert analysis.config.connectors == {}


def test_deprecated_mcp_url_must_be_a_string(check: Check, issue_at: IssueAt) -> None:
    text = '{\n  "mcp": {"servers": {\n    "local": {"url": 8080}}}\n}'
    issue = issue_at(check(text).errors, "mcp.servers.local.url")
    assert (issue.line, issue.message) == (3, "must be a string, not a number")
