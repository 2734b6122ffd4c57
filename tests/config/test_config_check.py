"""The default config, the full Aperture example, and `config check` output."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from irisgate.config.check import check_text, format_issues, has_errors
from irisgate.config.defaults import DEFAULT_CONFIG_TEXT
from irisgate.config.hujson import parse
from irisgate.config.model import ConfigError, ConfigIssue
from irisgate.config.schema import Analysis, build_config
from irisgate.config.secrets import REDACTED, mask_text, unmask

Check = Callable[..., Analysis]

KEYS = {"OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-ant"}


def test_default_config_builds_without_errors() -> None:
    config, warnings = build_config(DEFAULT_CONFIG_TEXT, KEYS)
    assert warnings == []
    assert set(config.providers) == {"openai", "anthropic"}
    openai, anthropic = config.providers["openai"], config.providers["anthropic"]
    assert openai.baseurl == "https://api.openai.com"
    assert openai.apikey.ref == "env:OPENAI_API_KEY"
    assert openai.apikey.value == "sk-openai"
    assert openai.compatibility == {"openai_chat": True, "openai_responses": True}
    assert set(openai.models) >= {"gpt-5.1", "gpt-5-mini", "gpt-4.1", "gpt-4o-mini"}
    assert anthropic.authorization == "x-api-key"
    assert anthropic.compatibility == {"anthropic_messages": True}
    assert set(anthropic.models) >= {"claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"}
    (grant,) = config.grants
    assert grant.src == ("*",)
    assert [cap.role for cap in grant.capabilities] == ["admin", None]
    assert grant.capabilities[1].models == ("**",)
    assert "//" in DEFAULT_CONFIG_TEXT  # it explains itself


def test_default_config_without_keys_only_warns() -> None:
    config, warnings = build_config(DEFAULT_CONFIG_TEXT, {})
    assert [w.path for w in warnings] == ["providers.openai.apikey", "providers.anthropic.apikey"]
    assert not config.providers["openai"].enabled
    assert config.providers["anthropic"].unavailable_reason == (
        "apikey env:ANTHROPIC_API_KEY is not set"
    )


def test_default_config_has_no_literal_secret_to_mask() -> None:
    assert mask_text(DEFAULT_CONFIG_TEXT) == DEFAULT_CONFIG_TEXT


def test_full_aperture_example_loads_unchanged(example_text: str) -> None:
    config, warnings = build_config(example_text, {})
    # the example's key file is a placeholder, not JSON: loaded, but kept out of routing
    assert [(w.path, w.severity) for w in warnings] == [
        ("providers.anthropic.apikey", "warning"),  # keyid: needs Aperture's key store
        ("providers.vertex.apikey", "warning"),
    ]
    assert list(config.providers) == [
        "anthropic",
        "openai",
        "gemini",
        "vertex",
        "bedrock",
        "openrouter",
        "dgxspark",
    ]
    assert config.providers["openai"].baseurl == "https://api.openai.com"
    assert config.providers["openrouter"].baseurl == "https://openrouter.ai/api"
    assert config.providers["vertex"].apikey.value == "keyfile::{...service account json...}"
    assert config.providers["vertex"].unavailable_reason == (
        "keyfile:: service account is not valid JSON"
    )
    assert config.providers["bedrock"].cost_basis == "bedrock-us"
    assert config.providers["dgxspark"].compatibility == {"openai_chat": True}
    assert config.providers["dgxspark"].enabled  # no key needed for a self-hosted server
    assert [g.src for g in config.grants] == [
        ("alice@example.com", "group:aperture-admins"),
        ("*",),
    ]
    assert config.grants[0].capabilities[1].read_metrics
    assert config.quotas["team-monthly"].rate_period_seconds == 30 * 86400
    assert config.hooks["ssn-scrubber"].timeout_seconds == 0.5
    assert config.s3_exporter is not None
    assert config.s3_exporter.limit == 2000
    assert config.connectors["jira"].auth.type == "basic"
    assert config.database.retention.duration_seconds == 720 * 3600
    assert config.raw == parse(example_text).value


def test_full_example_secrets_mask_and_restore(example_text: str) -> None:
    masked = mask_text(example_text)
    assert masked.count(REDACTED) == 10  # 5 providers (one keyid:), 1 hook, 2 S3, 2 connectors
    assert "sk-or-..." not in masked
    assert "ghp_..." not in masked
    assert "// [INF] token field name" in masked
    assert unmask(masked, example_text) == example_text


def test_check_text_returns_errors_and_warnings_in_file_order() -> None:
    text = (
        "{\n"
        '  "chat_models": [],\n'
        '  "providers": {"p": {"baseurl": "api.example.com", "models": ["m"]}},\n'
        '  "quotas": {"q": {"capacity": "$0", "rate": "$1/day"}},\n'
        "}\n"
    )
    issues = check_text(text, {})
    assert [(i.line, i.severity, i.path) for i in issues] == [
        (2, "warning", "chat_models"),
        (3, "error", "providers.p.baseurl"),
        (4, "error", "quotas.q.capacity"),
    ]
    assert has_errors(issues)
    assert not has_errors([issues[0]])


def test_check_text_turns_a_syntax_error_into_one_issue() -> None:
    issues = check_text('{\n  "providers": {\n    "p": "x"\n', {})
    assert len(issues) == 1
    assert issues[0].line == 2  # the innermost object left open
    assert issues[0].message == "syntax error at column 16: unterminated object: missing '}'"


def test_check_text_of_clean_files_is_empty(example_text: str) -> None:
    issues = check_text(example_text, {})
    assert [(i.path, i.line) for i in issues] == [
        ("providers.anthropic.apikey", 7),  # keyid: (Aperture's key store)
        ("providers.vertex.apikey", 27),  # placeholder
    ]
    assert not has_errors(issues)
    assert check_text(DEFAULT_CONFIG_TEXT, KEYS) == []


def test_format_issues() -> None:
    issues = [
        ConfigIssue(
            "providers.openai.baseurl", '"api.openai.com" must be an absolute http(s) URL', 12
        ),
        ConfigIssue("chat_models", "unknown key, ignored", 30, "warning"),
        ConfigIssue("", "syntax error at column 3: unterminated string", 7),
        ConfigIssue("grants", "no line known", None),
    ]
    assert format_issues("config.hujson", issues).splitlines() == [
        'config.hujson:12: providers.openai.baseurl: "api.openai.com" must be an absolute'
        " http(s) URL",
        "config.hujson:30: warning: chat_models: unknown key, ignored",
        "config.hujson:7: syntax error at column 3: unterminated string",
        "config.hujson: grants: no line known",
    ]
    assert format_issues("config.hujson", []) == ""


def test_build_config_raises_every_error_including_syntax() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config('{"providers": {"a": {}, "b": {}}}', {})
    assert [i.path for i in caught.value.issues] == [
        "providers.a.baseurl",
        "providers.a.models",
        "providers.b.baseurl",
        "providers.b.models",
    ]
    assert all(i.severity == "error" for i in caught.value.issues)
    with pytest.raises(ConfigError) as caught:
        build_config("{,}", {})
    assert caught.value.issues[0].line == 1
    assert caught.value.issues[0].message.startswith("syntax error at column 2")


def test_check_reports_keyid_references_with_what_to_write_instead() -> None:
    text = (
        "{\n"
        '  "providers": {\n'
        '    "a": {"baseurl": "https://api.anthropic.com", "apikey": "keyid:anthropic-prod",\n'
        '          "models": ["m"]},\n'
        '    "b": {"baseurl": "https://b.example", "apikey": "keyid:b", "models": ["m"],\n'
        '          "auth_mode": "passthrough"},\n'
        "  },\n"
        "}\n"
    )
    issues = check_text(text, {})
    assert [(i.line, i.severity, i.path) for i in issues] == [
        (3, "warning", "providers.a.apikey"),
        (5, "warning", "providers.b.apikey"),
    ]
    assert "keyid:anthropic-prod refers to Aperture's hosted key store" in issues[0].message
    assert "env:NAME" in issues[0].message and "file:PATH" in issues[0].message
    config, _ = build_config(text, {})
    assert config.providers["a"].apikey.value is None  # never the reference itself
    assert not config.providers["a"].enabled
    assert config.providers["b"].enabled  # passthrough: the caller's own key is used
    assert mask_text(text) == text  # a reference is not a secret


def test_check_warns_that_node_buckets_are_per_user_without_a_node() -> None:
    text = '{\n  "quotas": {\n    "device:<node>": {"capacity": "$1", "rate": "$1/day"},\n  },\n}\n'
    [issue] = check_text(text, {})
    assert (issue.line, issue.severity) == (3, "warning")
    assert "user:LOGIN" in issue.message and "serve" in issue.message
