"""The database settings: the most PostgreSQL connections one process opens."""

from __future__ import annotations

import pytest

from irisgate.settings import SettingsError, load_settings


def test_pool_size_is_fifteen_unless_set() -> None:
    assert load_settings({}, env={}).db_pool_size == 15
    assert load_settings({}, env={"IRISGATE_DB_POOL_SIZE": "4"}).db_pool_size == 4
    assert (
        load_settings({"db_pool_size": "30"}, env={"IRISGATE_DB_POOL_SIZE": "4"}).db_pool_size == 30
    )


@pytest.mark.parametrize("bad", ["0", "-2", "many", "1001", "2.5"])
def test_a_bad_pool_size_is_refused_naming_the_flag(bad: str) -> None:
    with pytest.raises(SettingsError, match="--db-pool-size must be a whole number from 1 to 1000"):
        load_settings({"db_pool_size": bad}, env={})
