"""The incremental window sums agree with summing from scratch, whatever the arrival order."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.detect.series import Series

WINDOWS = (10, 30, 60)

step = st.one_of(st.tuples(st.just("add"), st.integers(0, 400), st.floats(0, 50)),
                 st.tuples(st.just("eval"), st.integers(0, 40), st.just(0.0)),
                 st.tuples(st.just("trim"), st.just(0), st.just(0.0)))


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=120))
def test_incremental_sums_match_brute_force(steps):
    s = Series(WINDOWS)
    truth: dict[int, float] = {}
    at = 0
    for op, a, v in steps:
        if op == "add":
            if a <= s.at - max(WINDOWS):
                continue  # older than every window: the detector rejects these
            s.add(a, v)
            truth[a] = v
        elif op == "eval":
            at += a
        else:
            cut = at - max(WINDOWS)
            if s.times and s.times[0] <= cut:
                s.trim(cut + 1 if cut + 1 <= at else at)
                truth = {t: x for t, x in truth.items() if t >= min(s.times, default=t)}
        got = s.sums_at(at)
        for i, w in enumerate(WINDOWS):
            want = sum(x for t, x in truth.items() if at - w < t <= at)
            assert got[i] == pytest.approx(want, abs=1e-6)


def test_value_at():
    s = Series()
    for t, v in ((10, 1.0), (30, 3.0), (20, 2.0)):
        s.add(t, v)
    assert s.value_at(5) is None
    assert s.value_at(25) == (20, 2.0)
    assert s.value_at(99) == (30, 3.0)
