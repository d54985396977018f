"""Shared fixtures: where the real test data lives (``../shared/data`` beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The folder of real test data: ``$VAELAB_TEST_DATA`` or ``../shared/data``; None if absent."""
    env = os.environ.get("VAELAB_TEST_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    """The real data folder, or skip the test cleanly when it is not on this machine."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real test data (../shared/data or $VAELAB_TEST_DATA) is not on this machine")
    return path
