"""Which irisgate this is: its version and the commit it was built from (`irisgate version`).

A wheel or sdist carries the commit in `irisgate/BUILD_COMMIT`, written by the build
(setup.py, which runs this file's `git_commit` on the checkout); a checkout without one asks
git. Standard library only and no import of irisgate at module level: the build runs it
before anything is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

COMMIT_FILE = "BUILD_COMMIT"


def git_commit(directory: Path) -> str | None:
    """The commit checked out at `directory` (12 hex digits, `+dirty` when tracked files
    differ from it), None outside a git checkout or without git."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        head = subprocess.run(  # noqa: S603  # fixed arguments
            [git, "rev-parse", "--short=12", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        changed = subprocess.run(  # noqa: S603  # fixed arguments
            [git, "diff", "--quiet", "HEAD"],
            cwd=directory,
            capture_output=True,
            check=False,
            timeout=10,
        ).returncode
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if changed else "") if head else None


def build_commit() -> str:
    """The commit recorded at build time, else the checkout's, else "unknown"."""
    recorded = resources.files("irisgate").joinpath(COMMIT_FILE)
    if recorded.is_file():
        return recorded.read_text(encoding="utf-8").strip() or "unknown"
    return git_commit(Path(__file__).resolve().parent) or "unknown"


def describe() -> str:
    """`irisgate 0.1.0 (commit 0123456789ab)`."""
    from irisgate import __version__

    return f"irisgate {__version__} (commit {build_commit()})"
