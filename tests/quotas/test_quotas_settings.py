"""The quota settings: the most a request without an output limit reserves."""

from __future__ import annotations

import pytest

from irisgate.settings import SettingsError, load_settings


def test_max_reservation_is_ten_cents_unless_set() -> None:
    assert load_settings({}, env={}).quota_max_reservation == 100_000_000
    env = {"IRISGATE_QUOTA_MAX_RESERVATION": "$0.25"}
    assert load_settings({}, env=env).quota_max_reservation == 250_000_000
    flag = load_settings({"quota_max_reservation": "2"}, env=env)
    assert flag.quota_max_reservation == 2_000_000_000


@pytest.mark.parametrize("bad", ["0", "-1", "ten cents", "0.0000000001", "$", "1e3"])
def test_a_bad_max_reservation_is_refused_naming_the_flag(bad: str) -> None:
    with pytest.raises(SettingsError, match="--quota-max-reservation must be a dollar amount"):
        load_settings({"quota_max_reservation": bad}, env={})
