"""`rate_limits` and the capabilities' `rate_limits` lists: what loads, and what `irisgate
config check` reports (every problem, with its line and key path)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from irisgate.config.model import ConfigIssue, RateLimit
from irisgate.config.schema import Analysis

Check = Callable[..., Analysis]
IssueAt = Callable[[list[ConfigIssue], str], ConfigIssue]
LineWith = Callable[[str, str], int]

GRANT = (
    '  "grants": [{"src": ["*"], "app": {"tailscale.com/cap/aperture": [\n'
    '    {"role": "user", "models": "**",\n'
    '     "rate_limits": ["rpm:<user>", "conc:<user>"]}]}}]'
)


def _config(limits: str, grant: str = GRANT) -> str:
    return f'{{\n  "rate_limits": {limits},\n{grant}\n}}\n'


def test_rate_limits_load_as_written(check: Check) -> None:
    limits = (
        '{"rpm:<user>": {"requests": 60, "per": "minute"},\n'
        '   "tpm:<user>": {"tokens": 200000, "per": "minute"},\n'
        '   "rps:<node>": {"requests": 2, "per": "second"},\n'
        '   "tph": {"tokens": 5000000, "per": "hour"},\n'
        '   "conc:<user>": {"concurrent": 4}}'
    )
    analysis = check(_config(limits))
    assert analysis.errors == [] and analysis.contained == []
    assert analysis.config is not None
    loaded = analysis.config.rate_limits
    assert loaded["rpm:<user>"] == RateLimit("rpm:<user>", "requests", 60, 60, "minute")
    assert loaded["tpm:<user>"] == RateLimit("tpm:<user>", "tokens", 200_000, 60, "minute")
    assert loaded["rps:<node>"].period_seconds == 1
    assert loaded["tph"].period_seconds == 3600
    assert loaded["conc:<user>"] == RateLimit("conc:<user>", "concurrent", 4)
    assert loaded["tpm:<user>"].describe() == "200000 tokens per minute"
    [grant] = analysis.config.grants
    assert grant.capabilities[0].rate_limits == ("rpm:<user>", "conc:<user>")


@pytest.mark.parametrize(
    ("limits", "path", "needle", "message"),
    [
        (
            '{"rpm:<user>": {"requests": 60, "per": "fortnight"},'
            ' "conc:<user>": {"concurrent": 1}}',
            'rate_limits["rpm:<user>"].per',
            "fortnight",
            "must be one of second, minute, hour, not 'fortnight'",
        ),
        (
            '{"rpm:<user>": {"requests": 60}, "conc:<user>": {"concurrent": 1}}',
            'rate_limits["rpm:<user>"].per',
            '"requests": 60}',
            'is required with "requests": one of second, minute, hour',
        ),
        (
            '{"rpm:<user>": {"requests": 0, "per": "minute"}, "conc:<user>": {"concurrent": 1}}',
            'rate_limits["rpm:<user>"].requests',
            '"requests": 0',
            "must be a whole number from 1 to 1000000000000, not 0",
        ),
        (
            '{"rpm:<user>": {"requests": "60", "per": "minute"}, "conc:<user>": {"concurrent": 1}}',
            'rate_limits["rpm:<user>"].requests',
            '"requests": "60"',
            "must be a whole number from 1 to 1000000000000, not '60'",
        ),
        (
            '{"rpm:<user>": {"requests": 1, "tokens": 5, "per": "second"},'
            ' "conc:<user>": {"concurrent": 1}}',
            'rate_limits["rpm:<user>"]',
            '"tokens": 5',
            'must have exactly one of "requests", "tokens" or "concurrent"',
        ),
        (
            '{"rpm:<user>": {"requests": 1, "per": "second"},'
            ' "conc:<user>": {"concurrent": 2, "per": "minute"}}',
            'rate_limits["conc:<user>"].per',
            '"concurrent": 2',
            'a "concurrent" limit has no period; remove "per"',
        ),
        (
            '{"rpm:<user>": {"requests": 1, "per": "second"}, "conc:<user>": {"concurrent": 1},'
            ' "x:<team>": {"concurrent": 1}}',
            'rate_limits["x:<team>"]',
            "x:<team>",
            "unknown template variable <team> (known: <user>, <node>)",
        ),
    ],
)
def test_rate_limit_errors_refuse_the_config(
    check: Check,
    issue_at: IssueAt,
    line_with: LineWith,
    limits: str,
    path: str,
    needle: str,
    message: str,
) -> None:
    text = _config(limits)
    analysis = check(text)
    assert analysis.config is None
    issue = issue_at(analysis.errors, path)
    assert message in issue.message, issue
    assert issue.line == line_with(text, needle)


def test_a_grant_naming_an_undefined_limit_is_an_error(
    check: Check, issue_at: IssueAt, line_with: LineWith
) -> None:
    text = _config('{"rpm:<user>": {"requests": 60, "per": "minute"}}')
    analysis = check(text)
    assert analysis.config is None
    issue = issue_at(
        analysis.errors, 'grants[0].app["tailscale.com/cap/aperture"][0].rate_limits[1]'
    )
    assert issue.message == '"conc:<user>" is not defined in rate_limits (defined: rpm:<user>)'
    assert issue.line == line_with(text, '"conc:<user>"]')


def test_config_check_reports_rate_limit_errors(tmp_path: Path) -> None:
    path = tmp_path / "limits.hujson"
    path.write_text(_config('{"rpm:<user>": {"requests": 60, "per": "week"}}'), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "irisgate", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f'{path}:2: rate_limits["rpm:<user>"].per: must be one of second, minute, hour, '
        "not 'week'",
        f'{path}:5: grants[0].app["tailscale.com/cap/aperture"][0].rate_limits[1]: '
        '"conc:<user>" is not defined in rate_limits (defined: rpm:<user>)',
        f"{path}: 2 error(s)",
    ]
