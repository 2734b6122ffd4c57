"""The limit settings: sizes with binary units, counts, seconds; defaults; what is refused."""

from __future__ import annotations

import pytest

from irisgate.settings import SettingsError, load_settings


def test_defaults() -> None:
    settings = load_settings({}, {})
    assert settings.max_request_body == 64 * 1024 * 1024
    assert settings.max_connector_body == 16 * 1024 * 1024
    assert settings.max_api_body == 8 * 1024 * 1024
    assert settings.max_capture_body == 16 * 1024 * 1024
    assert (settings.header_timeout, settings.body_timeout, settings.keepalive_timeout) == (
        10.0,
        60.0,
        5.0,
    )
    assert (settings.max_header_bytes, settings.max_headers) == (64 * 1024, 100)
    assert settings.max_connections == 10_000
    assert settings.send_timeout == 60.0
    assert settings.max_hook_answer == settings.max_connector_answer == 16 * 1024 * 1024


def test_the_answer_limits_and_send_timeout_come_from_flags_and_environment() -> None:
    env = {"IRISGATE_MAX_HOOK_ANSWER": "1MiB", "IRISGATE_SEND_TIMEOUT": "1.5"}
    settings = load_settings({"max_connector_answer": "2MiB"}, env)
    assert (settings.max_hook_answer, settings.max_connector_answer) == (1 << 20, 2 << 20)
    assert settings.send_timeout == 1.5
    with pytest.raises(SettingsError, match="--send-timeout must be positive"):
        load_settings({"send_timeout": "0"}, {})
    with pytest.raises(SettingsError, match="--max-hook-answer must be a positive whole"):
        load_settings({"max_hook_answer": "0"}, {})


@pytest.mark.parametrize(
    ("raw", "size"),
    [("1024", 1024), ("64KiB", 65536), ("64 kib", 65536), ("2MiB", 2 << 20), ("3mb", 3 << 20)],
)
def test_sizes_take_binary_units(raw: str, size: int) -> None:
    assert load_settings({"max_request_body": raw}, {}).max_request_body == size
    assert load_settings({}, {"IRISGATE_MAX_CAPTURE_BODY": raw}).max_capture_body == size


@pytest.mark.parametrize("raw", ["0", "-5", "lots", "1.5MiB", "2GiB", "MiB", "10 TB"])
def test_a_size_that_is_not_a_positive_whole_number_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="--max-api-body must be a positive whole number"):
        load_settings({"max_api_body": raw}, {})


def test_timeouts_are_positive_seconds() -> None:
    assert load_settings({}, {"IRISGATE_HEADER_TIMEOUT": "2.5"}).header_timeout == 2.5
    with pytest.raises(SettingsError, match="--body-timeout must be positive"):
        load_settings({"body_timeout": "0"}, {})
