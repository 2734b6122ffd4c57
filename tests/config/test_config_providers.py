"""Validation of `providers`: every rule reports its key path, line and cause."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from irisgate.config.model import DEFAULT_COMPATIBILITY, ConfigIssue, CostMapEntry
from irisgate.config.schema import Analysis
from irisgate.config.secrets import SecretSource

Check = Callable[..., Analysis]
IssueAt = Callable[[list[ConfigIssue], str], ConfigIssue]
LineWith = Callable[[str, str], int]


def provider_config(*fields: str, provider_id: str = "p") -> str:
    """A config with one provider whose members are `fields`, one per line (line 3 onwards)."""
    body = ",\n".join(f"      {field}" for field in fields)
    return f'{{\n  "providers": {{\n    "{provider_id}": {{\n{body}\n    }},\n  }},\n}}\n'


BASE = ('"baseurl": "https://llm.example.com"', '"models": ["m1"]')


@pytest.mark.parametrize(
    ("fields", "path", "needle", "message"),
    [
        (
            ('"models": ["m1"]',),
            "providers.p.baseurl",
            '"p": {',
            "is required (an absolute http(s) URL)",
        ),
        (
            ('"baseurl": "api.openai.com"', '"models": ["m1"]'),
            "providers.p.baseurl",
            '"baseurl"',
            '"api.openai.com" must be an absolute http(s) URL',
        ),
        (
            ('"baseurl": "ftp://files.example.com"', '"models": ["m1"]'),
            "providers.p.baseurl",
            '"baseurl"',
            "must be an absolute http(s) URL",
        ),
        (
            ('"baseurl": 42', '"models": ["m1"]'),
            "providers.p.baseurl",
            '"baseurl"',
            "must be a string, not a number",
        ),
        (('"baseurl": "https://x.example"',), "providers.p.models", '"p": {', "is required"),
        (
            ('"baseurl": "https://x.example"', '"models": []'),
            "providers.p.models",
            '"models"',
            "must not be empty",
        ),
        (
            ('"baseurl": "https://x.example"', '"models": "m1"'),
            "providers.p.models",
            '"models"',
            "must be a list of strings, not a string",
        ),
        (
            ('"baseurl": "https://x.example"', '"models": ["m1", 7]'),
            "providers.p.models[1]",
            '"models"',
            "must be a string, not a number",
        ),
        (
            (*BASE, '"authorization": "basic"'),
            "providers.p.authorization",
            '"authorization"',
            '"basic" is not one of: bearer, x-api-key, x-goog-api-key, hec, cf-aig-authorization',
        ),
        (
            (*BASE, '"compatibility": {"openai_chats": true}'),
            "providers.p.compatibility.openai_chats",
            '"compatibility"',
            "unknown compatibility flag (known: openai_chat, openai_responses,",
        ),
        (
            (*BASE, '"compatibility": {"openai_chat": "yes"}'),
            "providers.p.compatibility.openai_chat",
            '"compatibility"',
            "must be a boolean (true or false), not a string",
        ),
        (
            (*BASE, '"compatibility": ["openai_chat"]'),
            "providers.p.compatibility",
            '"compatibility"',
            "must be an object, not a list",
        ),
        (
            (*BASE, '"preference": "high"'),
            "providers.p.preference",
            '"preference"',
            "must be an integer, not a string",
        ),
        (
            (*BASE, '"preference": 1.5'),
            "providers.p.preference",
            '"preference"',
            "must be an integer, not a number",
        ),
        (
            (*BASE, '"disabled": "true"'),
            "providers.p.disabled",
            '"disabled"',
            "must be a boolean (true or false), not a string",
        ),
        (
            (*BASE, '"cost_basis": "azure-us"'),
            "providers.p.cost_basis",
            '"cost_basis"',
            '"azure-us" is not one of: anthropic, openai,',
        ),
        (
            (*BASE, '"model_cost_map": [{"as": "claude-opus-4-6"}]'),
            "providers.p.model_cost_map[0].match",
            '"model_cost_map"',
            "is required (a model glob)",
        ),
        (
            (*BASE, '"model_cost_map": [{"match": "x-*", "as": "y", "adjustment": 0}]'),
            "providers.p.model_cost_map[0].adjustment",
            '"model_cost_map"',
            "must be greater than 0, not 0",
        ),
        (
            (*BASE, '"model_cost_map": {"match": "x"}'),
            "providers.p.model_cost_map",
            '"model_cost_map"',
            "must be a list of objects, not an object",
        ),
        (
            (*BASE, '"add_headers": ["X-Project demo"]'),
            "providers.p.add_headers[0]",
            '"add_headers"',
            '"X-Project demo" must look like "Header-Name: value"',
        ),
        (
            (*BASE, '"add_headers": ["X-Ok: 1", "X Bad: 2"]'),
            "providers.p.add_headers[1]",
            '"add_headers"',
            '"X Bad" is not a valid header name',
        ),
        (
            (*BASE, '"add_headers": ["Host: evil.example.com"]'),
            "providers.p.add_headers[0]",
            '"add_headers"',
            'header "Host" cannot be set from the config',
        ),
        (
            (*BASE, '"add_headers": ["content-length: 5"]'),
            "providers.p.add_headers[0]",
            '"add_headers"',
            'header "content-length" cannot be set',
        ),
        (
            (*BASE, '"add_headers": ["Transfer-Encoding: chunked"]'),
            "providers.p.add_headers[0]",
            '"add_headers"',
            'header "Transfer-Encoding" cannot be set',
        ),
        (
            (*BASE, '"auth_mode": "forward"'),
            "providers.p.auth_mode",
            '"auth_mode"',
            '"forward" is not one of: "", override, passthrough, none',
        ),
        (
            (*BASE, '"apikey": 12345'),
            "providers.p.apikey",
            '"apikey"',
            "must be a string, not a number",
        ),
    ],
)
def test_provider_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    fields: tuple[str, ...],
    path: str,
    needle: str,
    message: str,
) -> None:
    text = provider_config(*fields)
    analysis = check(text)
    assert analysis.config is None
    issue = issue_at(analysis.errors, path)
    assert message in issue.message
    assert issue.line == line_with(text, needle)
    assert issue.severity == "error"


def test_provider_id_pattern(check: Check, issue_at: IssueAt) -> None:
    text = provider_config(*BASE, provider_id="open.ai")
    issue = issue_at(check(text).errors, 'providers["open.ai"]')
    assert issue.message == "provider id may contain only letters, digits, - and _"
    assert issue.line == 3


def test_providers_must_be_an_object(check: Check, issue_at: IssueAt) -> None:
    issue = issue_at(check('{\n  "providers": []\n}').errors, "providers")
    assert (issue.line, issue.message) == (2, "must be an object, not a list")


def test_valid_provider_fields_are_converted(check: Check) -> None:
    text = provider_config(
        '"baseurl": "https://llm.example.com/api/"',
        '"models": ["m1", "m2"]',
        '"apikey": "sk-1"',
        '"authorization": "x-api-key"',
        '"compatibility": {"anthropic_messages": true, "openai_chat": false}',
        '"name": "My LLM"',
        '"description": "test"',
        '"preference": 5',
        '"disabled": true',
        '"cost_basis": "anthropic"',
        '"model_cost_map": [{"match": "x-*", "as": "y", "adjustment": 1.1},'
        ' {"match": "z", "as": "w"}]',
        '"add_headers": ["X-Project: demo", "X-Empty:"]',
        '"auth_mode": "passthrough"',
    )
    analysis = check(text)
    assert analysis.errors == []
    assert analysis.warnings == []
    assert analysis.config is not None
    provider = analysis.config.providers["p"]
    assert provider.baseurl == "https://llm.example.com/api"
    assert provider.models == ("m1", "m2")
    assert provider.apikey.value == "sk-1"
    assert provider.authorization == "x-api-key"
    assert provider.compatibility == {"anthropic_messages": True, "openai_chat": False}
    assert provider.accepts("anthropic_messages")
    assert not provider.accepts("openai_chat")
    assert (provider.name, provider.description, provider.preference) == ("My LLM", "test", 5)
    assert provider.disabled
    assert not provider.enabled
    assert provider.cost_basis == "anthropic"
    assert provider.model_cost_map == (
        CostMapEntry(match="x-*", as_model="y", adjustment=1.1),
        CostMapEntry(match="z", as_model="w", adjustment=1.0),
    )
    assert provider.add_headers == (("X-Project", "demo"), ("X-Empty", ""))
    assert provider.auth_mode == "passthrough"


def test_provider_defaults(check: Check) -> None:
    analysis = check(provider_config(*BASE))
    assert analysis.config is not None
    provider = analysis.config.providers["p"]
    assert provider.compatibility == DEFAULT_COMPATIBILITY
    assert provider.name == "p"
    assert provider.authorization == "bearer"
    assert provider.auth_mode == "override"
    assert provider.apikey.value == ""
    assert provider.unavailable_reason is None
    assert provider.enabled
    assert provider.cost_basis is None


def test_empty_auth_mode_means_override(check: Check) -> None:
    analysis = check(provider_config(*BASE, '"auth_mode": ""'))
    assert analysis.config is not None
    assert analysis.config.providers["p"].auth_mode == "override"


def test_trailing_v1_is_a_warning_not_an_error(
    check: Check, issue_at: IssueAt, line_with: LineWith
) -> None:
    text = provider_config('"baseurl": "http://gpu.example.ts.net:8000/v1/"', '"models": ["m"]')
    analysis = check(text)
    assert analysis.errors == []
    issue = issue_at(analysis.warnings, "providers.p.baseurl")
    assert issue.severity == "warning"
    assert "ends in /v1" in issue.message
    assert issue.line == line_with(text, "baseurl")
    assert analysis.config is not None
    assert analysis.config.providers["p"].baseurl == "http://gpu.example.ts.net:8000/v1"


def test_unknown_keys_warn_but_upstream_and_tailnet_are_kept(
    check: Check, issue_at: IssueAt, line_with: LineWith
) -> None:
    text = provider_config(*BASE, '"upstream": "x"', '"tailnet": true', '"region": "eu"')
    analysis = check(text)
    assert analysis.errors == []
    issue = issue_at(analysis.warnings, "providers.p.region")
    assert issue.message.startswith("unknown key, ignored")
    assert issue.line == line_with(text, '"region"')
    assert len(analysis.warnings) == 1
    assert analysis.config is not None
    assert analysis.config.raw["providers"]["p"]["upstream"] == "x"


def test_duplicate_model_warns_and_is_listed_once(check: Check, issue_at: IssueAt) -> None:
    analysis = check(provider_config('"baseurl": "https://x.example"', '"models": ["a", "b", "a"]'))
    assert "listed twice" in issue_at(analysis.warnings, "providers.p.models[2]").message
    assert analysis.config is not None
    assert analysis.config.providers["p"].models == ("a", "b")


def test_unset_env_key_keeps_provider_out_of_routing(
    check: Check, issue_at: IssueAt, line_with: LineWith
) -> None:
    text = provider_config(*BASE, '"apikey": "env:OPENAI_API_KEY"')
    analysis = check(text, {})
    assert analysis.errors == []
    assert analysis.config is not None
    provider = analysis.config.providers["p"]
    assert provider.unavailable_reason == "apikey env:OPENAI_API_KEY is not set"
    assert not provider.enabled
    warning = issue_at(analysis.warnings, "providers.p.apikey")
    assert "env:OPENAI_API_KEY is not set" in warning.message
    assert "out of routing" in warning.message
    assert warning.line == line_with(text, '"apikey"')


def test_set_env_key_resolves(check: Check) -> None:
    analysis = check(
        provider_config(*BASE, '"apikey": "env:OPENAI_API_KEY"'), {"OPENAI_API_KEY": "sk"}
    )
    assert analysis.config is not None
    provider = analysis.config.providers["p"]
    assert (provider.apikey.value, provider.enabled, analysis.warnings) == ("sk", True, [])


def test_file_key_resolves_and_unreadable_file_disables(check: Check, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("sk-file\n", encoding="utf-8")
    secrets = SecretSource({}, tmp_path)
    analysis = check(provider_config(*BASE, f'"apikey": "file:{key}"'), secrets)
    assert analysis.config is not None
    assert analysis.config.providers["p"].apikey.value == "sk-file"
    analysis = check(provider_config(*BASE, f'"apikey": "file:{tmp_path}/nope"'), secrets)
    assert analysis.config is not None
    reason = analysis.config.providers["p"].unavailable_reason
    assert reason == f"apikey file:{tmp_path}/nope cannot be read"


def test_file_key_outside_the_secrets_directory_is_an_error(check: Check, tmp_path: Path) -> None:
    analysis = check(provider_config(*BASE, '"apikey": "file:/etc/passwd"'))
    assert analysis.config is None
    assert [(e.path, e.message) for e in analysis.errors] == [
        (
            "providers.p.apikey",
            "file:/etc/passwd is outside the secrets directory /run/secrets (set --secrets-dir"
            " / IRISGATE_SECRETS_DIR to the folder holding the key files)",
        )
    ]


def test_passthrough_provider_does_not_need_its_env_key(check: Check) -> None:
    analysis = check(provider_config(*BASE, '"apikey": "env:UNSET"', '"auth_mode": "passthrough"'))
    assert analysis.config is not None
    assert analysis.config.providers["p"].enabled
    assert analysis.warnings == []


def test_several_provider_errors_are_reported_together(check: Check) -> None:
    text = provider_config(
        '"baseurl": "nope"', '"models": []', '"authorization": "magic"', '"preference": "x"'
    )
    paths = [issue.path for issue in check(text).errors]
    assert paths == [
        "providers.p.baseurl",
        "providers.p.models",
        "providers.p.authorization",
        "providers.p.preference",
    ]


def test_literal_empty_key_is_fine_for_self_hosted_servers(check: Check) -> None:
    analysis = check(provider_config(*BASE, '"apikey": ""', '"auth_mode": "override"'))
    assert analysis.errors == []
    assert analysis.warnings == []
    assert analysis.config is not None
    provider = analysis.config.providers["p"]
    assert provider.apikey.is_literal
    assert provider.apikey.value == ""
    assert provider.enabled


def test_apikey_list_spreads_over_keys_and_leaves_unset_ones_out(
    check: Check, issue_at: IssueAt
) -> None:
    text = provider_config(*BASE, '"apikey": ["env:KEY_A", "sk-literal", "env:KEY_C"]')
    analysis = check(text, {"KEY_C": "sk-c"})
    assert analysis.errors == []
    assert analysis.config is not None
    provider = analysis.config.providers["p"]
    assert provider.enabled
    assert provider.key_count == 3
    assert [provider.usable_key(i) for i in range(3)] == [False, True, True]
    assert [provider.key_at(i) for i in (1, 2)] == ["sk-literal", "sk-c"]
    assert provider.apikey.value == "sk-literal"  # the first that resolved
    warning = issue_at(analysis.warnings, "providers.p.apikey[0]")
    assert "env:KEY_A is not set" in warning.message
    assert "left out of rotation" in warning.message


def test_apikey_list_with_no_key_set_is_out_of_routing(check: Check) -> None:
    analysis = check(provider_config(*BASE, '"apikey": ["env:KEY_A", "env:KEY_B"]'), {})
    assert analysis.config is not None
    assert analysis.config.providers["p"].unavailable_reason == "apikey env:KEY_A is not set"


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ("[]", "providers.p.apikey", "must not be an empty list"),
        ('["sk-1", 7]', "providers.p.apikey[1]", "must be a non-empty string"),
        ('["sk-1", ""]', "providers.p.apikey[1]", "must be a non-empty string"),
        (
            '["sk-1", "sigv4::AKIA:secret"]',
            "providers.p.apikey[1]",
            "API keys only, not cloud credentials",
        ),
        ("[" + ", ".join(['"k"'] * 65) + "]", "providers.p.apikey", "at most 64"),
    ],
)
def test_bad_apikey_lists_are_errors(
    check: Check, issue_at: IssueAt, value: str, path: str, message: str
) -> None:
    analysis = check(provider_config(*BASE, f'"apikey": {value}'))
    assert message in issue_at(analysis.errors, path).message
    assert analysis.config is None or "p" not in analysis.config.providers


@pytest.mark.parametrize(("value", "message"), [("0", "from 1 to 1000"), ('"2"', "integer")])
def test_weight_is_a_whole_number_from_1_to_1000(
    check: Check, issue_at: IssueAt, value: str, message: str
) -> None:
    analysis = check(provider_config(*BASE, f'"weight": {value}'))
    assert message in issue_at(analysis.errors, "providers.p.weight").message


def test_weight_defaults_to_1(check: Check) -> None:
    analysis = check(provider_config(*BASE, '"weight": 4'))
    assert analysis.config is not None
    assert analysis.config.providers["p"].weight == 4
    analysis = check(provider_config(*BASE))
    assert analysis.config is not None
    assert analysis.config.providers["p"].weight == 1


def test_translate_is_a_boolean_off_by_default(check: Check, issue_at: IssueAt) -> None:
    analysis = check(provider_config(*BASE))
    assert analysis.config is not None
    assert analysis.config.providers["p"].translate is False
    analysis = check(provider_config(*BASE, '"translate": true'))
    assert analysis.config is not None
    assert analysis.config.providers["p"].translate is True
    analysis = check(provider_config(*BASE, '"translate": "yes"'))
    assert "a boolean" in issue_at(analysis.errors, "providers.p.translate").message
