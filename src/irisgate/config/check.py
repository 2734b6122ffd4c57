"""`irisgate config check FILE`: every problem of a config file, one line each.

Lines read like compiler output, so editors can jump to them:

    config.hujson:12: providers.openai.baseurl: "api.openai.com" must be an absolute http(s) URL
    config.hujson:30: warning: chat_models: unknown key, ignored (known keys: ...)

The CLI exits 1 when any issue is an error (`has_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping

from irisgate.config.model import ConfigIssue
from irisgate.config.schema import analyze


def check_text(text: str, env: Mapping[str, str]) -> list[ConfigIssue]:
    """Errors and warnings of a config text in file order; a syntax error is one issue."""
    return analyze(text, env).issues


def has_errors(issues: list[ConfigIssue]) -> bool:
    return any(issue.severity == "error" for issue in issues)


def format_issues(path_name: str, issues: list[ConfigIssue]) -> str:
    """One line per issue, `NAME:LINE: [warning: ]PATH: MESSAGE`; "" when there are none."""
    return "\n".join(_format_issue(path_name, issue) for issue in issues)


def _format_issue(path_name: str, issue: ConfigIssue) -> str:
    where = f"{path_name}:{issue.line}" if issue.line is not None else path_name
    severity = "warning: " if issue.severity == "warning" else ""
    subject = f"{issue.path}: " if issue.path else ""
    return f"{where}: {severity}{subject}{issue.message}"
