"""`--spool-fsync` / `--spool-max-mb` (and their IRISGATE_* variables): defaults, what they
accept, and a refusal that names the flag; `irisgate serve` refuses a bad value at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from irisgate.settings import SettingsError, load_settings


def test_defaults_flags_and_environment() -> None:
    assert (load_settings({}, {}).spool_fsync, load_settings({}, {}).spool_max_mb) == (False, 1024)
    flags = load_settings({"spool_fsync": "true", "spool_max_mb": "64"}, {})
    assert (flags.spool_fsync, flags.spool_max_mb) == (True, 64)
    env = load_settings({}, {"IRISGATE_SPOOL_FSYNC": "1", "IRISGATE_SPOOL_MAX_MB": "2048"})
    assert (env.spool_fsync, env.spool_max_mb) == (True, 2048)


@pytest.mark.parametrize("bad", ["0", "-5", "1.5", "lots", "1e3"])
def test_a_spool_size_that_is_not_a_whole_positive_number_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match="--spool-max-mb must be a whole number of MiB"):
        load_settings({"spool_max_mb": bad}, {})


def test_serve_refuses_a_bad_spool_setting_naming_it() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "irisgate", "serve", "--spool-fsync", "maybe"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "--spool-fsync must be true or false, got 'maybe'" in run.stderr
