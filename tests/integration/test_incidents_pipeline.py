"""Incidents through the embedded broker with an injected clock: an inactivity alert opens an
incident, nobody acknowledges, it climbs to the town, an acknowledgement stops it, resolve and
verify close it, the KPIs say so, and 30 days later the worker forgets it (a tombstone)."""

from __future__ import annotations

import os
import time

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from pipeline.detect.wiring import tick_envelope
from pipeline.devices import device_envelope
from pipeline.envelope import iso_ms, validator
from pipeline.settings import Settings
from pipeline.subjects import subject_envelope
from tests.integration.conftest import Pipeline, wait_committed
from tests.unit.pipeline.helpers import T0_MS, envelope
from topics.admin import create

pytestmark = [pytest.mark.integration, pytest.mark.engines]
MIN = 60_000
DAY = 24 * 60 * MIN


class Topic:
    """Everything on one topic so far, re-read on demand."""

    def __init__(self, s: Settings, short: str) -> None:
        self.c = KafkaConsumer(s.topic(short), bootstrap_servers=s.broker,
                               auto_offset_reset="earliest", consumer_timeout_ms=300)
        self.items: list[dict] = []

    def wait(self, pred, what: str, timeout_s: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.items += [orjson.loads(m.value) for m in self.c]
            if pred(self.items):
                return self.items
        raise AssertionError(f"timed out waiting for {what}; saw {[i['data'] for i in self.items][-5:]}")


def test_inactivity_incident_climbs_to_the_town_and_closes(broker, atlas_file, tmp_path):
    tag = f"inc{os.getpid()}"
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"{tag}.", embedded=broker.embedded)
    create(s)
    p = Pipeline(s, atlas_file, tmp_path, {"GRIDWATCH_CLOCK": "off", "GRIDWATCH_APP_ID": tag})
    door = {"device_id": "door-s1", "kind": "door", "lon": 0.5, "lat": 0.5, "subject_id": "s1",
            "heartbeat_s": 604800}
    p.produce("devices.v1", [(b"door-s1", orjson.dumps(device_envelope(door, iso_ms(T0_MS))))])
    subject = {"subject_id": "s1", "profile": "living_alone_24h", "grid_id": "g1", "devices": ["door-s1"]}
    p.produce("subjects.v1", [(b"s1", orjson.dumps(subject_envelope(subject, iso_ms(T0_MS))))])
    proc = p.start_worker()
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap)

    def tick(at: int) -> None:
        for part in range(s.partitions):
            prod.send(s.topic("clock.v1"), key=b"tick", partition=part,
                      value=orjson.dumps(tick_envelope(at, part)))
        prod.flush()

    def command(cid: str, action: str, incident_id: str, at: int, scope: str = "g1", **extra) -> None:
        data = {"command_id": cid, "incident_id": incident_id, "action": action, "actor": "duty-1",
                "scope": scope, "at": iso_ms(at), **extra}
        prod.send(s.topic("commands.v1"), key=incident_id.encode(), timestamp_ms=at,
                  value=orjson.dumps(envelope("gridwatch.command.v1", data, cid)))
        prod.flush()

    try:
        ping = {"device_id": "door-s1", "kind": "door", "value": 1, "unit": "bool",
                "observed_at": iso_ms(T0_MS)}
        p.produce("pings.v1", [(b"door-s1", orjson.dumps(envelope("gridwatch.ping.v1", ping, "p1")),
                                T0_MS)])
        p.collect("located.v1", 1)
        escalations = Topic(s, "escalations.v1")
        t_open = T0_MS + DAY
        # the located ping must be in the detectors before the clock jumps a day
        wait_committed(broker.bootstrap, tag, s.topic("located.v1"), 1, "the detectors to take the ping")
        tick(t_open + MIN)
        items = escalations.wait(lambda xs: any(x["data"]["transition"] == "dispatched" for x in xs),
                                 "the incident to be dispatched", 90)
        incident_id = items[0]["data"]["incident_id"]
        assert incident_id.startswith("g1~inactivity:s1~")
        dispatched = next(x["data"] for x in items if x["data"]["transition"] == "dispatched")
        assert dispatched["to"] == ["g1", "police_grid"] and dispatched["at"] == iso_ms(t_open)

        tick(t_open + 50 * MIN)  # 15 min per level: grid leader, community, town
        items = escalations.wait(lambda xs: any(x["data"]["transition"] == "escalated"
                                                and x["data"]["level"] == "town" for x in xs),
                                 "the incident to reach the town")
        climbed = [(x["data"]["level"], x["data"]["to"][0]) for x in items
                   if x["data"]["transition"] == "escalated"]
        assert climbed == [("grid_leader", "g1"), ("community", "M"), ("town", "T")]

        command("bad-1", "acknowledge", incident_id, t_open + 51 * MIN, scope="elsewhere")
        prod.send(s.topic("commands.v1"), key=b"x", value=b"{not json")
        command("c-ack", "acknowledge", incident_id, t_open + 52 * MIN, scope="T")
        command("c-ack", "acknowledge", incident_id, t_open + 53 * MIN, scope="T")  # a duplicate
        escalations.wait(lambda xs: any(x["data"]["transition"] == "acknowledge" for x in xs),
                         "the acknowledgement")
        tick(t_open + 100 * MIN)  # acknowledged: nothing climbs any more
        command("c-res", "resolve", incident_id, t_open + 101 * MIN, scope="T", reason="visited, unwell")
        command("c-ver", "verify", incident_id, t_open + 110 * MIN, scope="T")
        items = escalations.wait(lambda xs: any(x["data"]["transition"] == "verify" for x in xs),
                                 "the verification")
        transitions = [x["data"]["transition"] for x in items]
        assert transitions.count("acknowledge") == 1
        assert transitions.count("escalated") == 3 and "unanswered_at_top" not in transitions
        assert [x["id"] for x in items] == [f"{incident_id}:{n}" for n in range(1, len(items) + 1)]
        for x in items:
            validator("escalation.json")(x["data"])

        state = Topic(s, "incidents.v1").wait(
            lambda xs: any(x["data"]["state"] == "closed" for x in xs), "the closed state")[-1]["data"]
        validator("incident.json")(state)
        assert (state["state"], state["level"], state["breaches"]) == ("closed", "town", ["acknowledge"])

        kpis = Topic(s, "kpis.v1").wait(
            lambda xs: any(x["data"]["unit"] == "T" and x["data"]["closed"] == 1 for x in xs),
            "the town's KPIs")
        town = [x["data"] for x in kpis if x["data"]["unit"] == "T"][-1]
        assert (town["opened"], town["acknowledged"], town["closed"], town["backlog"]) == (1, 1, 1, 0)
        assert town["mtta_s"] == 52 * 60 and town["mttr_s"] == 101 * 60
        assert town["ack_breach_rate"] == 1.0 and town["closure_rate"] == 1.0

        dlq = Topic(s, "dlq.v1").wait(lambda xs: len(xs) >= 2, "the rejected commands")
        assert sorted(x["data"]["code"] for x in dlq) == ["not_json", "out_of_scope"]

        # 30 days after it closed the worker forgets it: a tombstone, then a late command is refused
        tick(t_open + 110 * MIN + 30 * DAY + 10 * MIN)
        c = KafkaConsumer(s.topic("incidents.v1"), bootstrap_servers=s.broker, auto_offset_reset="earliest",
                          consumer_timeout_ms=300)
        deadline, tombstones = time.monotonic() + 60, []
        while not tombstones and time.monotonic() < deadline:
            tombstones = [m.key for m in c if m.value is None]
        c.close()
        assert tombstones == [incident_id.encode()]
        command("c-late", "comment", incident_id, t_open + 31 * DAY, scope="T", reason="late")
        dlq = Topic(s, "dlq.v1").wait(lambda xs: len(xs) >= 3, "the late command's rejection")
        assert sorted(x["data"]["code"] for x in dlq) == ["not_json", "out_of_scope", "unknown_incident"]
    finally:
        prod.close()
        p.stop_worker(proc)


