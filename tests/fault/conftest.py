"""Fault-injection tests run on stores of their own, which they stop, flush and restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.stack import Stores


@pytest.fixture(scope="module")
def fault_stores() -> Iterator[Stores]:
    stores = Stores.start_for_tests(embedded_only=True)
    yield stores
    stores.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/fault/" in str(item.fspath):
            item.add_marker(pytest.mark.fault)
