"""What pyproject.toml cannot say: build steps around setuptools' own.

- The dashboard's third-party assets come from npm at build time (`ui/vendor.py`), before the
  sdist's file list or the wheel's package data are made, when any is missing.
- The commit a build is made from is written into the package as `irisgate/BUILD_COMMIT`
  (from git in a checkout; an sdist carries the file, so a wheel built from it has it too).
  `irisgate version` prints it.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
COMMIT_FILE = "BUILD_COMMIT"


def _vendor_assets() -> None:
    runpy.run_path(str(ROOT / "ui" / "vendor.py"), run_name="vendor")["main"](["--missing"])


def _commit() -> str:
    """The commit an sdist recorded (building from an unpacked sdist), else the checkout's
    (gitignored there, so never stale), else ""."""
    recorded = ROOT / "src" / "irisgate" / COMMIT_FILE
    if recorded.is_file():
        return recorded.read_text(encoding="utf-8").strip()
    version = runpy.run_path(str(ROOT / "src" / "irisgate" / "version.py"), run_name="version")
    return str(version["git_commit"](ROOT) or "")


class BuildPy(build_py):
    def run(self) -> None:
        _vendor_assets()
        super().run()
        commit = _commit()
        if commit and not self.editable_mode:
            target = Path(self.build_lib) / "irisgate" / COMMIT_FILE
            target.write_text(commit + "\n", encoding="utf-8")


class Sdist(sdist):
    def run(self) -> None:
        _vendor_assets()
        super().run()

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        super().make_release_tree(base_dir, files)
        commit = _commit()
        if commit:
            target = Path(base_dir) / "src" / "irisgate" / COMMIT_FILE
            target.unlink(missing_ok=True)  # a hard link to the checkout's, if there was one
            target.write_text(commit + "\n", encoding="utf-8")


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
