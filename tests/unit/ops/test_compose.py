"""docker-compose.yml cannot run here (no Docker engine); check its structure instead."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def load() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_and_dependencies():
    doc = load()
    services = doc["services"]
    assert {"kafka", "topic-init", "worker"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond["condition"] in ("service_started", "service_healthy",
                                         "service_completed_successfully")
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["web"]["command"] == ["web"] and "6066:6066" in services["web"]["ports"]
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["archiver"]["command"][:2] == ["archive", "run"]
    assert "healthcheck" in services["kafka"] and "healthcheck" in services["worker"]


def test_kafka_is_kraft_without_auto_create():
    env = load()["services"]["kafka"]["environment"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert load()["services"]["kafka"]["image"].startswith("apache/kafka:")


def test_workers_point_at_the_compose_broker_and_the_image_builds_the_cli():
    doc = load()
    assert doc["services"]["worker"]["environment"]["GRIDWATCH_BROKER"] == "kafka:9092"
    assert doc["services"]["topic-init"]["command"] == ["topics", "create"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["gridwatch"]' in dockerfile
    for pkg in ("geo", "pipeline", "topics", "ops"):
        assert f"COPY {pkg} {pkg}" in dockerfile
