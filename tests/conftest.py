"""Shared fixtures: where the reference data lives, and small hand-made layers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "boundaries"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The seed places' real boundaries (../shared/data, never copied into the project)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"reference data not found at {SHARED_DATA}: clone beside shared/")
    return SHARED_DATA
