"""`irisgate version` names the version and the commit; the CHANGELOG's sections match versions."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from irisgate.version import git_commit

ROOT = Path(__file__).resolve().parents[2]


def _package_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_version_from_a_checkout_names_the_git_commit() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "irisgate", "version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    commit = git_commit(ROOT)
    assert commit is not None and re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", commit)
    assert re.fullmatch(rf"irisgate \S+ \(commit {re.escape(commit)}\)", run.stdout.strip())


def test_changelog_sections_match_versions() -> None:
    """The newest section is `Unreleased` (changes after the last release) or the package's
    own version; released sections are `## X.Y.Z - YYYY-MM-DD`, newest first, none newer
    than the package."""
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    version = _package_version()
    assert headings, "CHANGELOG.md has no sections"
    assert headings[0] in ("Unreleased", *(h for h in headings if h.startswith(version + " ")))
    released = headings[1:] if headings[0] == "Unreleased" else headings
    versions = []
    for heading in released:
        match = re.fullmatch(r"(\d+\.\d+\.\d+) - \d{4}-\d{2}-\d{2}", heading)
        assert match, f"CHANGELOG section {heading!r} is not 'X.Y.Z - YYYY-MM-DD'"
        versions.append(match[1])
    assert versions == sorted(versions, key=_key, reverse=True)
    assert all(_key(v) <= _key(version) for v in versions)
