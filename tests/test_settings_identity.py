"""The identity settings of mode oidc, and `serve` refusing to listen beyond loopback with no
way to identify callers (dev mode)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from irisgate.settings import SettingsError, load_settings, unidentified_exposure

OIDC = {
    "identity": "oidc",
    "oidc_issuer": "https://login.example.com/",
    "oidc_client_id": "irisgate",
    "oidc_client_secret": "env:OIDC_SECRET",
    "oidc_base_url": "https://ai.example.com",
}


def test_oidc_settings_with_their_defaults() -> None:
    settings = load_settings(OIDC, {})
    oidc = settings.oidc
    assert oidc is not None
    assert oidc.issuer == "https://login.example.com"  # the trailing slash goes
    assert (oidc.login_claim, oidc.groups_claim, oidc.session_hours) == ("email", "groups", 12.0)
    assert oidc.scopes == "openid email profile"
    assert "env:OIDC_SECRET" not in repr(settings)  # the secret (reference) is never shown
    env = {"IRISGATE_OIDC_LOGIN_CLAIM": "preferred_username", "IRISGATE_SESSION_HOURS": "8"}
    changed = load_settings(OIDC, env).oidc
    assert changed is not None and changed.login_claim == "preferred_username"
    assert changed.session_hours == 8.0
    assert load_settings({}, {}).oidc is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"oidc_issuer": None, "oidc_base_url": None}, "needs --oidc-issuer, --oidc-base-url"),
        ({"oidc_issuer": "login.example.com"}, "--oidc-issuer must be an http(s) URL"),
        ({"oidc_base_url": "https://ai.example.com/?x=1"}, "--oidc-base-url must be an http(s)"),
        ({"session_hours": "0"}, "--session-hours must be a number of hours above 0"),
        ({"session_hours": "nan"}, "--session-hours must be a number of hours above 0"),
        ({"oidc_scopes": "email"}, "--oidc-scopes must include openid"),
    ],
)
def test_oidc_settings_that_cannot_work_are_refused(
    changes: dict[str, str | None], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings({**OIDC, **changes}, {})


def test_key_owner_max_age_and_the_keys_sign_in_settings() -> None:
    defaults = load_settings({"identity": "keys"}, {})
    assert (defaults.key_owner_max_age, defaults.base_url) == (30 * 86400.0, "")
    assert defaults.session_hours == 12.0
    env = {
        "IRISGATE_KEY_OWNER_MAX_AGE": "12h",
        "IRISGATE_BASE_URL": "https://ai.example.com/",
        "IRISGATE_SESSION_HOURS": "2",
    }
    changed = load_settings({"identity": "keys"}, env)
    assert (changed.key_owner_max_age, changed.base_url) == (43200.0, "https://ai.example.com")
    assert changed.session_hours == 2.0
    assert load_settings({"key_owner_max_age": "90m"}, {}).key_owner_max_age == 5400.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"key_owner_max_age": "30"}, "--key-owner-max-age must be a duration like 30d"),
        ({"key_owner_max_age": "0d"}, "--key-owner-max-age must be a duration like 30d"),
        ({"key_owner_max_age": "-1h"}, "--key-owner-max-age must be a duration like 30d"),
        ({"base_url": "ai.example.com"}, "--base-url must be an http"),
        ({"identity": "keys", "session_hours": "0"}, "--session-hours must be a number"),
    ],
)
def test_key_settings_that_cannot_work_are_refused(flags: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(flags, {})


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        ({"listen": "0.0.0.0:8080", "identity": "dev"}, True),
        ({"listen": "[::]:8080", "identity": "dev"}, True),
        ({"listen": "192.168.1.5:8080"}, True),  # dev, defaulted to (no tailscaled socket)
        ({"listen": "127.0.0.1:8080", "identity": "dev"}, False),
        ({"listen": "localhost:8080"}, False),
        ({"listen": "0.0.0.0:8080", **OIDC}, False),
        ({"listen": "0.0.0.0:8080", "identity": "tailscale"}, False),
    ],
)
def test_dev_mode_beyond_loopback_is_refused(flags: dict[str, str], refused: bool) -> None:
    socket = {"tailscaled_socket": "/nonexistent/tailscaled.sock"}
    settings = load_settings({**socket, **flags}, {})
    assert (unidentified_exposure(settings) is not None) is refused


def test_serve_refuses_to_start_on_all_addresses_without_an_identity(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            *(sys.executable, "-m", "irisgate", "serve", "--listen", "0.0.0.0:0"),
            *("--data-dir", str(tmp_path), "--tailscaled-socket", str(tmp_path / "none.sock")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "refusing to listen on 0.0.0.0:0 in identity mode dev" in run.stderr
    assert "--identity" in run.stderr and "oidc" in run.stderr
    assert not (tmp_path / "irisgate.db").exists()  # refused before anything was opened


def test_an_unresolvable_client_secret_stops_serve(tmp_path: Path) -> None:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in OIDC.items() if k != "identity"]
    run = subprocess.run(
        [
            *(sys.executable, "-m", "irisgate", "serve", "--identity", "oidc", *flags),
            *("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)},
    )
    assert run.returncode == 2, run.stderr
    assert "--oidc-client-secret env:OIDC_SECRET is not set" in run.stderr


def test_doctor_says_dev_mode_beyond_loopback_needs_fixing(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            *(sys.executable, "-m", "irisgate", "doctor", "--listen", "0.0.0.0:8080"),
            *("--data-dir", str(tmp_path), "--tailscaled-socket", str(tmp_path / "none.sock")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert "FIX  identity: refusing to listen on 0.0.0.0:8080 in identity mode dev" in run.stdout
