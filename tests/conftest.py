"""Shared fixtures. Tests that need the public data set read it by path and skip where it is
absent (a user's fresh machine), except when ENGAGEMENT_REQUIRE_DATA=1 (CI): then they fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engagement.config import shared_data_dir


def require_shared(relative: str) -> Path:
    """Path to a file or folder under the shared data directory, or skip/fail when absent."""
    path = shared_data_dir() / relative
    if not path.exists():
        message = f"shared data not found: {path} (set ENGAGEMENT_SHARED_DATA)"
        if os.environ.get("ENGAGEMENT_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def videos_dir() -> Path:
    return require_shared("videos")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own data directory and database; nothing touches the user's."""
    data = tmp_path / "engagement-data"
    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", str(data))
    monkeypatch.delenv("ENGAGEMENT_DB", raising=False)
    return data
