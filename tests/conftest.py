"""Shared fixtures: where the reference data lives, and small hand-made layers."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator:
    """One embedded Tansu broker for the whole session (integration and e2e tests)."""
    from pipeline.broker import EmbeddedBroker

    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=str(log)) as b:
        yield b


@pytest.fixture(scope="session")
def atlas_file(tmp_path_factory) -> str:
    """The 2x2 test county (C > T > M > g1..g4, police P1/P2, hazard zones H1/H2) as a file."""
    from geo.layers import write_atlas
    from tests.unit.geo.layers_fixtures import two_by_two

    path = tmp_path_factory.mktemp("atlas") / "two_by_two.geojson"
    write_atlas(two_by_two(), str(path))
    return str(path)
