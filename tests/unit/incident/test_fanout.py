"""A red landslide zone fans out to every grid it touches; the parent closes last."""

import pytest

from geo.area import grids_in_area
from geo.locate import Locator
from pipeline.detect.inactivity import Subject
from pipeline.errors import Rejected
from pipeline.incident.fanout import zone_grids_from
from pipeline.incident.host import IncidentHost
from pipeline.incident.lifecycle import apply_command
from pipeline.incident.policy import load_policy
from tests.unit.geo.layers_fixtures import two_by_two

from .test_host import alert, command

T0 = 1_782_864_000_000
MIN = 60_000


@pytest.fixture(scope="module")
def locator():
    return Locator(two_by_two())


def test_zone_grids_match_the_area_query(locator):
    subjects = {"s1": Subject("s1", "living_alone_24h", grid_id="g2")}
    zone_grids = zone_grids_from(locator, subjects)
    hits = zone_grids("H1")
    polygon = locator.hazards[locator.hazards["id"] == "H1"].geometry.iloc[0]
    assert {h["grid_id"] for h in hits} == {h.grid_id for h in grids_in_area(locator, polygon)}
    assert {h["grid_id"] for h in hits} == {"g1", "g2", "g3", "g4"}
    assert next(h for h in hits if h["grid_id"] == "g2")["subjects"] == ["s1"]
    assert next(h for h in hits if h["grid_id"] == "g1")["path"] == ["C", "T", "M", "g1"]
    assert zone_grids("nowhere") == []


def test_red_zone_fans_out_and_the_parent_closes_only_after_its_children(locator):
    hosts = {}  # one host per "partition" here: grid id -> its own host, as on a real cluster
    zone_grids = zone_grids_from(locator, {})

    def host_for(grid):
        return hosts.setdefault(grid, IncidentHost(load_policy(), 0, zone_grids))

    a = alert("landslide", severity="red", zone="H1", subject=None, alert_id="landslide:H1:1")
    a.update(grid_id="g4", path=["C", "T", "M", "g4"])
    out = host_for("g4").on_alert(0, a)
    parent = next(iter(out.incidents.values()))
    assert parent.rule.name == "landslide_red" and parent.level == "town"
    assert sorted(g for g, _ in out.links) == ["g1", "g2", "g3", "g4"]
    assert [e.action for e in out.escalations][-1] == "fanned_out"

    def deliver(links):
        pending = list(links)
        while pending:
            grid, link = pending.pop(0)
            changes = host_for(grid).on_link(0, link)
            assert not changes.rejected
            pending += changes.links

    deliver(out.links)
    children = {g: next(i for i in host_for(g).partition(0).incidents.values() if i.parent_id)
                for g in ("g1", "g2", "g3", "g4")}
    assert {c.grid_id for c in children.values()} == {"g1", "g2", "g3", "g4"}
    assert all(c.level == "town" and c.rule.name == "landslide_red" for c in children.values())

    def act(inc, cid, action, at):
        changes = host_for(inc.grid_id).on_command(0, command(cid, action, inc.incident_id, at, scope="T"))
        assert not changes.rejected, changes.rejected
        deliver(changes.links)

    act(parent, "p-ack", "acknowledge", T0 + MIN)
    act(parent, "p-res", "resolve", T0 + 2 * MIN)
    with pytest.raises(Rejected) as err:  # four grids still open: the zone cannot be closed
        apply_command(parent, "p-ver", "verify", "a1", "T", T0 + 3 * MIN)
    assert err.value.code == "children_open"
    for n, child in enumerate(children.values()):
        act(child, f"c{n}-ack", "acknowledge", T0 + 4 * MIN)
        act(child, f"c{n}-res", "resolve", T0 + 5 * MIN)
        act(child, f"c{n}-ver", "verify", T0 + 6 * MIN)
    assert set(parent.children.values()) == {"closed"}
    act(parent, "p-ver2", "verify", T0 + 7 * MIN)
    assert parent.status == "closed"
