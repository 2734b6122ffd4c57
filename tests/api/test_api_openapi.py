"""The management API keeps to its own OpenAPI document, for an admin and for a plain user.

Schemathesis (its command line, as a user would run it) reads `/api/openapi.json` from a
real irisgate in identity mode `serve` (the `Tailscale-User-Login` header from loopback
names the caller) and sends every operation its examples, boundary values (coverage phase)
and generated input, valid and invalid. A 5xx, an undocumented status, a wrong content type,
an answer outside its schema, an `Allow` that does not list the documented methods,
schema-invalid input accepted or schema-valid input refused fails the test
(`contract_checks` holds the few refusals of valid input that are documented in words).
The seed and the number of examples are fixed: every run sends the same requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irisgate.testing.server import IrisgateServer

# one of the suite's longest modules (~47 s on a 2-core machine): started first
pytestmark = pytest.mark.early  # (conftest.py)

ADMIN = "alice@example.com"
USER = "bob@example.com"
APERTURE = "tailscale.com/cap/aperture"
HERE = Path(__file__).parent
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "valid_input_is_accepted",  # contract_checks.py
    "unsupported_method",
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IrisgateServer]:
    config = {
        "providers": {
            "openai": {
                "baseurl": "http://127.0.0.1:9",
                "apikey": "sk-never-used",
                "models": ["gpt-4o-mini"],
                "compatibility": {"openai_chat": True},
            }
        },
        "grants": [
            {"src": [ADMIN], "app": {APERTURE: [{"role": "admin"}, {"models": "**"}]}},
            {"src": ["*"], "app": {APERTURE: [{"role": "user"}, {"models": "**"}]}},
        ],
        "quotas": {"team": {"capacity": "$10", "rate": "$1/day"}},
    }
    server = IrisgateServer(
        json.dumps(config), data_dir=tmp_path_factory.mktemp("openapi"), identity="serve"
    )
    with server:
        yield server


def schemathesis(gw: IrisgateServer, login: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "run", gw.url + "/api/openapi.json"),
            *("--header", f"Tailscale-User-Login: {login}"),
            *("--checks", ",".join(CHECKS)),
            *("--phases", "examples,coverage,fuzzing"),
            *("--max-examples", "8", "--seed", "20261207", "--workers", "1"),
            *("--generation-database", "none", "--suppress-health-check", "all"),
            *("--request-timeout", "30", "--no-color"),
        ],
        cwd=cwd,  # nothing of the run lands in the tree
        env={**os.environ, "PYTHONPATH": path, "SCHEMATHESIS_HOOKS": "contract_checks"},
        capture_output=True,
        encoding="utf-8",  # its report has emoji, whatever the locale
        errors="replace",
        timeout=300,
        check=False,
    )


# schemathesis's run is one subprocess bounded by its own 300 s limit (a few hundred requests:
# about 20 s on a quiet 2-core machine, 110 s when 15 other processes share it); the suite's
# 120 s hang guard would cut it before its own limit could speak
@pytest.mark.timeout(360)
@pytest.mark.parametrize("login", [ADMIN, USER], ids=["admin", "user"])
def test_the_api_keeps_to_its_document(gateway: IrisgateServer, login: str, tmp_path: Path) -> None:
    run = schemathesis(gateway, login, tmp_path)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    # every operation was exercised, but the document's own URL, which schemathesis leaves out
    documented = sum(len(ops) for ops in gateway_document(gateway)["paths"].values())
    assert f"Tested: {documented - 1}\n" in report, report[-5_000:]


def gateway_document(gw: IrisgateServer) -> dict[str, Any]:
    request = urllib.request.Request(
        gw.url + "/api/openapi.json", headers={"Tailscale-User-Login": USER}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        document: dict[str, Any] = json.load(answer)
    return document
