"""Crash safety: the replay scenario run undisturbed, and again with the worker killed (SIGKILL)
three times - mid-input, right after alerts were raised, right after an acknowledgement - and
restarted each time. The final incidents and every escalation (ids and bodies) are the same."""

from __future__ import annotations

import os
import time

import pytest

from pipeline.settings import Settings
from tests.integration.conftest import Pipeline
from tests.integration.test_replay import outputs, run_scenario
from topics.admin import create

pytestmark = [pytest.mark.integration, pytest.mark.engines]


def _run(broker, atlas_file, tmp_path, tag: str, crash_at: tuple[str, ...]) -> tuple[dict, int]:
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"{tag}.", embedded=broker.embedded)
    create(s)
    work = tmp_path / tag
    work.mkdir()
    p = Pipeline(s, atlas_file, work, {"GRIDWATCH_CLOCK": "off", "GRIDWATCH_APP_ID": tag})
    killed = run_scenario(p, tag, crash_at)
    return outputs(p), killed


def test_sigkill_three_times_changes_no_incident_and_no_escalation(broker, atlas_file, tmp_path):
    calm, _ = _run(broker, atlas_file, tmp_path, f"calm{os.getpid()}r{time.monotonic_ns() % 1000000}", ())
    rough, killed = _run(broker, atlas_file, tmp_path, f"rough{os.getpid()}r{time.monotonic_ns() % 1000000}",
                         ("mid-inputs", "after-alerts", "after-ack"))
    assert killed == 3
    assert len(calm["escalations.v1"]) > 20 and calm["incidents.v1"]
    assert rough["incidents.v1"] == calm["incidents.v1"]  # final state of every incident
    assert rough["escalations.v1"] == calm["escalations.v1"]  # nothing lost, nothing new
    assert rough["alerts.v1"] == calm["alerts.v1"]
