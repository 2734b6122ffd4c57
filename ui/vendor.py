"""Copy the dashboard's third-party assets from npm into the package's static folder.

`npm ci` installs the versions pinned in package-lock.json; the files listed in FILES are then
copied into src/irisgate/web/static/vendor/ (gitignored: nothing third-party is committed).
`make ui` runs this script; the package build (setup.py) runs it when a file is missing, so
an sdist or wheel always carries them. Standard library only: it runs before any install.

    python ui/vendor.py            # npm ci, then copy
    python ui/vendor.py --missing  # only when a vendor file is missing
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

UI = Path(__file__).resolve().parent
VENDOR = UI.parent / "src" / "irisgate" / "web" / "static" / "vendor"
#: file in node_modules -> name in the vendor folder
FILES = {
    "uplot/dist/uPlot.esm.js": "uPlot.esm.js",
    "uplot/dist/uPlot.min.css": "uPlot.min.css",
    "marked/lib/marked.esm.js": "marked.esm.js",
    "dompurify/dist/purify.es.mjs": "purify.es.mjs",
}


def missing() -> list[str]:
    return [name for name in FILES.values() if not (VENDOR / name).is_file()]


def build() -> None:
    """npm ci (pinned versions), then copy FILES into VENDOR."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "npm is needed to fetch the dashboard's assets (" + ", ".join(missing()) + ")"
        )
    # fixed arguments, npm found on PATH as a user's shell would find it
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=UI, check=True)  # noqa: S603
    VENDOR.mkdir(parents=True, exist_ok=True)
    for source, name in FILES.items():
        shutil.copyfile(UI / "node_modules" / source, VENDOR / name)
    (VENDOR / ".built").touch()


def main(argv: list[str]) -> int:
    if "--missing" in argv and not missing():
        return 0
    build()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
