"""The test suite's order: modules marked `early` (`pytestmark = pytest.mark.early`) run first.

`make test` shares the test files among several processes (pytest-xdist, `--dist loadfile`),
in the order they are collected. A module that takes minutes started last would keep one
process busy long after the others are done; started first, the rest of the suite runs
beside it.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("early") is None)
