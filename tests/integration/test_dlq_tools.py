"""`gridwatch dlq ls|show|redrive` against a running worker on the embedded broker."""

from __future__ import annotations

import time

import orjson
import pytest
from click.testing import CliRunner

from ops.cli import main
from pipeline.devices import device_envelope
from tests.unit.pipeline.helpers import T0_MS, ping

pytestmark = pytest.mark.integration


def test_list_show_and_redrive_after_a_fix(make_pipeline):
    p = make_pipeline()
    proc = p.start_worker("dlq")
    base = ["--broker", p.settings.broker, "--prefix", p.settings.topic_prefix]

    def cli(*args: str) -> dict:
        res = CliRunner().invoke(main, [*args, *base])
        assert res.exit_code == 0, res.output
        return orjson.loads(res.output) if "--json" in args or args[1] == "show" else {}

    try:
        p.produce("pings.v1", [(b"D9", orjson.dumps(ping("D9")))], T0_MS)  # not registered yet
        p.produce("reports.v1", [(b"bad", b"{not json")], T0_MS)
        p.collect("dlq.v1", 2)
        listed = cli("dlq", "ls", "--json")
        assert sorted(r["code"] for r in listed["records"]) == ["not_json", "unknown_device"]
        assert not any(r["redriven"] for r in listed["records"])
        unknown = next(r for r in listed["records"] if r["code"] == "unknown_device")
        shown = cli("dlq", "show", unknown["position"])
        assert orjson.loads(shown["original"])["data"]["device_id"] == "D9" and shown["retriable"]

        # the fix: register the device; then send the ping back
        reg = {"device_id": "D9", "kind": "door", "lon": 0.5, "lat": 0.5}
        p.produce("devices.v1", [(b"D9", orjson.dumps(device_envelope(reg, "2026-07-01T00:00:00Z")))])
        # as an operator would: redrive what is waiting until the worker has seen the device
        # (a redrive that races the registration comes back as a new DLQ record)
        deadline = time.monotonic() + 60
        while True:
            assert cli("dlq", "redrive", "--code", "unknown_device", "--json")["redriven"] == 1
            got = p.collect_upto("located.v1", 1, timeout_s=3)
            if got:
                break
            assert time.monotonic() < deadline, "the redriven ping was never located"
        located = orjson.loads(got[0].value)["data"]
        assert located["input"]["device_id"] == "D9" and located["grid_id"] == "g1"
        # nothing is redriven twice
        again = cli("dlq", "redrive", "--code", "unknown_device", "--json")
        assert again["redriven"] == 0 and again["skipped_already_redriven"] >= 1
        # a record that fails again comes back marked with its redrive count
        assert cli("dlq", "redrive", "--code", "not_json", "--json")["redriven"] == 1
        deadline = time.monotonic() + 60
        while not [r for r in cli("dlq", "ls", "--waiting", "--code", "not_json", "--json")["records"]]:
            assert time.monotonic() < deadline, "the redriven bad report did not come back"
            time.sleep(0.5)
        waiting = cli("dlq", "ls", "--waiting", "--json")["records"]
        assert [(r["code"], r["redrive_count"]) for r in waiting] == [("not_json", 1)]
        dry = cli("dlq", "redrive", "--dry-run", "--json")
        assert dry["redriven"] == 1 and dry["dry_run"]

        # ops at a glance: the ingest group has caught up on its inputs; one record waits
        lag = cli("lag", "--json")
        ingest = lag["totals"]["gridwatch-ingest"]
        assert set(ingest) >= {"pings.v1", "reports.v1"} and sum(ingest.values()) <= 1
        status = CliRunner().invoke(main, ["status", "--json", *base])
        report = orjson.loads(status.output)
        assert (status.exit_code, report["healthy"], report["dlq_waiting"]) == (0, True, 1)
        # per partition: offsets, records and the groups' lag (bytes: the embedded broker has none)
        res = CliRunner().invoke(main, ["topics", "describe", "--partitions", "--json", *base])
        parts = orjson.loads(res.output)
        pings = [r for r in parts if r["topic"] == "pings.v1"]
        assert res.exit_code == 0 and len(pings) == p.settings.partitions
        assert sum(r["end"] for r in pings) >= 1 and all(r["bytes"] is None for r in pings)
        assert any("gridwatch-ingest" in r["lag"] for r in pings)
        table = CliRunner().invoke(main, ["topics", "describe", "--partitions", *base])
        assert table.exit_code == 0 and "pings.v1" in table.output and "gridwatch-ingest=" in table.output
    finally:
        p.stop_worker(proc)


def test_bad_options_are_readable():
    res = CliRunner().invoke(main, ["dlq", "ls", "--since", "yesterday", "--broker", "127.0.0.1:1"])
    assert res.exit_code == 1 and "is not an ISO 8601 time" in res.output