def test_red_zone_fans_out_across_partitions_and_closes_last(broker, atlas_file, tmp_path):
    tag = f"fan{os.getpid()}"
    s = Settings.from_env({}, broker=broker.bootstrap, topic_prefix=f"{tag}.", embedded=broker.embedded)
    create(s)
    p = Pipeline(s, atlas_file, tmp_path, {"GRIDWATCH_CLOCK": "off", "GRIDWATCH_APP_ID": tag})
    proc = p.start_worker("fan")
    prod = KafkaProducer(bootstrap_servers=broker.bootstrap)
    try:
        red = {"alert_id": "landslide:H1:1", "kind": "landslide", "grid_id": "g4",
               "path": ["C", "T", "M", "g4"], "zone_id": "H1", "subject_id": None,
               "severity": "red", "status": "firing", "route": "duty", "reason": "level_up",
               "observed_at": iso_ms(T0_MS), "evidence": {"zone_level": "red"}}
        prod.send(s.topic("alerts.v1"), key=b"g4",
                  value=orjson.dumps(envelope("gridwatch.alert.v1", red, "a1")))
        prod.flush()
        incidents = Topic(s, "incidents.v1")
        items = incidents.wait(lambda xs: len({x["data"]["incident_id"] for x in xs
                                               if x["data"].get("parent_id")}) == 4,
                               "a grid incident for each of the four grids H1 touches", 90)
        children = {x["data"]["grid_id"]: x["data"]["incident_id"] for x in items
                    if x["data"].get("parent_id")}
        parent_id = next(x["data"]["incident_id"] for x in items if not x["data"].get("parent_id"))
        assert sorted(children) == ["g1", "g2", "g3", "g4"]

        def command(cid, action, iid, minute):
            data = {"command_id": cid, "incident_id": iid, "action": action, "actor": "town-duty",
                    "scope": "T", "at": iso_ms(T0_MS + minute * MIN)}
            prod.send(s.topic("commands.v1"), key=iid.encode(), timestamp_ms=T0_MS + minute * MIN,
                      value=orjson.dumps(envelope("gridwatch.command.v1", data, cid)))
            prod.flush()

        command("p1", "acknowledge", parent_id, 1)
        command("p2", "resolve", parent_id, 2)
        command("p3", "verify", parent_id, 3)  # refused: the grids are not done
        dlq = Topic(s, "dlq.v1").wait(lambda xs: any(x["data"]["code"] == "children_open" for x in xs),
                                      "the refusal to close the zone first")
        assert "4 of 4 grid incidents" in next(x["data"]["reason"] for x in dlq
                                               if x["data"]["code"] == "children_open")
        for n, iid in enumerate(children.values()):
            command(f"c{n}a", "resolve", iid, 4)
            command(f"c{n}b", "verify", iid, 5)
        incidents.wait(lambda xs: any(x["data"]["incident_id"] == parent_id
                                      and x["data"].get("children", {}).get("done") == 4 for x in xs),
                       "the zone incident to see its grids done")
        command("p4", "verify", parent_id, 6)
        incidents.wait(lambda xs: any(x["data"]["incident_id"] == parent_id
                                      and x["data"]["state"] == "closed" for x in xs),
                       "the zone incident closed")
    finally:
        prod.close()
        p.stop_worker(proc)
