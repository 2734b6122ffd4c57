"""`chat`: the chat's curated model picker (`chat.models`), what loads and what `irisgate
config check` reports."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from irisgate.config.model import ChatModel, ConfigIssue
from irisgate.config.schema import Analysis

Check = Callable[..., Analysis]
IssueAt = Callable[[list[ConfigIssue], str], ConfigIssue]

PROVIDERS = '"providers": {"openai": {"baseurl": "https://api.openai.com/", "models": ["gpt-4o"]}}'


def _config(chat: str) -> str:
    return f"{{\n  {PROVIDERS},\n  {chat}\n}}\n"


def test_chat_models_load_in_order_with_their_labels(check: Check) -> None:
    analysis = check(
        _config(
            '"chat": {"models": [\n'
            '    {"model": "openai/gpt-4o", "label": " Everyday "},\n'
            '    {"model": "anthropic/**"}]}'
        )
    )
    assert analysis.errors == [] and analysis.warnings == []
    assert analysis.config is not None
    assert analysis.config.chat_models == (
        ChatModel("openai/gpt-4o", "Everyday"),
        ChatModel("anthropic/**", ""),
    )


def test_without_a_chat_models_list_the_picker_is_not_curated(check: Check) -> None:
    for text in (_config('"flags": {}'), _config('"chat": {}')):
        analysis = check(text)
        assert analysis.config is not None and analysis.config.chat_models is None
    empty = check(_config('"chat": {"models": []}'))
    assert empty.config is not None and empty.config.chat_models == ()  # offers nothing


def test_chat_model_errors_name_their_entry(check: Check, issue_at: IssueAt) -> None:
    analysis = check(
        _config(
            '"chat": {"models": [\n'
            '    {"label": "no model"},\n'
            '    {"model": "openai/gpt-4o", "label": 7},\n'
            f'    {{"model": "openai/gpt-4o", "label": "{"x" * 101}"}},\n'
            '    "openai/gpt-4o",\n'
            '    {"model": "openai/gpt-4o", "colour": "red"}], "theme": "dark"}'
        )
    )
    assert analysis.config is None
    assert issue_at(analysis.errors, "chat.models[0].model").message.startswith("is required")
    assert "a string" in issue_at(analysis.errors, "chat.models[1].label").message
    assert (
        issue_at(analysis.errors, "chat.models[2].label").message == "is longer than 100 characters"
    )
    assert "object" in issue_at(analysis.errors, "chat.models[3]").message
    assert issue_at(analysis.warnings, "chat.models[4].colour").message.startswith("unknown key")
    assert issue_at(analysis.warnings, "chat.theme").message.startswith("unknown key")
    entries = ", ".join(['{"model": "a/b"}'] * 501)
    too_many = check(_config(f'"chat": {{"models": [{entries}]}}'))
    assert issue_at(too_many.errors, "chat.models").message == "has 501 entries; at most 500"


def test_config_check_reports_chat_errors(tmp_path: Path) -> None:
    path = tmp_path / "config.hujson"
    path.write_text(_config('"chat": {"models": [{"label": "Nothing"}]}'), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "irisgate", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{path}:3: chat.models[0].model: is required "
        '(a model id or glob ("openai/gpt-4o", "anthropic/*"))',
        f"{path}: 1 error(s)",
    ]


def test_a_model_without_its_provider_is_warned_about(check: Check, issue_at: IssueAt) -> None:
    analysis = check(_config('"chat": {"models": [{"model": "gpt-4o"}]}'))
    assert analysis.errors == [] and analysis.config is not None
    warning = issue_at(analysis.warnings, "chat.models[0].model")
    assert warning.message == 'matches no model: write provider/model ("*/gpt-4o")'
