"""The wheel is the whole product: built from this checkout (sdist, then the wheel from the
sdist, as `python -m build` does), installed into a fresh virtualenv, run from a folder outside
the checkout with nothing of it on the path, it serves the dashboard with its npm assets, the
chat and a proxied request.

The slowest part of the suite: about 90 s on the shared CI machine under load (build with
npm ci ~20 s, fresh virtualenv and install ~65 s, of which 17 s of CPU). Dependencies come
from the package index, as a user gets them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from irisgate.testing import FakeLLM
from irisgate.testing.server import IrisgateServer
from irisgate.version import git_commit

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ("uPlot.esm.js", "uPlot.min.css", "marked.esm.js", "purify.es.mjs")

# the longest module, run first (conftest.py); building and installing the wheel took over the
# suite's 120 s limit on a loaded 2-core machine, so its own limit is that of the build (600 s)
pytestmark = [pytest.mark.early, pytest.mark.timeout(600)]


def _clean_env() -> dict[str, str]:
    """The environment without the checkout: no PYTHONPATH, no virtualenv of ours."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, f"{' '.join(args)}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run


def _export_checkout(target: Path) -> None:
    """The checkout's files as git sees them (tracked and new, nothing ignored): no built
    dashboard assets, no node_modules; the commit recorded as an sdist records it."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / "src" / "irisgate" / "BUILD_COMMIT").write_text(f"{git_commit(ROOT)}\n")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdist and wheel built from a clean export of the checkout (the build fetches the
    dashboard assets with npm ci)."""
    tree, out = tmp_path_factory.mktemp("checkout"), tmp_path_factory.mktemp("dist")
    _export_checkout(tree)
    assert not (tree / "src" / "irisgate" / "web" / "static" / "vendor").exists()
    started = time.monotonic()
    _run(sys.executable, "-m", "build", "--outdir", str(out), str(tree), cwd=tree)
    print(f"build: {time.monotonic() - started:.1f} s")
    return out


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with only the wheel (and its dependencies) installed."""
    home = tmp_path_factory.mktemp("venv")
    (wheel,) = dist.glob("irisgate-*.whl")
    started = time.monotonic()
    _run(sys.executable, "-m", "venv", str(home / "venv"), cwd=home)
    pip = str(home / "venv" / "bin" / "pip")
    # no bytecode compilation: half the install time, and Python compiles on first import
    _run(
        pip,
        "install",
        "--quiet",
        "--no-compile",
        "--disable-pip-version-check",
        str(wheel),
        cwd=home,
    )
    print(f"venv + install: {time.monotonic() - started:.1f} s")
    return home / "venv"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def test_the_sdist_and_wheel_carry_the_dashboard_assets_and_the_commit(dist: Path) -> None:
    (wheel,) = dist.glob("irisgate-*.whl")
    (sdist,) = dist.glob("irisgate-*.tar.gz")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        commit = zf.read("irisgate/BUILD_COMMIT").decode().strip()
    assert {f"irisgate/web/static/vendor/{name}" for name in VENDOR} <= names
    assert commit == git_commit(ROOT)
    with tarfile.open(sdist) as tf:
        top = sdist.name.removesuffix(".tar.gz")
        members = {m.name.removeprefix(top + "/") for m in tf.getmembers()}
    # what a wheel build from the sdist alone needs: the assets, or npm's pins to fetch them
    assert {f"src/irisgate/web/static/vendor/{name}" for name in VENDOR} <= members
    assert {"ui/package.json", "ui/package-lock.json", "ui/vendor.py", "setup.py"} <= members
    assert "src/irisgate/BUILD_COMMIT" in members
    assert not any("node_modules" in name for name in members)


def test_the_installed_wheel_serves_dashboard_chat_and_requests(
    venv: Path, fake_llm: FakeLLM, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = _run(str(venv / "bin" / "irisgate"), "version", cwd=elsewhere).stdout.strip()
    assert version.startswith("irisgate 0.1.0 (commit ")
    assert version.endswith(f"(commit {git_commit(ROOT)})")

    config = json.dumps(
        {
            "providers": {
                "openai": {
                    "baseurl": fake_llm.base_url,
                    "apikey": "sk-wheel-test",
                    "models": ["gpt-4o-mini"],
                }
            },
            "grants": [
                {
                    "src": ["*"],
                    "app": {"tailscale.com/cap/aperture": [{"role": "admin"}, {"models": "**"}]},
                }
            ],
        }
    )
    server = IrisgateServer(
        config,
        data_dir=elsewhere / "data",
        program=(str(venv / "bin" / "irisgate"),),
        cwd=elsewhere,
    )
    server.env = {**_clean_env(), "IRISGATE_LOG_FORMAT": "json"}
    with server as gw, httpx2.Client(base_url=gw.url, timeout=30, follow_redirects=True) as http:
        ui = http.get("/ui/")
        assert ui.status_code == 200 and "/ui/static/vendor/uPlot.min.css" in ui.text
        uplot = http.get("/ui/static/vendor/uPlot.esm.js")
        assert uplot.status_code == 200 and "uPlot" in uplot.text
        assert uplot.headers["content-type"].startswith(
            ("text/javascript", "application/javascript")
        )
        chat = http.get("/chat/")
        assert chat.status_code == 200 and "<html" in chat.text.lower()

        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="-", max_retries=0)
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello from the wheel"}]
        )
        assert answer.choices[0].message.content
        assert fake_llm.last_request.headers["Authorization"] == "Bearer sk-wheel-test"
    # the process that served was the installed package, not this checkout
    assert (
        f"{venv}/lib/"
        in _run(
            str(venv / "bin" / "python"),
            "-c",
            "import irisgate; print(irisgate.__file__)",
            cwd=elsewhere,
        ).stdout
    )
