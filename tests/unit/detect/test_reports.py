"""Report clustering: eleven reports of one fallen wall make one alert."""

from pipeline.detect.reports import distance_m

from .helpers import MIN, T0, host, report

LON, LAT = 112.1, 34.1
M = 1 / 111_320  # about one metre of latitude in degrees


def test_eleven_nearby_reports_make_one_alert_with_a_count():
    h = host()
    alerts = []
    for i in range(11):
        alerts += h.on_located(0, report(f"r{i}", "safety_hazard", T0 + i * 20_000,
                                         LON, LAT + (i * 10) * M)).alerts
    for t in range(T0, T0 + 30 * MIN, 30_000):
        alerts += h.on_tick(0, t).alerts
    (a,) = alerts
    assert (a.kind, a.evidence["count"], a.status) == ("report_cluster", 11, "firing")
    assert a.evidence["report_ids"] == [f"r{i}" for i in range(11)]
    assert a.at_ms == T0 + 5 * MIN  # group_wait after the first report
    assert a.alert_id == "report_cluster:410325100001001:safety_hazard:r0"
    assert a.evidence["label"] == "安全隐患"


def test_far_apart_or_other_category_reports_are_separate():
    h = host()
    alerts = []
    alerts += h.on_located(0, report("a", "safety_hazard", T0)).alerts
    alerts += h.on_located(0, report("b", "safety_hazard", T0 + MIN, lat=LAT + 500 * M)).alerts
    alerts += h.on_located(0, report("c", "dispute", T0 + MIN)).alerts
    for t in range(T0, T0 + 10 * MIN, 30_000):
        alerts += h.on_tick(0, t).alerts
    assert sorted(a.evidence["report_ids"][0] for a in alerts) == ["a", "b", "c"]


def test_growing_cluster_updates_at_most_once_per_group_interval_and_dedupes():
    h = host()
    alerts = []
    for i in range(3):
        alerts += h.on_located(0, report(f"r{i}", "city_appearance", T0 + i * MIN)).alerts
    alerts += h.on_located(0, report("r0", "city_appearance", T0 + 3 * MIN)).alerts  # duplicate
    for t in range(T0, T0 + 7 * MIN, 30_000):
        alerts += h.on_tick(0, t).alerts
    assert [a.evidence["count"] for a in alerts] == [3]
    for i in range(3, 6):
        alerts += h.on_located(0, report(f"r{i}", "city_appearance", T0 + (7 + i) * MIN)).alerts
    for t in range(T0 + 7 * MIN, T0 + 40 * MIN, 30_000):
        alerts += h.on_tick(0, t).alerts
    assert [a.evidence["count"] for a in alerts] == [3, 6]
    assert alerts[1].at_ms == alerts[0].at_ms + 15 * MIN
    assert len({a.alert_id for a in alerts}) == 1
    assert [a.step for a in alerts] == ["n3", "n6"]


def test_emergency_and_critical_keywords_go_at_once():
    h = host()
    out = h.on_located(0, report("e1", "emergency", T0, text="山体落石"))
    assert [(a.severity, a.at_ms) for a in out.alerts] == [("high", T0)]
    out = h.on_located(0, report("w1", "street_order", T0, severity="low", text="围墙倒塌 有人员被困"))
    assert [(a.severity, a.at_ms) for a in out.alerts] == [("critical", T0)]


def test_unknown_category_alias_falls_back():
    h = host()
    cat, sev = h.partition(0).reports.classifier.classify("部件", "low", "")
    assert (cat, sev) == ("public_facilities", 0)
    cat, _ = h.partition(0).reports.classifier.classify("no_such", "low", "")
    assert cat == "other"


def test_distance():
    assert abs(distance_m(LON, LAT, LON, LAT + 100 * M) - 100) < 0.5


def test_reports_either_side_of_an_index_cell_edge_still_cluster():
    h = host()
    clusterer = h.partition(0).reports
    edge_lon = 560 * clusterer._cell_lon  # a cell boundary near 112.x degrees
    edge_lat = 18_900 * clusterer._cell_lat
    for i, (dlon, dlat) in enumerate(((-0.00001, -0.00001), (0.00001, 0.00001), (0.0004, 0.0))):
        h.on_located(0, report(f"e{i}", "dispute", T0 + i * MIN, edge_lon + dlon, edge_lat + dlat))
    alerts = []
    for t in range(T0, T0 + 10 * MIN, 30_000):
        alerts += h.on_tick(0, t).alerts
    assert [a.evidence["count"] for a in alerts] == [3]
