"""Validation of `grants` and translation of the legacy `temp_grants`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from irisgate.config.model import Capability, ConfigIssue, HookRef, QuotaRef
from irisgate.config.schema import Analysis, parse_capability

Check = Callable[..., Analysis]
IssueAt = Callable[[list[ConfigIssue], str], ConfigIssue]
LineWith = Callable[[str, str], int]

CAP = 'grants[0].app["tailscale.com/cap/aperture"]'
DEFINITIONS = """\
  "quotas": {
    "daily:<user>": {"capacity": "$10.00", "rate": "$5.00/day"},
    "team-extra": {"capacity": "$100.00", "rate": "$100.00/month"},
  },
  "hooks": {"scrubber": {"url": "https://guard.example.com/scrub"}},
"""


def grant_config(*capabilities: str, src: str = '["*"]') -> str:
    """A config with quotas, hooks and one grant whose capability objects are given."""
    caps = ",\n".join(f"        {cap}" for cap in capabilities)
    return (
        "{\n"
        + DEFINITIONS
        + '  "grants": [\n'
        + f'    {{\n      "src": {src},\n'
        + '      "app": {"tailscale.com/cap/aperture": [\n'
        + caps
        + "\n      ]},\n    },\n  ],\n}\n"
    )


def only_grant_capabilities(analysis: Analysis) -> tuple[Capability, ...]:
    assert analysis.errors == [], analysis.errors
    assert analysis.config is not None
    assert len(analysis.config.grants) == 1
    return analysis.config.grants[0].capabilities


@pytest.mark.parametrize(
    ("capability", "path", "message"),
    [
        ('{"role": "owner"}', f"{CAP}[0].role", '"owner" is not one of: user, admin'),
        ('{"role": true}', f"{CAP}[0].role", "must be a string, not a boolean"),
        ('{"models": 5}', f"{CAP}[0].models", "must be a glob string or a list of them"),
        ('{"models": ""}', f"{CAP}[0].models", "must not be empty"),
        (
            '{"models": ["openai/**", "anthropic/claude sonnet"]}',
            f"{CAP}[0].models[1]",
            "model glob \"anthropic/claude sonnet\" contains ' '",
        ),
        ('{"models": ["openai/**", 3]}', f"{CAP}[0].models[1]", "must be a string, not a number"),
        (
            '{"quotas": [{"bucket": "weekly:<user>"}]}',
            f"{CAP}[0].quotas[0].bucket",
            '"weekly:<user>" is not defined in quotas (defined: daily:<user>, team-extra)',
        ),
        ('{"quotas": [{}]}', f"{CAP}[0].quotas[0].bucket", "is required"),
        (
            '{"quotas": [{"bucket": "daily:<user>", "overdraft": ["team-extra", "daily:<user>"]}]}',
            f"{CAP}[0].quotas[0].overdraft[1]",
            '"daily:<user>" appears twice in this overdraft chain',
        ),
        (
            '{"quotas": [{"bucket": "daily:<user>", "overdraft": "team-extra"}]}',
            f"{CAP}[0].quotas[0].overdraft",
            "must be a list",
        ),
        (
            '{"quotas": [{"bucket": "daily:<user>", "overdraft": ["team-extra", "org"]}]}',
            f"{CAP}[0].quotas[0].overdraft[1]",
            '"org" is not defined in quotas',
        ),
        ('{"quotas": {"bucket": "x"}}', f"{CAP}[0].quotas", "must be a list of objects"),
        (
            '{"send_hooks": [{"name": "pii", "events": ["pre_request"]}]}',
            f"{CAP}[0].send_hooks[0].name",
            '"pii" is not defined in hooks (defined: scrubber)',
        ),
        (
            '{"send_hooks": [{"name": "scrubber", "events": ["pre_request", "post_request"]}]}',
            f"{CAP}[0].send_hooks[0].events[1]",
            '"post_request" is not one of: pre_request, entire_request, tool_call_entire_request',
        ),
        (
            '{"send_hooks": [{"name": "scrubber", "events": ["pre_request"], "send": ["body"]}]}',
            f"{CAP}[0].send_hooks[0].send[0]",
            '"body" is not one of: request_body, response_body, raw_responses, user_message,',
        ),
        ('{"add_headers": ["Host: x"]}', f"{CAP}[0].add_headers[0]", 'header "Host" cannot'),
        ('{"connectors": "github/**"}', f"{CAP}[0].connectors", "must be a list of strings"),
        ('{"enable_chat_ui": "no"}', f"{CAP}[0].enable_chat_ui", "must be a boolean"),
        ('{"read_metrics": 1}', f"{CAP}[0].read_metrics", "must be a boolean"),
        ('{"read_pricing": "yes"}', f"{CAP}[0].read_pricing", "must be a boolean"),
        ('{"set_cors": null}', f"{CAP}[0].set_cors", "must be a boolean (true or false), not null"),
        ('{"filterable_headers": "x"}', f"{CAP}[0].filterable_headers", "must be a list"),
        ('{"mcp_tools": ["a/*"]}', f"{CAP}[0].mcp_tools", "must be a glob string, not a list"),
        ('"admin"', f"{CAP}[0]", "must be an object, not a string"),
    ],
)
def test_capability_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    capability: str,
    path: str,
    message: str,
) -> None:
    text = grant_config('{"role": "user"}', capability).replace('        {"role": "user"},\n', "")
    analysis = check(text)
    issue = issue_at([*analysis.errors, *analysis.contained], path)
    assert message in issue.message
    assert issue.line == line_with(text, capability)
    # an undefined bucket only fails the requests that charge it; everything else is fatal
    assert (analysis.config is not None) == ("is not defined in quotas" in message)


@pytest.mark.parametrize(
    ("text", "path", "needle", "message"),
    [
        ('{\n  "grants": {"src": ["*"]}\n}', "grants", '"grants"', "must be a list of grants"),
        ('{\n  "grants": [\n    "alice"\n  ]\n}', "grants[0]", '"alice"', "must be an object"),
        (
            '{\n  "grants": [\n    {"app": {}}\n  ]\n}',
            "grants[0].src",
            '{"app"',
            "is required (a list of strings)",
        ),
        (
            '{\n  "grants": [\n    {"src": [], "app": {}}\n  ]\n}',
            "grants[0].src",
            '"src"',
            "must not be empty",
        ),
        (
            '{\n  "grants": [\n    {"src": ["*"]}\n  ]\n}',
            "grants[0].app",
            '"src"',
            "is required (an object of capability name -> list)",
        ),
        (
            '{\n  "grants": [\n    {"src": ["*"],\n'
            '     "app": {"tailscale.com/cap/aperture": {}}}\n  ]\n}',
            'grants[0].app["tailscale.com/cap/aperture"]',
            '"app"',
            "must be a list, not an object",
        ),
        (
            '{\n  "grants": [\n    {"src": ["*"], "dst": "ai", "app": {}}\n  ]\n}',
            "grants[0].dst",
            '"dst"',
            "must be a list of strings, not a string",
        ),
    ],
)
def test_grant_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    text: str,
    path: str,
    needle: str,
    message: str,
) -> None:
    issue = issue_at(check(text).errors, path)
    assert message in issue.message
    assert issue.line == line_with(text, needle)


def test_capabilities_are_converted(check: Check) -> None:
    text = grant_config(
        '{"role": "admin"}',
        '{"models": "openai/**", "quotas": [{"bucket": "daily:<user>",'
        ' "overdraft": ["team-extra"]}], "add_headers": ["X-Team: ml"]}',
        '{"models": ["anthropic/claude-*", "*/gpt-5", "bedrock/us.anthropic.claude-v1:0"]}',
        '{"send_hooks": [{"name": "scrubber", "events": ["pre_request", "entire_request"],'
        ' "send": ["request_body", "quotas"]}]}',
        '{"connectors": ["github/**"], "enable_chat_ui": false, "read_metrics": true,'
        ' "filterable_headers": ["X-Request-ID"]}',
    )
    caps = only_grant_capabilities(check(text))
    assert caps[0].role == "admin"
    assert caps[1].models == ("openai/**",)
    assert caps[1].quotas == (QuotaRef(bucket="daily:<user>", overdraft=("team-extra",)),)
    assert caps[1].add_headers == (("X-Team", "ml"),)
    assert caps[2].models == ("anthropic/claude-*", "*/gpt-5", "bedrock/us.anthropic.claude-v1:0")
    assert caps[3].send_hooks == (
        HookRef(
            name="scrubber",
            events=("pre_request", "entire_request"),
            send=("request_body", "quotas"),
        ),
    )
    assert caps[4].connectors == ("github/**",)
    assert caps[4].enable_chat_ui is False
    assert caps[4].read_metrics is True
    assert caps[4].filterable_headers == ("x-request-id",)
    assert caps[4].raw == {
        "connectors": ["github/**"],
        "enable_chat_ui": False,
        "read_metrics": True,
        "filterable_headers": ["X-Request-ID"],
    }


def test_kept_capability_keys_stay_in_raw_without_warnings(check: Check) -> None:
    cap = (
        '{"direct_paths": ["/v1/files"], "skills": ["*"], "set_cors": true,'
        ' "cors_paths": ["/v1/**"], "read_pricing": true,'
        ' "Access-Control-Allow-Origin": "https://app.example.com",'
        ' "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "*"}'
    )
    analysis = check(grant_config(cap))
    caps = only_grant_capabilities(analysis)
    assert analysis.warnings == []
    assert caps[0].raw["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert caps[0].raw["direct_paths"] == ["/v1/files"]


def test_deprecated_mcp_keys_warn_and_are_kept(
    check: Check, issue_at: IssueAt, line_with: LineWith
) -> None:
    text = grant_config('{"mcp_tools": "local/*", "mcp_resources": "**"}')
    analysis = check(text)
    caps = only_grant_capabilities(analysis)
    warning = issue_at(analysis.warnings, f"{CAP}[0].mcp_tools")
    assert "deprecated" in warning.message
    assert "connectors" in warning.message
    assert warning.line == line_with(text, "mcp_tools")
    assert caps[0].raw["mcp_tools"] == "local/*"


def test_unknown_capability_key_warns(check: Check, issue_at: IssueAt) -> None:
    analysis = check(grant_config('{"role": "user", "portal": false}'))
    assert analysis.errors == []
    assert "unknown key" in issue_at(analysis.warnings, f"{CAP}[0].portal").message


def test_hook_ref_without_events_warns(check: Check, issue_at: IssueAt) -> None:
    analysis = check(grant_config('{"send_hooks": [{"name": "scrubber"}]}'))
    warning = issue_at(analysis.warnings, f"{CAP}[0].send_hooks[0].events")
    assert warning.message == "no events listed: this hook never fires"


def test_other_app_capabilities_are_opaque(check: Check) -> None:
    text = (
        '{"grants": [{"src": ["group:eng"], "dst": ["tag:ai"], "ip": ["tcp:443"], "app": {\n'
        '  "tailscale.com/cap/aperture": [{"role": "user"}],\n'
        '  "mycompany.com/cap/policy": [{"tier": "enterprise"}, {"region": "eu"}],\n'
        "}}]}"
    )
    analysis = check(text)
    assert analysis.errors == []
    assert analysis.warnings == []
    assert analysis.config is not None
    grant = analysis.config.grants[0]
    assert grant.src == ("group:eng",)
    assert grant.opaque == {"mycompany.com/cap/policy": ({"tier": "enterprise"}, {"region": "eu"})}


def test_errors_across_sections_are_reported_together(check: Check) -> None:
    text = (
        "{\n"
        '  "providers": {"p": {"baseurl": "x", "models": ["m"]}},\n'
        '  "grants": [{"src": ["*"], "app": {"tailscale.com/cap/aperture": [\n'
        '    {"role": "root", "quotas": [{"bucket": "nope"}]}]}}],\n'
        '  "quotas": {"q": {"capacity": "ten dollars", "rate": "$1/day"}},\n'
        '  "auto_cost_basis": "yes",\n'
        "}\n"
    )
    analysis = check(text)
    assert [(issue.line, issue.path) for issue in analysis.errors] == [
        (2, "providers.p.baseurl"),
        (4, f"{CAP}[0].role"),
        (6, "auto_cost_basis"),
    ]
    # quota problems are contained: listed (config check fails) but only quotas fail closed
    assert [(issue.line, issue.path) for issue in analysis.contained] == [
        (4, f"{CAP}[0].quotas[0].bucket"),
        (5, "quotas.q.capacity"),
    ]


TEMP_GRANTS = """\
{
  "temp_grants": [
    {"src": ["alice@example.com"],
     "grants": [{"role": "admin"}, {"providers": [{"provider": "*", "model": "*"}]}]},
    {"src": ["*"], "grants": [
      {"role": "user"},
      {"providers": [
        {"provider": "openai", "model": "*"},
        {"provider": "*", "model": "claude-sonnet-4-5"},
        {"provider": "anthropic", "model": "claude-haiku-4-5"},
      ]},
    ]},
  ],
}
"""


def test_temp_grants_are_translated(check: Check, issue_at: IssueAt) -> None:
    analysis = check(TEMP_GRANTS)
    assert analysis.errors == []
    assert analysis.config is not None
    first, second = analysis.config.grants
    assert first.src == ("alice@example.com",)
    assert [c.role for c in first.capabilities] == ["admin", None]
    assert first.capabilities[1].models == ("**",)
    assert second.src == ("*",)
    assert second.capabilities[0].role == "user"
    assert second.capabilities[1].models == (
        "openai/**",
        "*/claude-sonnet-4-5",
        "anthropic/claude-haiku-4-5",
    )
    assert second.capabilities[1].raw["providers"][0] == {"provider": "openai", "model": "*"}
    warning = issue_at(analysis.warnings, "temp_grants")
    assert (warning.line, "legacy" in warning.message) == (2, True)


def test_temp_grants_join_grants(check: Check) -> None:
    text = TEMP_GRANTS.replace(
        '  "temp_grants"',
        '  "grants": [{"src": ["bob@example.com"], "app": {}}],\n  "temp_grants"',
    )
    analysis = check(text)
    assert analysis.config is not None
    assert [g.src for g in analysis.config.grants] == [
        ("bob@example.com",),
        ("alice@example.com",),
        ("*",),
    ]


def test_temp_grant_errors_name_the_legacy_path(
    check: Check, issue_at: IssueAt, line_with: LineWith
) -> None:
    text = (
        "{\n"
        '  "temp_grants": [\n'
        '    {"src": ["*"], "grants": [{"role": "boss"},\n'
        '      {"providers": [{"provider": "openai"}]}]},\n'
        "  ],\n"
        "}\n"
    )
    errors = check(text).errors
    role = issue_at(errors, "temp_grants[0].grants[0].role")
    assert role.line == 3
    assert '"boss" is not one of' in role.message
    model = issue_at(errors, "temp_grants[0].grants[1].providers[0].model")
    assert model.line == line_with(text, '"provider": "openai"')
    assert model.message.startswith("is required")


def test_parse_capability_from_a_capmap() -> None:
    cap = parse_capability({"role": "user", "models": ["openai/*"], "quotas": [{"bucket": "x"}]})
    assert cap is not None
    assert cap.role == "user"
    assert cap.models == ("openai/*",)
    assert cap.quotas == (QuotaRef(bucket="x"),)  # no config to check names against
    assert parse_capability({"role": "superuser"}) is None
    assert parse_capability(["role"]) is None


def test_temp_grant_without_grants_list(check: Check, issue_at: IssueAt) -> None:
    text = '{\n  "temp_grants": [\n    {"src": ["*"]}\n  ]\n}'
    issue = issue_at(check(text).errors, "temp_grants[0].grants")
    assert issue.line == 3
    assert issue.message == "is required (a list of legacy grant objects)"
