"""Inactivity (独居老人等关爱对象无活动): a silent person raises an alert, a silent device does not.

A subject (id, home grid, household, devices, profile) has a quiet window. Activity pings (door,
gate/face recognition, water meter at or above a volume, smart plug at or above a power, any
``activity`` ping) reset it. Every ping from a device also proves the device alive. When the
window passes while all the subject's devices are healthy, ``inactivity`` fires for the
subject's grid; when a device misses its heartbeat interval (x grace) first, ``device_offline``
goes to the maintenance route instead and inactivity is held back until the device is back.
Activity after an alert resolves it (``activity_resumed``, or ``late_activity`` when the
activity happened before the deadline but arrived after it) when the profile auto-resolves.

`step_ping` and `step_time` are pure functions of (state, input); `InactivityDetector` keeps
one partition's states and a lazy timer heap (one entry per subject, re-armed when popped).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.detect.alerts import MAINTENANCE, Alert
from pipeline.detect.clock import quiet_deadline
from pipeline.detect.config import InactivityConfig, Profile

ACTIVITY_KINDS = frozenset({"activity", "door", "gate"})


@dataclass(frozen=True, slots=True)
class Subject:
    """A person under care (关爱对象) from the subject registry."""

    subject_id: str
    profile: str
    grid_id: str | None = None
    household_id: str | None = None
    devices: tuple[str, ...] = ()
    call: tuple[str, ...] = ()


class Heartbeats(dict):
    """Device -> heartbeat interval (ms); only devices off the default are stored."""

    def __init__(self, default_ms: int) -> None:
        super().__init__()
        self.default_ms = default_ms

    def __missing__(self, device: str) -> int:
        return self.default_ms


@dataclass(slots=True)
class SubjectState:
    """Everything remembered about one subject (small: see `gridwatch bench detectors`).

    Grid id and path are shared with every subject of the grid; ``offline`` exists only while
    a device is down.
    """

    subject_id: str
    grid_id: str
    path: tuple[str, ...]
    armed_ms: int  # when watching started (first ping or registration)
    seen: dict[str, int] = field(default_factory=dict)  # device -> last ping time (0: never)
    last_activity_ms: int = 0
    inactive_since: int = 0  # episode start (last activity) of a firing inactivity alert
    offline: dict[str, int] | None = None  # device -> last seen when alerted
    restored_ms: int = 0  # when the last device outage ended: quiet time restarts there
    scheduled_ms: int = 0  # the live timer entry's time (0: none)


def is_activity(kind: str, value: float | None, unit: str | None, cfg: InactivityConfig) -> bool:
    """Does this ping show the person doing something?"""
    if kind in ACTIVITY_KINDS:
        return value is None or value != 0
    if kind == "water_meter" and value is not None:
        litres = value * 1000 if unit == "m3" else value
        return litres >= cfg.water_activity_l
    if kind == "smart_plug" and value is not None:
        return value >= cfg.plug_activity_w
    return False


def _quiet_from(state: SubjectState) -> int:
    """Quiet time counts from the last activity, but never across a device outage."""
    return max(state.last_activity_ms, state.armed_ms, state.restored_ms)


def _expiry(state: SubjectState, device: str, profile: Profile, hb: Mapping[str, int]) -> int:
    return (state.seen[device] or state.armed_ms) + int(hb[device] * profile.heartbeat_grace)


def next_due(state: SubjectState, profile: Profile, hb: Mapping[str, int]) -> int:
    """The earliest event time at which `step_time` may have something to say (0: nothing)."""
    off = state.offline or ()
    times = [_expiry(state, d, profile, hb) for d in state.seen if d not in off]
    if not state.inactive_since and not off:  # held back while a device is down
        times.append(quiet_deadline(_quiet_from(state), profile.quiet_window, profile.night))
    return min(times) if times else 0


def _alert(state: SubjectState, kind: str, episode: str, severity: str, status: str, at: int,
           evidence: dict, reason: str | None = None, route: str = "duty") -> Alert:
    return Alert(f"{kind}:{episode}", kind, state.grid_id, severity, status, at, status,
                 evidence, route=route, path=state.path, subject_id=state.subject_id,
                 reason=reason)


def step_ping(state: SubjectState, profile: Profile, cfg: InactivityConfig, device: str,
              kind: str, value: float | None, unit: str | None, t_ms: int) -> list[Alert]:
    """Apply one ping (late or not) to a subject; return the alerts it resolves."""
    out: list[Alert] = []
    if t_ms > state.seen.get(device, 0):
        state.seen[device] = t_ms
    if state.offline and device in state.offline and t_ms > state.offline[device]:
        since = state.offline.pop(device)
        if not state.offline:
            state.offline = None
            state.restored_ms = max(state.restored_ms, t_ms)
        out.append(_alert(state, "device_offline", f"{device}:{since}", "low", "resolved", t_ms,
                          {"device_id": device, "last_seen": since, "back_at": t_ms},
                          "heartbeat_resumed", MAINTENANCE))
    if not is_activity(kind, value, unit, cfg):
        return out
    if t_ms > state.last_activity_ms:
        state.last_activity_ms = t_ms
    episode = state.inactive_since
    if episode and t_ms > episode:
        deadline = quiet_deadline(episode, profile.quiet_window, profile.night)
        reason = "activity_resumed" if t_ms >= deadline else "late_activity"
        evidence = {"last_activity": episode, "deadline": deadline, "activity_at": t_ms,
                    "device_id": device, "kind": kind}
        if profile.auto_resolve:
            state.inactive_since = 0
            out.append(_alert(state, "inactivity", f"{state.subject_id}:{episode}",
                              profile.severity, "resolved", t_ms, evidence, reason))
        else:  # stays open for a person to close; say that activity was seen
            state.inactive_since = 0
            a = _alert(state, "inactivity", f"{state.subject_id}:{episode}", profile.severity,
                       "firing", t_ms, evidence, reason)
            out.append(Alert(a.alert_id, a.kind, a.grid_id, a.severity, a.status, a.at_ms,
                             "activity", a.evidence, a.route, a.path, a.zone_id, a.subject_id,
                             a.reason))
    return out


def step_time(state: SubjectState, profile: Profile, now_ms: int,
              hb: Mapping[str, int]) -> list[Alert]:
    """Fire what is due at `now_ms`: device_offline first (in time order), then inactivity.

    `hb` gives each device's heartbeat interval (ms).
    """
    out: list[Alert] = []
    off = state.offline or {}
    expired = sorted((_expiry(state, d, profile, hb), d) for d in state.seen if d not in off)
    for at, device in expired:
        if at > now_ms:
            break
        since = state.seen[device] or state.armed_ms
        off[device] = since
        state.offline = off
        out.append(_alert(state, "device_offline", f"{device}:{since}", "low", "firing", at,
                          {"device_id": device, "last_seen": since, "heartbeat_ms": hb[device]},
                          "no_heartbeat", MAINTENANCE))
    if not state.inactive_since:
        start = _quiet_from(state)
        deadline = quiet_deadline(start, profile.quiet_window, profile.night)
        # healthy at the deadline: no device had already missed its heartbeat by then
        dead_before = any(since + int(hb[d] * profile.heartbeat_grace) <= deadline
                          for d, since in off.items())
        if deadline <= now_ms and not dead_before:
            state.inactive_since = start
            out.append(_alert(state, "inactivity", f"{state.subject_id}:{start}", profile.severity,
                              "firing", deadline,
                              {"last_activity": state.last_activity_ms or None,
                               "watching_since": state.armed_ms, "deadline": deadline,
                               "quiet_window_ms": profile.quiet_window,
                               "devices": sorted(state.seen), "profile_call": list(profile.call)},
                              "quiet_window_passed"))
    return out


class InactivityDetector:
    """One partition's subjects and timers."""

    def __init__(self, cfg: InactivityConfig, subjects: Mapping[str, Subject]) -> None:
        self.cfg = cfg
        self.subjects = subjects
        self.states: dict[str, SubjectState] = {}
        self.heartbeats = Heartbeats(cfg.default_heartbeat)
        self._timers: list[tuple[int, str]] = []

    def profile_of(self, subject_id: str) -> Profile:
        s = self.subjects.get(subject_id)
        name = s.profile if s is not None and s.profile in self.cfg.profiles else self.cfg.default_profile
        return self.cfg.profiles[name]

    def _schedule(self, state: SubjectState) -> None:
        due = next_due(state, self.profile_of(state.subject_id), self.heartbeats)
        if due and (not state.scheduled_ms or due < state.scheduled_ms):
            state.scheduled_ms = due
            heapq.heappush(self._timers, (due, state.subject_id))

    def arm(self, subject: Subject, grid_id: str, path: tuple[str, ...], now_ms: int) -> SubjectState:
        """Start watching a subject (first ping, or registration seen on a tick)."""
        state = self.states.get(subject.subject_id)
        if state is None:
            state = SubjectState(subject.subject_id, grid_id, path, now_ms)
            for d in subject.devices:
                state.seen[d] = 0
            self.states[subject.subject_id] = state
            self._schedule(state)
        return state

    def ping(self, subject_id: str, grid_id: str, path: tuple[str, ...], device: str, kind: str,
             value: float | None, unit: str | None, t_ms: int, heartbeat_ms: int | None) -> list[Alert]:
        """Apply a located ping of one of a subject's devices."""
        subject = self.subjects.get(subject_id)
        if subject is None:
            subject = Subject(subject_id, self.cfg.default_profile)
        subject_id = subject.subject_id  # the registry's string, not the event's copy
        state = self.states.get(subject_id)
        if state is None:
            state = self.arm(subject, grid_id, path, t_ms)
        if heartbeat_ms and heartbeat_ms != self.heartbeats.default_ms:
            self.heartbeats[device] = heartbeat_ms
        out = step_ping(state, self.profile_of(subject_id), self.cfg, device, kind, value, unit, t_ms)
        self._schedule(state)
        return out

    def advance(self, now_ms: int) -> list[Alert]:
        """Fire every timer due at or before `now_ms`."""
        out: list[Alert] = []
        timers = self._timers
        while timers and timers[0][0] <= now_ms:
            due, sid = heapq.heappop(timers)
            state = self.states.get(sid)
            if state is None or state.scheduled_ms != due:
                continue  # a stale entry: the subject was re-armed earlier
            state.scheduled_ms = 0
            out.extend(step_time(state, self.profile_of(sid), now_ms, self.heartbeats))
            self._schedule(state)
        return out
