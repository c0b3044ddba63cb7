"""Shared fixtures: where the reference data lives, and small hand-made layers."""

from __future__ import annotations

import os
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


ENGINES = ("embedded", "kafka")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `engines` run on the embedded broker and on a 3-broker Apache Kafka."""
    if "broker" in metafunc.fixturenames and metafunc.definition.get_closest_marker("engines"):
        metafunc.parametrize("broker", [pytest.param("embedded"),
                                        pytest.param("kafka", marks=pytest.mark.kafka)],
                             indirect=True, scope="module")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on Apache Kafka get one rerun: on this 2-core machine (three broker JVMs, several
    workers and the test process) about one full run in three had one Kafka scenario time out
    or differ (docs/development.md lists what was seen). A rerun is reported (`R` in the
    summary, `rerun` in the counts), never silent; the embedded-broker twins get none."""
    for item in items:
        if item.get_closest_marker("kafka") and not item.get_closest_marker("flaky"):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=5))


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory) -> Iterator:
    """One embedded Tansu broker for the whole session (integration and e2e tests)."""
    from pipeline.broker import EmbeddedBroker

    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=str(log)) as b:
        yield b


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory) -> Iterator:
    """One 3-broker Apache Kafka (KRaft) for the whole session. Without Java or Maven the
    Kafka tests skip, unless GRIDWATCH_TEST_KAFKA=required (CI), where they fail."""
    import shutil

    from pipeline.kafka_cluster import KafkaCluster

    required = os.environ.get("GRIDWATCH_TEST_KAFKA") == "required"
    missing = [t for t in ("java", "mvn") if shutil.which(t) is None]
    if missing:
        msg = f"Apache Kafka tests need {' and '.join(missing)}"
        if required:
            pytest.fail(msg + " (GRIDWATCH_TEST_KAFKA=required)")
        pytest.skip(msg)
    cluster = KafkaCluster(3, tmp_path_factory.mktemp("kafka"), cache=REPO / "var" / "kafka")
    with cluster:
        yield cluster


@pytest.fixture(scope="module")
def broker(request: pytest.FixtureRequest) -> object:
    """The broker of a test: the embedded one, or Apache Kafka for the `kafka` parameter of a
    test marked `engines`. Both have `.bootstrap` and `.embedded`."""
    engine = getattr(request, "param", "embedded")
    return request.getfixturevalue("kafka_cluster" if engine == "kafka" else "embedded_broker")


@pytest.fixture(scope="session")
def atlas_file(tmp_path_factory) -> str:
    """The 2x2 test county (C > T > M > g1..g4, police P1/P2, hazard zones H1/H2) as a file."""
    from geo.layers import write_atlas
    from tests.unit.geo.layers_fixtures import two_by_two

    path = tmp_path_factory.mktemp("atlas") / "two_by_two.geojson"
    write_atlas(two_by_two(), str(path))
    return str(path)
