"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.runlab import Lab


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    """The real CLI with the test-only stages over a fake world folder."""
    return Lab(tmp_path)
