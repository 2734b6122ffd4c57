"""`--allowed-hosts` / IRISGATE_ALLOWED_HOSTS: what it accepts and what it refuses."""

from __future__ import annotations

import pytest

from irisgate.settings import SettingsError, load_settings


def test_allowed_hosts_are_lower_cased_names_domains_or_any() -> None:
    settings = load_settings({"allowed_hosts": " AI.Corp.Example., *.internal.example ,*,"}, {})
    assert settings.allowed_hosts == ("ai.corp.example", "*.internal.example", "*")
    assert load_settings({}, {"IRISGATE_ALLOWED_HOSTS": "gw"}).allowed_hosts == ("gw",)
    assert load_settings({}, {}).allowed_hosts == ()


@pytest.mark.parametrize("bad", ["ev*il.example", "*example.com", "a.*.example"])
def test_a_wildcard_anywhere_but_the_front_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match="--allowed-hosts entries are names"):
        load_settings({"allowed_hosts": bad}, {})
