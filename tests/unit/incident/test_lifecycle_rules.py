"""Security review, lifecycle: cancel and merge obey the open-children rule of verify, and a
merge that names its target (``merge_into``) is checked on the incident's partition."""

import fastjsonschema
import orjson
import pytest

from pipeline.errors import DLQ_CODES, Rejected
from pipeline.incident.host import IncidentHost
from pipeline.incident.lifecycle import apply_command, open_incident
from pipeline.incident.policy import policy_from_dict
from topics.registry import SCHEMA_DIR

from .test_host import alert, command
from .test_lifecycle import PATH, POLICY, T0, opened

MIN = 60_000
OTHER_PATH = ("410325", "410325100", "410325100001", "410325100001002")  # a neighbouring grid


def zone_with_open_child():
    inc, _ = opened()
    inc.children = {"child-1": "closed", "child-2": "on_site"}
    return inc


@pytest.mark.parametrize("action", ["cancel", "merge"])
def test_a_zone_incident_with_open_children_cannot_be_cancelled_or_merged(action):
    inc = zone_with_open_child()
    with pytest.raises(Rejected) as err:
        apply_command(inc, "c1", action, "t1", PATH[-3], T0 + MIN, reason="false alarm")
    assert err.value.code == "children_open" and "1 of 2" in err.value.reason
    assert action in err.value.reason
    assert inc.status == "dispatched" and "c1" not in inc.commands  # nothing changed


def test_a_zone_incident_whose_children_all_ended_can_be_cancelled():
    inc = zone_with_open_child()
    inc.children["child-2"] = "cancelled"
    (ev,) = apply_command(inc, "c1", "cancel", "t1", PATH[-3], T0 + MIN, reason="false alarm")
    assert ev.action == "cancel" and inc.status == "cancelled"


def _host_with(*alerts):
    h = IncidentHost(policy_from_dict(POLICY), lateness_ms=0)
    ids = []
    for a in alerts:
        out = h.on_alert(0, a)
        ids.append(next(iter(out.incidents)))
    return h, ids


def _second(subject="s2", path=PATH):
    a = alert(subject=subject, alert_id=f"inactivity:{subject}:{T0}")
    a.update(grid_id=path[-1], path=list(path))
    return a


def test_merge_into_an_open_incident_in_scope_on_the_same_partition_is_applied():
    h, (dup, keep) = _host_with(alert(), _second())
    out = h.on_command(0, command("m1", "merge", dup, T0 + MIN, reason="same person", merge_into=keep))
    assert not out.rejected, out.rejected
    assert h.partition(0).incidents[dup].status == "merged"
    assert h.partition(0).incidents[keep].status == "dispatched"


@pytest.mark.parametrize("target, says", [
    ("410325100001001~nobody~1", "no incident"),  # unknown (or on another partition)
    ("self", "itself"),
    ("closed", "closed"),
    ("other_grid", "outside scope"),
])
def test_merge_into_a_bad_target_is_rejected_as_bad_merge_target(target, says):
    h, (dup, keep, elsewhere) = _host_with(alert(), _second(), _second("s3", OTHER_PATH))
    part = h.partition(0)
    for cid, action in (("k1", "acknowledge"), ("k2", "resolve"), ("k3", "verify")):
        if target == "closed":
            assert not h.on_command(0, command(cid, action, keep, T0 + MIN, scope=PATH[-3])).rejected
    merge_into = {"self": dup, "closed": keep, "other_grid": elsewhere}.get(target, target)
    out = h.on_command(0, command("m1", "merge", dup, T0 + 2 * MIN, reason="duplicate",
                                  merge_into=merge_into))  # the actor answers for grid PATH[-1]
    (rej,) = out.rejected
    assert rej.code == "bad_merge_target" and says in rej.reason, rej.reason
    assert part.incidents[dup].status == "dispatched" and "m1" not in part.incidents[dup].commands


def test_a_merge_target_on_another_partition_is_a_bad_merge_target():
    h, (dup,) = _host_with(alert())
    far = next(iter(h.on_alert(1, _second()).incidents))  # open, in scope, but on partition 1
    (rej,) = h.on_command(0, command("m1", "merge", dup, T0 + MIN, reason="dup", merge_into=far)).rejected
    assert rej.code == "bad_merge_target" and "same grid's partition" in rej.reason


def test_a_merge_without_merge_into_still_works_with_its_reason():
    inc, _ = open_incident("inc-1", "k", "inactivity", "high", PATH[-1], PATH, "a", opened()[0].rule, T0)
    (ev,) = apply_command(inc, "c1", "merge", "w1", PATH[-1], T0, reason="duplicates inc-0")
    assert ev.action == "merge" and inc.status == "merged"


def test_merge_into_is_in_the_command_schema_and_bad_merge_target_a_dlq_code():
    from pipeline.envelope import validator

    check = validator("command.json")
    cmd = {**command("m1", "merge", "g1~x~1", T0, reason="dup"), "merge_into": "g1~y~1"}
    check(cmd)
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        check({**cmd, "merge_into": "g" * 129})
    dlq = orjson.loads((SCHEMA_DIR / "dlq.json").read_bytes())
    assert "bad_merge_target" in DLQ_CODES and "bad_merge_target" in dlq["properties"]["code"]["enum"]
