"""Fixtures shared by the config tests: analyse a text, find one issue, find a line."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from irisgate.config.model import ConfigIssue
from irisgate.config.schema import Analysis, analyze

EXAMPLE_PATH = Path(__file__).with_name("aperture_example.hujson")


def _line_with(text: str, needle: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(lines) == 1, f"{needle!r} is on lines {lines}"
    return lines[0]


def _issue_at(issues: list[ConfigIssue], path: str) -> ConfigIssue:
    found = [issue for issue in issues if issue.path == path]
    assert len(found) == 1, f"expected one issue at {path!r}, got {issues}"
    return found[0]


def _check(text: str, env: Mapping[str, str] | None = None) -> Analysis:
    return analyze(text, env if env is not None else {})


@pytest.fixture
def example_text() -> str:
    """The full example configuration of the Aperture reference (§2.12)."""
    return EXAMPLE_PATH.read_text(encoding="utf-8")


@pytest.fixture
def check() -> Callable[..., Analysis]:
    """`check(text, env=None)`: the Analysis (config, errors, warnings) of a config text."""
    return _check


@pytest.fixture
def line_with() -> Callable[[str, str], int]:
    """`line_with(text, needle)`: 1-based line of the only line containing `needle`."""
    return _line_with


@pytest.fixture
def issue_at() -> Callable[[list[ConfigIssue], str], ConfigIssue]:
    """`issue_at(issues, path)`: the only issue reported at a rendered key path."""
    return _issue_at
