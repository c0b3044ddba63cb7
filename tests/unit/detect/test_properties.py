"""Property-based: detectors never crash, never go back in time, never double an output,
whatever the order, duplication or lateness of their input."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.detect.host import DetectorHost, event_ms
from pipeline.detect.inactivity import Subject
from pipeline.detect.landslide import ZoneLevels

from .helpers import HOUR, MIN, T0, host, ping, report

SUBJECTS = {f"s{i}": Subject(f"s{i}", "living_alone_12h" if i % 2 else "living_alone_24h",
                             grid_id="g0", devices=(f"door{i}", f"water{i}")) for i in range(3)}

event = st.one_of(
    st.tuples(st.just("door"), st.integers(0, 2), st.integers(0, 72 * 60), st.sampled_from([0, 1])),
    st.tuples(st.just("water"), st.integers(0, 2), st.integers(0, 72 * 60),
              st.floats(0, 0.05, allow_nan=False)),
    st.tuples(st.just("heartbeat"), st.integers(0, 2), st.integers(0, 72 * 60), st.just(0)),
    st.tuples(st.just("rain"), st.integers(0, 1), st.integers(0, 72 * 60), st.floats(0, 150)),
    st.tuples(st.just("gnss"), st.integers(0, 1), st.integers(0, 72 * 60), st.floats(-50, 500)),
    st.tuples(st.just("report"), st.integers(0, 5), st.integers(0, 72 * 60),
              st.sampled_from(["safety_hazard", "emergency", "dispute", "bogus"])),
    st.tuples(st.just("tick"), st.just(0), st.integers(0, 80 * 60), st.just(0)),
)


def to_input(ev):
    kind, i, minute, v = ev
    t = T0 + minute * MIN
    if kind == "door":
        return ping(f"door{i}", "door", t, v, "bool", subject=f"s{i}", heartbeat_s=3600)
    if kind == "water":
        return ping(f"water{i}", "water_meter", t, v, "m3", subject=f"s{i}", heartbeat_s=3600)
    if kind == "heartbeat":
        return ping(f"door{i}", "heartbeat", t, subject=f"s{i}", heartbeat_s=3600)
    if kind == "rain":
        return ping(f"rg{i}", "rain_gauge", t, v, "mm", zone="Z1")
    if kind == "gnss":
        return ping(f"gn{i}", "gnss_displacement", t, v, "mm", zone="Z1")
    if kind == "report":
        return report(f"r{i}-{minute}", v, t, lat=34.1 + i * 0.0005)  # ids are unique per report
    return t  # a tick


def run(events, h: DetectorHost):
    zones = ZoneLevels()
    emitted = []
    newest = 0
    evaluated: dict[str, int] = {}  # point -> the latest time it was evaluated at
    for ev in events:
        item = to_input(ev)
        if isinstance(item, int):
            newest = max(newest, item)
            before = h.partition(0).watermark.now_ms
            out = h.on_tick(0, item)
        else:
            newest = max(newest, event_ms(item["observed_at"]))
            before = h.partition(0).watermark.now_ms
            out = h.on_located(0, item)
        now = h.partition(0).watermark.now_ms
        assert now >= before, "the watermark went back"
        for a in out.alerts:
            assert a.at_ms <= newest, f"{a.alert_id} decided after the newest time seen"
            emitted.append(a)
        for change in out.levels:
            for z in change.zones:
                emitted += zones.apply(z, change)
        for pid, pt in h.partition(0).points.items():
            assert pt.eval_ms >= evaluated.get(pid, 0), f"point {pid} was evaluated back in time"
            assert pt.eval_ms >= pt.last_ms, f"point {pid} judged before its newest reading"
            evaluated[pid] = pt.eval_ms
    return emitted


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event, max_size=80), st.randoms(use_true_random=False))
def test_never_crash_never_back_in_time_never_doubled(events, rnd):
    shuffled = list(events)
    rnd.shuffle(shuffled)
    dup = shuffled + [e for e in shuffled if rnd.random() < 0.3]  # duplicates, late
    rnd.shuffle(dup)
    for seq in (events, shuffled, dup):
        h = host(subjects=SUBJECTS, partition_of=lambda g: 0)
        emitted = run(seq, h)
        steps = [(a.alert_id, a.step) for a in emitted]
        assert len(steps) == len(set(steps)), "an alert record was emitted twice"


@settings(max_examples=60, deadline=None)
@given(st.lists(event, max_size=60))
def test_same_input_same_alerts(events):
    a = [x.encode() for x in run(events, host(subjects=SUBJECTS, partition_of=lambda g: 0))]
    b = [x.encode() for x in run(events, host(subjects=SUBJECTS, partition_of=lambda g: 0))]
    assert a == b


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 96 * 60)), max_size=40))
def test_each_silence_alerts_at_most_once_per_episode(pings):
    h = host()
    alerts = []
    for i, minute in sorted(pings, key=lambda p: p[1]):
        alerts += h.on_located(0, ping(f"door{i}", "door", T0 + minute * MIN, subject=f"s{i}",
                                        heartbeat_s=86400 * 7)).alerts
    alerts += h.on_tick(0, T0 + 200 * HOUR).alerts
    fired = [a.alert_id for a in alerts if a.kind == "inactivity" and a.status == "firing"]
    assert len(fired) == len(set(fired))
    # everyone who was ever seen is silent at the end: each has exactly one open episode
    open_now = {a.subject_id for a in alerts if a.kind == "inactivity" and a.status == "firing"}
    assert open_now == {f"s{i}" for i, _ in pings}
