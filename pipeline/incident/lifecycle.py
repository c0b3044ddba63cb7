"""Incident lifecycle (事件处置流程): a pure state machine of (incident, alert/time/command).

States follow municipal case handling (CJ/T 315: collect, file, dispatch, handle, feedback,
check and close): ``dispatched`` (the clock starts) -> ``acknowledged`` -> ``on_site`` ->
``resolved`` -> ``closed``; ``reopened`` sends a resolved or closed incident back to dispatch;
``cancelled`` (a false alarm, with a reason) and ``merged`` end it. Every change is an
`Escalation` record (what, when, who, why) with a deterministic id ``incident_id:step``.

While nobody acknowledges, each acknowledge timeout calls the current level again (up to the
rule's ``repeats``), then moves one level up the grid's parents; at the rule's top the incident
stays loud (called again every timeout, flagged ``unanswered_at_top``) and is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.errors import Rejected
from pipeline.incident.policy import LADDER, Rule, responsible
from pipeline.incident.sla import deadline

OPEN_STATES = frozenset({"dispatched", "acknowledged", "on_site"})
ENDED = frozenset({"closed", "cancelled", "merged"})
#: command action -> states it may be applied in
ALLOWED = {
    "acknowledge": frozenset({"dispatched"}),
    "arrive": frozenset({"dispatched", "acknowledged"}),
    "resolve": OPEN_STATES,
    "verify": frozenset({"resolved"}),  # 核查结案: checked and closed
    "reopen": frozenset({"resolved", "closed"}),
    "cancel": OPEN_STATES | {"resolved"},
    "assign": OPEN_STATES,
    "comment": OPEN_STATES | {"resolved", "closed", "cancelled"},
    "merge": OPEN_STATES,  # a duplicate of another incident (reason names it)
}
NEXT_STATE = {"acknowledge": "acknowledged", "arrive": "on_site", "resolve": "resolved",
              "verify": "closed", "reopen": "dispatched", "cancel": "cancelled", "merge": "merged"}
#: actions that end a zone incident: refused while any of its grid incidents is open
NEEDS_CLOSED_CHILDREN = frozenset({"verify", "cancel", "merge"})


@dataclass(frozen=True, slots=True)
class Escalation:
    """One transition, for ``escalations.v1``."""

    incident_id: str
    step: int
    action: str  # opened, dispatched, repeated, escalated, unanswered_at_top, breach, <command>
    at_ms: int
    level: str
    unit: str  # the grid or parent code the level answers for
    actor: str | None = None
    reason: str | None = None
    parallel: tuple[str, ...] = ()
    count: int = 1  # calls this record stands for (more than one after a catch-up)

    @property
    def event_id(self) -> str:
        return f"{self.incident_id}:{self.step}"


@dataclass(slots=True)
class Incident:
    """Current state of one incident (the value on the compacted ``incidents.v1``)."""

    incident_id: str
    dedup_key: str
    kind: str
    severity: str
    grid_id: str
    path: tuple[str, ...]
    rule: Rule  # the policy snapshot
    opened_ms: int
    status: str = "dispatched"
    level: str = "grid_worker"
    calls: int = 1  # calls made at the current level
    ack_due_ms: int = 0
    resolve_due_ms: int = 0
    acked_ms: int = 0
    on_site_ms: int = 0
    resolved_ms: int = 0
    closed_ms: int = 0
    assignee: str | None = None
    loud: bool = False
    breaches: set[str] = field(default_factory=set)
    alert_ids: list[str] = field(default_factory=list)
    commands: set[str] = field(default_factory=set)  # ids applied: a duplicate has no effect
    step: int = 0
    parent_id: str | None = None  # a child of a zone incident (area fan-out)
    children: dict[str, str] | None = None  # child id -> its state (a zone incident)
    to_check: dict | None = None  # a child's households and people under care to check
    parent_grid: str | None = None  # where the parent lives (its partition)
    category: str | None = None  # a report cluster's category (safety_hazard, ...)

    def _event(self, action: str, at: int, actor: str | None = None, reason: str | None = None,
               parallel: tuple[str, ...] = (), count: int = 1,
               level: str | None = None) -> Escalation:
        """The next record; one standing for `count` calls reserves that many steps."""
        self.step += count
        level = level or self.level
        return Escalation(self.incident_id, self.step - count + 1, action, at, level,
                          responsible(self.path, level), actor, reason, parallel, count)


def open_incident(incident_id: str, dedup_key: str, kind: str, severity: str, grid_id: str,
                  path: tuple[str, ...], alert_id: str, rule: Rule,
                  at_ms: int, category: str | None = None) -> tuple[Incident, list[Escalation]]:
    """A new incident from its first alert: opened and dispatched to the start level at once."""
    inc = Incident(incident_id, dedup_key, kind, severity, grid_id, path, rule, at_ms,
                   level=rule.start, alert_ids=[alert_id], category=category)
    ack = rule.ack_limit(rule.start)
    inc.ack_due_ms = deadline(at_ms, ack.amount, ack.unit).at_ms
    inc.resolve_due_ms = deadline(at_ms, rule.resolve.amount, rule.resolve.unit).at_ms
    return inc, [inc._event("opened", at_ms, reason=rule.name),
                 inc._event("dispatched", at_ms, parallel=rule.parallel)]


def next_due(inc: Incident) -> int:
    """When `step_time` may next have something to do (0: nothing)."""
    times = []
    if inc.status == "dispatched":
        times.append(inc.ack_due_ms)
    if inc.status in OPEN_STATES and "resolve" not in inc.breaches:
        times.append(inc.resolve_due_ms)
    return min(times) if times else 0


def _next_ack_due(inc: Incident, due: int) -> int:
    """The next acknowledge deadline after a call at `due`: the level's timeout, and at the
    top, after the calls the rule allows there, a timeout that grows by ``top_backoff`` per
    unanswered call up to ``top_repeat_max`` (as Alertmanager's ``repeat_interval``)."""
    limit = inc.rule.ack_limit(inc.level)
    unanswered = inc.calls - inc.rule.repeats if inc.level == inc.rule.top else 0
    if unanswered <= 0:
        return deadline(due, limit.amount, limit.unit).at_ms
    cap = inc.rule.top_repeat_max
    cap_ms = deadline(due, cap.amount, cap.unit).at_ms
    amount = limit.amount * inc.rule.top_backoff ** min(unanswered, 30)
    if amount > 100_000:
        return cap_ms
    try:
        return min(deadline(due, amount, limit.unit).at_ms, cap_ms)
    except ValueError:  # beyond the calendar's reach: the cap is nearer anyway
        return cap_ms


def _call(inc: Incident, due: int) -> str:
    """One unanswered acknowledge timeout at `due`: call the level again, move up, or stay loud."""
    top = LADDER.index(inc.rule.top)
    if inc.calls < inc.rule.repeats:
        inc.calls += 1
        return "repeated"
    if LADDER.index(inc.level) < top:
        inc.level, inc.calls = LADDER[LADDER.index(inc.level) + 1], 1
        return "escalated"
    inc.loud = True
    inc.calls += 1
    return "unanswered_at_top"


_LOUDNESS = ("repeated", "escalated", "unanswered_at_top")
CALL_REASONS = {"escalated": "no acknowledgement", "unanswered_at_top": "nobody acknowledged"}


def step_time(inc: Incident, now_ms: int) -> list[Escalation]:
    """Everything due by `now_ms`: repeats, moves up the ladder, breaches.

    Catch-up without storms: when the clock passes several acknowledge deadlines at once
    (downtime, a backlog), the calls made at one level become one record whose ``count`` says
    how many calls it stands for (its action the loudest of them: a level escalated to and then
    left unanswered at the top is one ``unanswered_at_top`` record), so each person is called
    once per catch-up;
    its step numbers are reserved, so ids do not depend on how finely time was stepped. The
    work is bounded whatever the jump: at the top, once the timeout stops growing, whole
    periods are counted, not looped.
    """
    out: list[Escalation] = []
    run: list = []  # [action, level, first due, count] of the calls at the current level
    while inc.status == "dispatched" and inc.ack_due_ms <= now_ms:
        due = inc.ack_due_ms
        if "acknowledge" not in inc.breaches:
            _flush(inc, run, out)
            inc.breaches.add("acknowledge")
            out.append(inc._event("breach", due, reason="acknowledge"))
        level = inc.level
        action = _call(inc, due)
        if run and run[1] == level == inc.level:  # one record per level: the loudest action
            run[0] = max(run[0], action, key=_LOUDNESS.index)
            run[3] += 1
        else:
            _flush(inc, run, out)
            run[:] = [action, inc.level, due, 1]
        nxt = _next_ack_due(inc, due)
        period = nxt - due
        cap = inc.rule.top_repeat_max
        if action == "unanswered_at_top" and period > 0 and now_ms - nxt > period \
                and nxt == deadline(due, cap.amount, cap.unit).at_ms:  # steady at the cap
            periods = (now_ms - nxt) // period
            inc.calls += periods
            run[3] += periods
            nxt += periods * period
        inc.ack_due_ms = nxt
    _flush(inc, run, out)
    if inc.status in OPEN_STATES and inc.resolve_due_ms <= now_ms and "resolve" not in inc.breaches:
        inc.breaches.add("resolve")
        out.append(inc._event("breach", inc.resolve_due_ms, reason="resolve"))
    return out


def _flush(inc: Incident, run: list, out: list[Escalation]) -> None:
    """Emit the pending run of calls at one level as one record (count = calls it stands for)."""
    if not run:
        return
    action, level, due, count = run
    reason = CALL_REASONS.get(action)
    if count > 1:
        reason = f"{reason + '; ' if reason else ''}{count} calls missed while time caught up"
    out.append(inc._event(action, due, reason=reason, count=count, level=level))
    run.clear()


def check_merge_target(inc: Incident, merge_into: str, target: Incident | None, scope: str) -> None:
    """`Rejected` ``bad_merge_target`` unless `target` (the incident `merge_into` names, found
    on the same partition) is another incident, open, and inside the actor's `scope`."""
    name = merge_into[:128]
    if target is None or target.incident_id != merge_into:
        raise Rejected("bad_merge_target", f"no incident {name} on this incident's partition "
                                           "(a merge target must be on the same grid's partition)")
    if target is inc:
        raise Rejected("bad_merge_target", f"{name} cannot be merged into itself")
    if target.status not in OPEN_STATES:
        raise Rejected("bad_merge_target", f"the merge target {name} is {target.status}, not open")
    if scope not in target.path:
        raise Rejected("bad_merge_target", f"the merge target {name} is outside scope {scope}")


def apply_command(inc: Incident, command_id: str, action: str, actor: str, scope: str,
                  at_ms: int, reason: str | None = None, assignee: str | None = None,
                  merge_into: str | None = None, target: Incident | None = None) -> list[Escalation]:
    """Apply a person's command; `Rejected` says why it cannot be (nothing changes then).

    `scope` is the unit code the actor answers for: it must be on the incident's path (a town
    officer may act on incidents of every grid in the town, not elsewhere). A zone incident
    with open grid incidents cannot be verified, cancelled or merged (``children_open``). A
    merge that names its target (`merge_into`, looked up by the caller on the same partition as
    `target`, None when there is none) needs that target open and inside the actor's scope
    (``bad_merge_target``).
    """
    if command_id in inc.commands:
        return []  # a duplicate: already applied
    if action not in ALLOWED:
        raise Rejected("unknown_action", f"{action!r}: use one of {', '.join(ALLOWED)}")
    if scope not in inc.path:
        raise Rejected("out_of_scope", f"{actor} answers for {scope}, not for grid {inc.grid_id}")
    if inc.status not in ALLOWED[action]:
        raise Rejected("illegal_transition", f"cannot {action} an incident that is {inc.status}")
    if action in ("cancel", "merge") and not reason:
        raise Rejected("reason_required", f"{action} needs a reason (a false alarm; the incident "
                                          "this one duplicates)")
    if action in NEEDS_CLOSED_CHILDREN and inc.children:
        open_children = [c for c, st in inc.children.items() if st not in ENDED]
        if open_children:
            raise Rejected("children_open", f"cannot {action}: {len(open_children)} of "
                                            f"{len(inc.children)} grid incidents of this zone are "
                                            "not closed yet")
    if action == "merge" and merge_into is not None:
        check_merge_target(inc, merge_into, target, scope)
    inc.commands.add(command_id)
    if action == "assign":
        inc.assignee = assignee or actor
    elif action in NEXT_STATE:
        inc.status = NEXT_STATE[action]
        if action == "acknowledge":
            inc.acked_ms = at_ms
        elif action == "arrive":
            inc.on_site_ms = at_ms
            inc.acked_ms = inc.acked_ms or at_ms
        elif action == "resolve":
            inc.resolved_ms = at_ms
        elif action == "verify":
            inc.closed_ms = at_ms
        elif action == "reopen":
            inc.resolved_ms = inc.closed_ms = 0
            inc.calls, inc.loud = 1, False
            limit = inc.rule.ack_limit(inc.level)
            inc.ack_due_ms = deadline(at_ms, limit.amount, limit.unit).at_ms
    return [inc._event(action, at_ms, actor=actor, reason=reason)]
