"""The connector settings: the token key and the local-connectors switch."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from irisgate.connectors.secretbox import SecretBox, load_key
from irisgate.settings import SettingsError, load_settings


def test_local_connectors_are_off_unless_turned_on() -> None:
    assert load_settings({}, env={}).allow_local_connectors is False
    on = load_settings({}, env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "true"})
    assert on.allow_local_connectors is True
    flag = load_settings({"allow_local_connectors": "1"}, env={})
    assert flag.allow_local_connectors is True
    with pytest.raises(SettingsError, match="--allow-local-connectors must be true or false"):
        load_settings({}, env={"IRISGATE_ALLOW_LOCAL_CONNECTORS": "maybe"})


def test_a_configured_key_is_used_and_checked(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    settings = load_settings({"data_dir": str(tmp_path)}, env={"IRISGATE_CONNECTOR_KEY": key})
    assert load_key(settings) == key.encode()
    assert not (tmp_path / "connector.key").exists()
    assert "connector_key" not in repr(settings)  # never printed with the settings
    with pytest.raises(SettingsError, match="--connector-key must be a Fernet key"):
        load_settings({}, env={"IRISGATE_CONNECTOR_KEY": "too-short"})


def test_without_a_key_one_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path / "data")}, env={})
    first = load_key(settings)
    path = tmp_path / "data" / "connector.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(settings) == first
    box = SecretBox(first)
    assert box.open(box.seal(b"token")) == b"token"
