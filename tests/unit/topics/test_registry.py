import fastjsonschema
import pytest

from topics.registry import TOPICS, topic_names

DESIGN = {"reports.v1", "pings.v1", "devices.v1", "located.v1", "alerts.v1", "incidents.v1",
          "escalations.v1", "notifications.v1", "commands.v1", "clock.v1", "dlq.v1"}


def test_every_design_topic_is_declared():
    assert DESIGN <= {t.name for t in TOPICS}
    assert topic_names("x.")["dlq.v1"] == "x.dlq.v1"


@pytest.mark.parametrize("spec", TOPICS, ids=lambda t: t.name)
def test_schema_compiles_and_configs_are_consistent(spec):
    fastjsonschema.compile(spec.load_schema())
    cfg = spec.configs()
    assert cfg["cleanup.policy"] == ("compact" if spec.compacted else "delete")


def test_registry_and_compacted_topics():
    compacted = {t.name for t in TOPICS if t.compacted}
    assert compacted == {"devices.v1", "subjects.v1", "rosters.v1", "incidents.v1", "kpis.v1",
                         "dlq-redrives.v1"}
    # ticks are co-partitioned with located events: each detector partition has its own clock
    assert next(t for t in TOPICS if t.name == "clock.v1").partition_count(12) == 12
    assert next(t for t in TOPICS if t.name == "located.v1").partition_count(12) == 12
