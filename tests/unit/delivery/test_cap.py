"""CAP 1.2 output for an inactivity incident and a landslide zone validates against the XSD."""

from xml.etree import ElementTree as ET

import shapely

from pipeline.delivery.cap import NS, incident_to_cap, validate_cap

PATH = ["410325", "410325100", "410325100001", "410325100001001"]


def incident(kind, severity, state="dispatched", **extra):
    return {"incident_id": f"{PATH[-1]}~{kind}:x~1782864000000", "kind": kind, "severity": severity,
            "grid_id": PATH[-1], "path": PATH, "state": state, "level": "grid_worker",
            "opened_at": "2026-07-01T00:00:00.000Z", "acknowledged_at": None, "resolved_at": None,
            "closed_at": None, **extra}


def find(xml: bytes, tag: str) -> list[str]:
    return [e.text for e in ET.fromstring(xml).iter(f"{{{NS}}}{tag}")]


def test_inactivity_incident_is_restricted_and_valid():
    xml = incident_to_cap(incident("inactivity", "high"), "嵩县 城关镇 某社区 某网格",
                          shapely.box(112.0, 34.0, 112.01, 34.01))
    assert validate_cap(xml) == []
    assert find(xml, "scope") == ["Restricted"] and find(xml, "category") == ["Health"]
    assert find(xml, "sent") == ["2026-07-01T08:00:00+08:00"]
    assert find(xml, "severity") == ["Severe"] and find(xml, "msgType") == ["Alert"]


def test_landslide_zone_is_public_with_its_polygon_and_valid():
    zone = shapely.Polygon([(112.0, 34.0), (112.02, 34.0), (112.03, 34.02), (112.0, 34.03)])
    inc = incident("landslide", "red", state="acknowledged", acknowledged_at="2026-07-01T00:05:00.000Z",
                   children={"total": 4, "acknowledged": 2, "done": 1})
    xml = incident_to_cap(inc, "滑坡隐患区 H1", zone, web="https://gridwatch.example/i/1")
    assert validate_cap(xml) == []
    assert find(xml, "scope") == ["Public"] and find(xml, "msgType") == ["Update"]
    assert find(xml, "urgency") == ["Immediate"] and find(xml, "severity") == ["Extreme"]
    (polygon,) = find(xml, "polygon")
    pairs = polygon.split()
    assert pairs[0] == pairs[-1] == "34.000000,112.000000" and len(pairs) == 5
    assert find(xml, "value") == ["410325", PATH[-1]]


def test_cancelled_and_invalid_documents():
    xml = incident_to_cap(incident("report_cluster", "low", state="cancelled"), "某网格", None,
                          category="dispute")
    assert validate_cap(xml) == [] and find(xml, "msgType") == ["Cancel"]
    broken = xml.replace(b"<status>Actual</status>", b"<status>Maybe</status>")
    assert validate_cap(broken)  # the XSD really is checked


def test_each_message_has_its_own_identifier_and_updates_reference_the_alert():
    opened = incident("inactivity", "high")
    first = incident_to_cap(opened, "某网格", step=2, sent_at=opened["opened_at"],
                            deadline="2026-07-01T12:15:00.000Z")
    assert validate_cap(first) == []
    assert find(first, "identifier") == [f"{opened['incident_id']}:2"]
    assert find(first, "references") == [] and find(first, "msgType") == ["Alert"]
    assert find(first, "expires") == ["2026-07-01T20:15:00+08:00"]  # the deadline, local time
    for state, msg_type in (("acknowledged", "Update"), ("cancelled", "Cancel")):
        later = incident_to_cap({**opened, "state": state}, "某网格", step=5,
                                sent_at="2026-07-01T12:20:00.000Z")
        assert validate_cap(later) == [], state
        assert find(later, "msgType") == [msg_type]
        assert find(later, "identifier") == [f"{opened['incident_id']}:5"]
        (ref,) = find(later, "references")
        sender, ident, sent = ref.split(",")
        assert (sender, ident) == (find(first, "sender")[0], find(first, "identifier")[0])
        assert sent == find(first, "sent")[0]
        assert find(later, "expires") == ["2026-07-02T20:20:00+08:00"]  # 24 h: no deadline
