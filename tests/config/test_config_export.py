"""`exporters.s3.format` and `database.retention.purge` categories."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from irisgate.config.schema import Analysis

Check = Callable[..., Analysis]


def s3(extra: str) -> str:
    return (
        '{"exporters": {"s3": {"bucket_name": "usage", "region": "us-east-1",'
        f' "access_key_id": "k", "access_secret": "s"{extra}}}}}}}'
    )


@pytest.mark.parametrize("fmt", ["cbor.zstd", "jsonl.gz", "parquet"])
def test_export_format_is_one_of_three(check: Check, fmt: str) -> None:
    analysis = check(s3(f', "format": "{fmt}"'))
    assert analysis.errors == []
    assert analysis.config is not None and analysis.config.s3_exporter is not None
    assert analysis.config.s3_exporter.format == fmt


def test_export_format_defaults_to_aperture_cbor_zstd(check: Check) -> None:
    analysis = check(s3(""))
    assert analysis.config is not None and analysis.config.s3_exporter is not None
    assert analysis.config.s3_exporter.format == "cbor.zstd"


def test_unknown_export_format_is_an_error_naming_the_choices(check: Check) -> None:
    analysis = check(s3(', "format": "csv"'))
    assert analysis.config is None
    [error] = analysis.errors
    assert error.path == "exporters.s3.format"
    assert "csv" in error.message and "parquet" in error.message


def test_unknown_purge_category_is_a_warning_and_ignored(check: Check) -> None:
    analysis = check('{"database": {"retention": {"duration": "24h", "purge": ["bodies", "x"]}}}')
    assert analysis.errors == []
    [warning] = analysis.warnings
    assert warning.path == "database.retention.purge"
    assert '"x"' in warning.message and "bodies, headers, raws" in warning.message
    assert analysis.config is not None
    assert analysis.config.database.retention.purge == ("bodies",)
