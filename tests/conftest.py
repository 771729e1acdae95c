"""Suite-wide test policy.

Tests that need root and network namespaces carry ``@pytest.mark.root``. They are skipped, with
the reason printed, only when the process is not root — never silently, and never for any other
failure (a kernel refusing a feature is the test's own narrow skip).
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates network namespaces and runs CNI plugins")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
