"""Validation of quotas, hooks, exporters, database, flags and the top level."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from irisgate.config.model import ConfigIssue, FilterableHeader, Quota
from irisgate.config.schema import Analysis

Check = Callable[..., Analysis]
IssueAt = Callable[[list[ConfigIssue], str], ConfigIssue]
LineWith = Callable[[str, str], int]


def section_config(section: str, body: str) -> str:
    """`{"<section>": <body>}` with the body on lines 3 onwards."""
    return f'{{\n  "{section}":\n{body}\n}}\n'


def assert_error(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    text: str,
    path: str,
    needle: str,
    message: str,
) -> None:
    analysis = check(text)
    assert analysis.config is None
    issue = issue_at(analysis.errors, path)
    assert message in issue.message, issue
    assert issue.line == line_with(text, needle)


# --- quotas -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "needle", "message"),
    [
        (
            '{"daily:<team>": {"capacity": "$1", "rate": "$1/day"}}',
            'quotas["daily:<team>"]',
            "daily",
            "unknown template variable <team> (known: <user>, <node>)",
        ),
        (
            '{"daily:<user": {"capacity": "$1", "rate": "$1/day"}}',
            'quotas["daily:<user"]',
            "daily",
            "unbalanced '<' or '>'",
        ),
        (
            '{"q": {\n "rate": "$1/day"}}',
            "quotas.q.capacity",
            '"q"',
            'is required (a dollar amount like "$10.00")',
        ),
        (
            '{"q": {"capacity": "10.00",\n "rate": "$1/day"}}',
            "quotas.q.capacity",
            '"capacity"',
            '"10.00" is not a dollar amount like "$10.00"',
        ),
        (
            '{"q": {"capacity": "$0.00",\n "rate": "$1/day"}}',
            "quotas.q.capacity",
            '"capacity"',
            'must be more than $0, not "$0.00"',
        ),
        (
            '{"q": {"capacity": "$0.0000000001",\n "rate": "$1/day"}}',
            "quotas.q.capacity",
            '"capacity"',
            "more precise than a nanodollar",
        ),
        (
            '{"q": {"capacity": 10,\n "rate": "$1/day"}}',
            "quotas.q.capacity",
            '"capacity"',
            "must be a string, not a number",
        ),
        (
            '{"q": {"capacity": "$1",\n "rate": "$1/fortnight"}}',
            "quotas.q.rate",
            '"rate"',
            'unknown unit "fortnight" (use one of: min, hour, day, week, month)',
        ),
        (
            '{"q": {"capacity": "$1",\n "rate": "$5"}}',
            "quotas.q.rate",
            '"rate"',
            '"$5" is not a rate like "$5.00/day"',
        ),
        (
            '{"q": {"capacity": "$1"}}',
            "quotas.q.rate",
            '"q"',
            "is required",
        ),
        (
            '{"q": {"capacity": "$1", "rate": "$1/day",\n "on_exceed": "throttle"}}',
            "quotas.q.on_exceed",
            '"on_exceed"',
            '"throttle" is not one of: reject',
        ),
        (
            '{"q": {"capacity": "$1", "rate": "$1/day",\n "default_estimate": "cheap"}}',
            "quotas.q.default_estimate",
            '"default_estimate"',
            '"cheap" is not a dollar amount like "$10.00"',
        ),
        ('["daily"]', "quotas", '"quotas"', "must be an object, not a list"),
    ],
)
def test_quota_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    body: str,
    path: str,
    needle: str,
    message: str,
) -> None:
    """Every problem is reported (and fails `config check`); an invalid quota is *contained*:
    the config still loads, and the bucket is listed as broken so requests charging it get
    429 (fail closed) while everything else keeps working."""
    text = section_config("quotas", body)
    analysis = check(text)
    issue = issue_at([*analysis.errors, *analysis.contained], path)
    assert message in issue.message, issue
    assert issue.line == line_with(text, needle)
    assert issue.severity == "error"
    if issue in analysis.contained:
        assert analysis.config is not None
        assert analysis.config.quotas == {}
        assert message in next(iter(analysis.config.broken_quotas.values()))
    else:
        assert analysis.config is None


def test_quotas_are_converted(check: Check) -> None:
    body = (
        '{"daily:<user>": {"capacity": "$10.00", "rate": "$5.00/day", "on_exceed": "reject"},\n'
        ' "per-node:<node>:<user>": {"capacity": "$0.5", "rate": "$1.25/hour"},\n'
        ' "team": {"capacity": "$500", "rate": "$500.00/month", "default_estimate": "$0.25"},\n'
        ' "burst": {"capacity": "$1", "rate": "$0.10/min"},\n'
        ' "weekly": {"capacity": "$1", "rate": "$0/week"}}'
    )
    analysis = check(section_config("quotas", body))
    assert analysis.errors == []
    assert analysis.config is not None
    quotas = analysis.config.quotas
    assert quotas["daily:<user>"] == Quota(
        template="daily:<user>",
        capacity_nanodollars=10_000_000_000,
        rate_nanodollars=5_000_000_000,
        rate_period_seconds=86_400,
        rate_text="$5.00/day",
        capacity_text="$10.00",
    )
    assert quotas["per-node:<node>:<user>"].capacity_nanodollars == 500_000_000
    assert quotas["per-node:<node>:<user>"].rate_period_seconds == 3600
    assert quotas["team"].rate_period_seconds == 30 * 86_400
    assert quotas["team"].default_estimate_nanodollars == 250_000_000
    assert quotas["daily:<user>"].default_estimate_nanodollars == 10_000_000  # "$0.01"
    assert quotas["burst"].rate_period_seconds == 60
    assert quotas["weekly"].rate_nanodollars == 0
    assert quotas["weekly"].rate_period_seconds == 7 * 86_400


# --- hooks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path", "needle", "message"),
    [
        ('{"guard": {\n "apikey": "k"}}', "hooks.guard.url", '"guard"', "is required"),
        (
            '{"guard": {"url": "guard.example.com/scrub"}}',
            "hooks.guard.url",
            '"url"',
            "must be an absolute http(s) URL",
        ),
        (
            '{"guard": {"url": "https://g.example.com",\n "timeout": "5"}}',
            "hooks.guard.timeout",
            '"timeout"',
            '"5" is not a duration like "500ms", "5s" or "1m30s"',
        ),
        (
            '{"guard": {"url": "https://g.example.com",\n "timeout": 5}}',
            "hooks.guard.timeout",
            '"timeout"',
            "must be a string, not a number",
        ),
        (
            '{"guard": {"url": "https://g.example.com",\n "timeout": "0s"}}',
            "hooks.guard.timeout",
            '"timeout"',
            'must be longer than 0, not "0s"',
        ),
        (
            '{"guard": {"url": "https://g.example.com",\n "fail_policy": "closed"}}',
            "hooks.guard.fail_policy",
            '"fail_policy"',
            '"closed" is not one of: fail_open, fail_closed',
        ),
        (
            '{"guard": {"url": "https://g.example.com",\n "authorization": "token"}}',
            "hooks.guard.authorization",
            '"authorization"',
            '"token" is not one of: "", bearer, x-api-key',
        ),
        (
            '{"guard": {"url": "https://g.example.com",\n "preference": "first"}}',
            "hooks.guard.preference",
            '"preference"',
            "must be an integer",
        ),
        (
            '{"guard": {"url": "https://g.example.com",\n "disabled": "no"}}',
            "hooks.guard.disabled",
            '"disabled"',
            "must be a boolean",
        ),
    ],
)
def test_hook_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    body: str,
    path: str,
    needle: str,
    message: str,
) -> None:
    text = section_config("hooks", body)
    assert_error(check, issue_at, line_with, text, path, needle, message)


def test_hooks_are_converted(check: Check, issue_at: IssueAt) -> None:
    body = (
        '{"guard": {"url": "https://g.example.com/hook", "apikey": "env:GUARD_KEY",\n'
        '  "authorization": "x-api-key", "timeout": "1m30s", "fail_policy": "fail_closed",\n'
        '  "preference": 10, "disabled": true},\n'
        ' "log": {"url": "http://log.example.ts.net:8080/"}}'
    )
    analysis = check(section_config("hooks", body), {})
    assert analysis.errors == []
    assert analysis.config is not None
    guard = analysis.config.hooks["guard"]
    assert guard.timeout_seconds == 90.0
    assert (guard.authorization, guard.fail_policy, guard.preference) == (
        "x-api-key",
        "fail_closed",
        10,
    )
    assert guard.disabled
    assert guard.apikey.value is None
    warning = issue_at(analysis.warnings, "hooks.guard.apikey")
    assert "env:GUARD_KEY is not set" in warning.message
    log_hook = analysis.config.hooks["log"]
    assert (log_hook.timeout_seconds, log_hook.fail_policy) == (5.0, "fail_open")
    assert log_hook.authorization == "bearer"
    assert log_hook.apikey.value == ""


# --- exporters ----------------------------------------------------------------------------

S3 = '"bucket_name": "exports", "region": "us-east-1"'


@pytest.mark.parametrize(
    ("body", "path", "needle", "message"),
    [
        (
            '{"s3": {"bucket_name": "exports",\n "prefix": "p"}}',
            "exporters.s3.region",
            '"s3"',
            "is required (the bucket's region, also for non-AWS S3)",
        ),
        (
            f'{{"s3": {{{S3},\n "prefix": "prod/"}}}}',
            "exporters.s3.prefix",
            '"prefix"',
            '"prod/" must not end with "/"',
        ),
        (f'{{"s3": {{{S3},\n "every": 0}}}}', "exporters.s3.every", '"every"', "at least 1, not 0"),
        (
            f'{{"s3": {{{S3},\n "every": "1h"}}}}',
            "exporters.s3.every",
            '"every"',
            "must be an integer, not a string",
        ),
        (
            f'{{"s3": {{{S3},\n "limit": 20000}}}}',
            "exporters.s3.limit",
            '"limit"',
            "must be between 1 and 10000, not 20000",
        ),
        (
            f'{{"s3": {{{S3},\n "endpoint": "minio:9000"}}}}',
            "exporters.s3.endpoint",
            '"endpoint"',
            "must be an absolute http(s) URL",
        ),
        ('{"s3": []}', "exporters.s3", '"s3"', "must be an object, not a list"),
    ],
)
def test_s3_exporter_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    body: str,
    path: str,
    needle: str,
    message: str,
) -> None:
    text = section_config("exporters", body)
    assert_error(check, issue_at, line_with, text, path, needle, message)


def test_s3_exporter_is_converted(check: Check) -> None:
    body = (
        f'{{"s3": {{{S3}, "access_key_id": "env:AWS_KEY", "access_secret": "sekrit",\n'
        '  "endpoint": "http://minio.example.ts.net:9000", "prefix": "prod/irisgate"}}'
    )
    analysis = check(section_config("exporters", body), {"AWS_KEY": "AKIA1"})
    assert analysis.errors == []
    assert analysis.warnings == []
    assert analysis.config is not None
    s3 = analysis.config.s3_exporter
    assert s3 is not None
    assert (s3.bucket_name, s3.region, s3.prefix) == ("exports", "us-east-1", "prod/irisgate")
    assert (s3.access_key_id.value, s3.access_secret.value) == ("AKIA1", "sekrit")
    assert s3.endpoint == "http://minio.example.ts.net:9000"
    assert (s3.every_seconds, s3.limit) == (3600, 1000)


def test_empty_bucket_name_turns_the_exporter_off(check: Check) -> None:
    analysis = check(section_config("exporters", '{"s3": {"bucket_name": "", "limit": 5}}'))
    assert analysis.errors == []
    assert analysis.config is not None
    assert analysis.config.s3_exporter is None


# --- database -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("0", 0), ("720h", 720 * 3600), ("1h", 3600), ("30d", 30 * 86400), ("3650d", 3650 * 86400)],
)
def test_retention_durations(check: Check, duration: str, seconds: int) -> None:
    body = f'{{"retention": {{"duration": "{duration}"}}}}'
    analysis = check(section_config("database", body))
    assert analysis.errors == []
    assert analysis.config is not None
    assert analysis.config.database.retention.duration_seconds == seconds


@pytest.mark.parametrize(
    ("body", "path", "needle", "message"),
    [
        (
            '{"retention": {\n "duration": "30m"}}',
            "database.retention.duration",
            '"duration"',
            '"30m" must be "0" or between 1h and 3650d',
        ),
        (
            '{"retention": {\n "duration": "3651d"}}',
            "database.retention.duration",
            '"duration"',
            "between 1h and 3650d",
        ),
        (
            '{"retention": {\n "duration": "forever"}}',
            "database.retention.duration",
            '"duration"',
            '"forever" is not a duration like "720h" or "30d"',
        ),
        (
            '{"retention": {\n "purge": "all"}}',
            "database.retention.purge",
            '"purge"',
            "must be a list of strings",
        ),
        (
            '{"retention": {\n "require_export": "yes"}}',
            "database.retention.require_export",
            '"require_export"',
            "must be a boolean",
        ),
        (
            '{"headers": {"filterable": [\n {"name": "x request id"}]}}',
            "database.headers.filterable[0].name",
            '"name"',
            '"x request id" is not a valid header name',
        ),
        (
            '{"headers": {"filterable": [\n {"redact_values": true}]}}',
            "database.headers.filterable[0].name",
            "redact_values",
            "is required (a header name)",
        ),
        ('{"save_raws": 1}', "database.save_raws", '"save_raws"', "must be a boolean"),
        (
            '{"keep_encrypted_blobs": "no"}',
            "database.keep_encrypted_blobs",
            "keep_encrypted_blobs",
            "must be a boolean",
        ),
    ],
)
def test_database_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    body: str,
    path: str,
    needle: str,
    message: str,
) -> None:
    text = section_config("database", body)
    assert_error(check, issue_at, line_with, text, path, needle, message)


def test_database_settings_are_converted(check: Check) -> None:
    body = (
        '{"retention": {"duration": "720h", "purge": ["bodies", "raws"], "require_export": true},\n'
        ' "headers": {"filterable": [{"name": "X-Request-ID"},\n'
        '   {"name": "Authorization", "redact_values": true}]},\n'
        ' "save_raws": true, "keep_encrypted_blobs": true}'
    )
    analysis = check(section_config("database", body))
    assert analysis.errors == []
    assert analysis.warnings == []
    assert analysis.config is not None
    database = analysis.config.database
    assert database.retention.purge == ("bodies", "raws")
    assert database.retention.require_export
    assert database.filterable_headers == (
        FilterableHeader(name="x-request-id"),
        FilterableHeader(name="authorization", redact_values=True),
    )
    assert database.save_raws
    assert database.keep_encrypted_blobs


def test_retention_absent_keeps_forever(check: Check) -> None:
    analysis = check("{}")
    assert analysis.config is not None
    assert analysis.config.database.retention.duration_seconds is None


# --- flags and top level ------------------------------------------------------------------


def test_flags_are_unwrapped(check: Check) -> None:
    text = section_config("flags", '{"connectors": {"value": true}, "chat_ui": {"value": "beta"}}')
    analysis = check(text)
    assert analysis.errors == []
    assert analysis.config is not None
    assert analysis.config.flags == {"connectors": True, "chat_ui": "beta"}


@pytest.mark.parametrize(
    ("body", "path", "needle", "message"),
    [
        ('{"chat_ui": true}', "flags.chat_ui", "chat_ui", "must be an object, not a boolean"),
        (
            '{"chat_ui": {\n "enabled": true}}',
            "flags.chat_ui.value",
            '"chat_ui"',
            'is required: flags are written {"value": ...}',
        ),
    ],
)
def test_flag_errors(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    body: str,
    path: str,
    needle: str,
    message: str,
) -> None:
    text = section_config("flags", body)
    assert_error(check, issue_at, line_with, text, path, needle, message)


def test_auto_cost_basis(check: Check, issue_at: IssueAt) -> None:
    analysis = check("{}")
    assert analysis.config is not None
    assert analysis.config.auto_cost_basis is True
    analysis = check('{"auto_cost_basis": false}')
    assert analysis.config is not None
    assert analysis.config.auto_cost_basis is False
    issue = issue_at(check('{\n"auto_cost_basis": "no"}').errors, "auto_cost_basis")
    assert (issue.line, issue.message) == (2, "must be a boolean (true or false), not a string")


def test_unknown_top_level_keys_warn_and_stay_in_raw(
    check: Check, issue_at: IssueAt, line_with: LineWith
) -> None:
    text = '{\n  "chat_models": ["openai/gpt-5"],\n  "sandbox": {"enabled": true},\n}'
    analysis = check(text)
    assert analysis.errors == []
    warning = issue_at(analysis.warnings, "chat_models")
    assert warning.line == 2
    assert warning.message.startswith("unknown key, ignored")
    assert issue_at(analysis.warnings, "sandbox").line == line_with(text, "sandbox")
    assert analysis.config is not None
    assert analysis.config.raw["chat_models"] == ["openai/gpt-5"]


def test_top_level_must_be_an_object(check: Check) -> None:
    analysis = check("\n[1, 2]")
    assert [(i.path, i.line, i.message) for i in analysis.errors] == [
        ("", 2, "the config must be a JSON object, not a list")
    ]


def test_syntax_error_becomes_one_issue(check: Check) -> None:
    analysis = check('{\n  "providers": {\n    "p": {"baseurl": "x",}\n    "q": {}\n  }\n}')
    assert [(i.line, i.message) for i in analysis.errors] == [
        (
            4,
            "syntax error at column 5: missing ',' after the value of \"p\"",
        )
    ]
