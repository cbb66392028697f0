"""Alert rules and the alert state machine. Pure: no I/O, no clock, ``now`` is an argument.

Per (rule, agent) the states run ``inactive -> pending -> firing -> resolved -> inactive``:

- a *verdict* is taken only with at least ``min_calls`` calls in the window; without one the
  state is left as it is;
- ``fire`` when the rate (or, with ``confidence``, the Wilson lower bound) is >= threshold and,
  with ``confirm_window``, the longer window's rate is >= threshold too;
- ``clear`` when the rate (or the Wilson upper bound) is < clear_below;
- anything in between holds the current state (hysteresis: no flapping around the threshold);
- ``pending`` becomes ``firing`` on a ``fire`` verdict once it has been pending for ``for``;
  a ``clear`` verdict while pending drops back to ``inactive``;
- ``resolved`` lasts one evaluation and then becomes ``inactive`` (or a new incident starts).

Workspace-scope rules and the built-in ``stale`` rule use the agent id ``"*"``.

Sequential rules (``detector: sequential``) take their verdict from the detector's alarm
(``sequential.py``) instead of a window's rate, through the same state machine.

Longer than ~400 lines: both detectors' verdicts feed the one state machine here, and
splitting them would split the machine's callers from it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields
from operator import attrgetter
from statistics import NormalDist
from typing import Any

from ..model import WORKSPACE_AGENT, CountsView, PollStatus, WindowCounts
from .detector import Detector, Reading
from .state import (
    NO_DATA,
    STALE_RULE,
    AlertState,
    Evaluation,
    Limits,
    Rule,
    StaleRule,
    State,
    Transition,
    Verdict,
)

# ---- statistics ------------------------------------------------------------------------


def wilson_interval(hits: int, n: int, confidence: float) -> tuple[float, float]:
    """Two-sided Wilson score interval for a proportion ``hits / n``."""
    if n <= 0:
        return (0.0, 1.0)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = hits / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = max(0.0, (centre - margin) / denom)
    high = min(1.0, (centre + margin) / denom)
    # exact at the edges (0 and n hits), and never excluding p through rounding
    return (0.0 if hits <= 0 else min(low, p), 1.0 if hits >= n else max(high, p))


# ---- verdicts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    verdict: Verdict
    rate: float | None
    calls: int
    hits: int
    bound: float | None = None


def judge(
    counts: WindowCounts,
    outcome: str,
    limits: Limits,
    confidence: float | None = None,
    confirm: WindowCounts | None = None,
) -> Observation:
    """The verdict on one window's counts (and the confirm window's, if any)."""
    n = counts.calls
    hits = counts.outcomes.get(outcome, 0)
    rate = counts.ratio(outcome)
    if rate is None or n < limits.min_calls:
        return Observation(Verdict.NONE, rate, n, hits)
    if confidence is None:
        low = high = rate
        bound: float | None = None
    else:
        low, high = wilson_interval(hits, n, confidence)
    if low >= limits.threshold:
        confirmed = True
        if confirm is not None:
            confirm_rate = confirm.ratio(outcome)
            confirmed = confirm_rate is not None and confirm_rate >= limits.threshold
        if confirmed:
            bound = low if confidence is not None else None
            return Observation(Verdict.FIRE, rate, n, hits, bound)
    if high < limits.clear_below:
        bound = high if confidence is not None else None
        return Observation(Verdict.CLEAR, rate, n, hits, bound)
    bound = (low if rate >= limits.threshold else high) if confidence is not None else None
    return Observation(Verdict.HOLD, rate, n, hits, bound)


def judge_sequential(reading: Reading, counts: WindowCounts, outcome: str) -> Observation:
    """The verdict of a sequential rule: FIRE while the detector's alarm is up (an empty
    window does not end it: a quiet agent's window empties between calls, and only calls
    can show it recovered; the detector drops an alarm fed nothing for a day), else CLEAR;
    NONE when the alarm is down and the rule's window holds no call. ``calls``/``hits``
    are the calls since the evidence last stood at zero (the episode), else the window's."""
    if reading.run_calls > 0:
        n, hits = reading.run_calls, reading.run_hits
    else:
        n, hits = counts.calls, counts.outcomes.get(outcome, 0)
    if reading.alarm:
        return Observation(Verdict.FIRE, hits / n if n else None, n, hits)
    if counts.calls <= 0:
        return Observation(Verdict.NONE, None, 0, 0)
    return Observation(Verdict.CLEAR, hits / n, n, hits)


def step(
    prev: AlertState | None,
    obs: Observation,
    rule: str,
    agent_id: str,
    severity: str,
    limits: Limits,
    now: float,
) -> AlertState:
    """One (rule, agent)'s next state from its previous one and this evaluation's verdict."""
    if prev is None or prev.state is State.RESOLVED:
        # a new incident starts from scratch; a resolved one lasts a single evaluation
        fresh = AlertState(
            rule=rule,
            agent_id=agent_id,
            severity=severity,
            state=State.INACTIVE,
            since=now,
            evaluated_at=now,
            rate=obs.rate,
            calls=obs.calls,
            hits=obs.hits,
            bound=obs.bound,
            threshold=limits.threshold,
            clear_below=limits.clear_below,
        )
        if obs.verdict is not Verdict.FIRE:
            return fresh  # the common case of a healthy agent: no further copies
        prev = fresh
    cur = _evolve(
        prev,
        severity=severity,
        evaluated_at=now,
        threshold=limits.threshold,
        clear_below=limits.clear_below,
        calls=obs.calls,
        hits=obs.hits,
        rate=obs.rate if obs.rate is not None else prev.rate,
        bound=obs.bound,
    )
    v = obs.verdict
    if cur.state is State.INACTIVE:
        if v is not Verdict.FIRE:
            return cur
        cur = _evolve(
            cur,
            state=State.PENDING,
            since=now,
            pending_at=now,
            fired_at=None,
            resolved_at=None,
            resolved_rate=None,
            note=None,
            peak_rate=obs.rate,
        )
        if limits.for_s <= 0:
            return _evolve(cur, state=State.FIRING, fired_at=now)
        return cur
    if cur.state is State.PENDING:
        cur = _track_peak(cur, obs)
        if v is Verdict.CLEAR or (obs.calls == 0 and v is Verdict.NONE):
            return _evolve(cur, state=State.INACTIVE, since=now, pending_at=None, peak_rate=None)
        pending_at = cur.pending_at if cur.pending_at is not None else cur.since
        if v is Verdict.FIRE and now - pending_at >= limits.for_s:
            return _evolve(cur, state=State.FIRING, since=now, fired_at=now)
        return cur
    # FIRING
    cur = _track_peak(cur, obs)
    if obs.calls == 0 and obs.verdict is Verdict.NONE:
        # the agent went silent: its window emptied while firing. Resolve as "no data"
        # rather than fire forever on a ratio that no longer exists.
        return _evolve(
            cur, state=State.RESOLVED, since=now, resolved_at=now, resolved_rate=None, note=NO_DATA
        )
    if v is Verdict.CLEAR:
        return _evolve(
            cur, state=State.RESOLVED, since=now, resolved_at=now, resolved_rate=obs.rate
        )
    return cur


_STATE_FIELDS = tuple(f.name for f in fields(AlertState))
_STATE_VALUES = attrgetter(*_STATE_FIELDS)
_STATE_INDEX = {n: i for i, n in enumerate(_STATE_FIELDS)}


# each field's slot setter: a copy without the frozen __init__'s 24 object.__setattr__ calls
# (AlertState has no __post_init__ to skip)
_SETTERS = {n: AlertState.__dict__[n].__set__ for n in _STATE_FIELDS}
_SLOTS = tuple((_SETTERS[n], _STATE_INDEX[n]) for n in _STATE_FIELDS)
assert not hasattr(AlertState, "__post_init__")


def _evolve(st: AlertState, **changes: Any) -> AlertState:
    """``dataclasses.replace`` for AlertState without its per-call field introspection:
    evaluation makes one per live alert state, thousands at 10,000 agents (every slot
    copied, then only the changed ones set; an unknown name raises KeyError)."""
    new: AlertState = object.__new__(AlertState)
    values = _STATE_VALUES(st)
    for set_slot, i in _SLOTS:
        set_slot(new, values[i])
    for name, value in changes.items():
        _SETTERS[name](new, value)
    return new


def _track_peak(cur: AlertState, obs: Observation) -> AlertState:
    if obs.verdict is Verdict.NONE or obs.rate is None:
        return cur
    if cur.peak_rate is None or obs.rate > cur.peak_rate:
        return _evolve(cur, peak_rate=obs.rate)
    return cur


def step_stale(
    prev: AlertState | None, stale: StaleRule, poll: PollStatus, now: float
) -> AlertState | None:
    """The built-in stale rule: firing while no poll has succeeded for ``stale.after``."""
    if stale.after <= 0:
        return None
    last = poll.last_success if poll.last_success is not None else poll.started_at
    age = max(0.0, now - last)
    obs = Observation(Verdict.FIRE if age >= stale.after else Verdict.CLEAR, None, 0, 0)
    # the state machine is the rules' own; the limits are ages, not rates
    limits = Limits(threshold=1.0, clear_below=1.0, min_calls=0, for_s=0.0)
    nxt = step(prev, obs, STALE_RULE, WORKSPACE_AGENT, stale.severity, limits, now)
    nxt = _evolve(
        nxt,
        rate=None,
        calls=0,
        hits=0,
        threshold=0.0,
        clear_below=0.0,
        age=age,
        stale_after=stale.after,
    )
    if nxt.state in (State.PENDING, State.FIRING):
        earlier = prev.last_error if prev is not None else None
        nxt = _evolve(nxt, last_error=poll.last_error or earlier)
    return nxt


# ---- the whole evaluation --------------------------------------------------------------


def _could_fire(rules: Sequence[Rule], view: CountsView) -> dict[str, Iterable[str]]:
    """Per agent-scope rule: the agents whose plain rate and call count reach its loosest
    limits.

    An agent outside this set with no previous state would be judged NONE, HOLD or CLEAR
    and stay inactive (a Wilson lower bound never exceeds the plain rate), so skipping it
    changes nothing. A view that can answer in bulk (windows.Windows) does it from its kept
    sums, once per window, instead of building a WindowCounts per agent and rule."""
    agent_rules = window_rules(rules)
    bulk = getattr(view, "candidates_many", None)
    if bulk is None:
        seen_agents = view.agents()  # only without the bulk answer (a sorted list per call)
        return {r.name: seen_agents for r in agent_rules}
    found: list[list[str]] = bulk([candidate_query(r) for r in agent_rules])
    return {r.name: f for r, f in zip(agent_rules, found, strict=True)}


def window_rules(rules: Sequence[Rule]) -> list[Rule]:
    """The rules that judge each agent's window counts: agent scope, rate, not sequential."""
    return [
        r for r in rules if r.scope != "workspace" and r.kind == "rate" and r.sequential is None
    ]


def candidate_query(rule: Rule) -> tuple[str, str, float, int]:
    """(window, outcome, threshold, min_calls) of ``rule``'s loosest limits, as
    ``Windows.candidates_many`` takes them."""
    limits = [rule.limits, *rule.overrides.values()]
    threshold = min(lim.threshold for lim in limits)
    min_calls = min(lim.min_calls for lim in limits)
    return (rule.window, rule.outcome, threshold, max(1, min_calls))


def evaluate(
    rules: Sequence[Rule],
    prev_states: Mapping[tuple[str, str], AlertState],
    view: CountsView,
    poll: PollStatus,
    now: float,
    stale: StaleRule | None = None,
    detector: Detector | None = None,
) -> Evaluation:
    """Evaluate every rule against ``view`` at ``now``.

    ``prev_states`` holds the states of the previous evaluation (inactive ones may be left
    out). Returns the states that are not inactive, the transitions and the covered pairs.
    With ``stale=None`` the stale rule's state is carried over unchanged (it is evaluated on
    its own schedule by ``evaluate_stale``). ``detector`` holds the evidence of sequential
    rules (fed with this cycle's calls before); without one they see no evidence.
    """
    return evaluate_given(
        rules, prev_states, view, poll, now, _could_fire(rules, view), None, stale, detector
    )


def evaluate_given(
    rules: Sequence[Rule],
    prev_states: Mapping[tuple[str, str], AlertState],
    view: CountsView,
    poll: PollStatus,
    now: float,
    could_fire: Mapping[str, Iterable[str]],
    changed: Mapping[str, AbstractSet[str]] | None,
    stale: StaleRule | None = None,
    detector: Detector | None = None,
    carried: set[tuple[str, str]] | None = None,
) -> Evaluation:
    """``evaluate`` with each window rule's candidates given (``_could_fire``'s answer, kept
    up to date by ``incremental.Incremental``) and, with ``changed``, only the agents whose
    counts may have moved stepped.

    ``changed``: per window rule (agent scope, not sequential), the agents whose counts in
    its windows may have changed since the evaluation that produced ``prev_states``. Any
    other agent saw the same counts, so the same verdict, as then: a state that is firing
    stays firing with only ``evaluated_at`` moved (``step`` on a firing state's own verdict
    changes nothing else), and an agent without a state stays inactive (it was left
    inactive on a verdict that is not FIRE). Pending and resolved states are stepped always
    (their next state depends on time). None: every agent is stepped. ``carried``, if given,
    receives the keys of the firing states carried so (their durable part is unchanged).
    """
    states: dict[tuple[str, str], AlertState] = {}
    transitions: list[Transition] = []
    covered: dict[str, tuple[str, ...]] = {}
    prev_by_rule: dict[str, list[str]] = {}
    for rule_name, agent in prev_states:
        prev_by_rule.setdefault(rule_name, []).append(agent)
    rule_names = {r.name for r in rules}

    def record(prev: AlertState | None, nxt: AlertState) -> None:
        old = prev.state if prev is not None else State.INACTIVE
        if nxt.state is not State.INACTIVE:
            states[nxt.key] = nxt
        if old is not nxt.state:
            transitions.append(Transition(nxt.key, old, nxt.state, nxt))

    for rule in rules:
        if rule.kind != "rate":  # calls_stopped: evaluated by stopped.evaluate_stopped
            continue
        moved: AbstractSet[str] | None = None
        if rule.scope == "workspace":
            agents: list[str] = [WORKSPACE_AGENT]
        else:
            candidates = set(prev_by_rule.get(rule.name, ()))
            if rule.sequential is None:
                candidates.update(could_fire[rule.name])
                moved = changed.get(rule.name) if changed is not None else None
            elif detector is not None:
                candidates.update(detector.alarmed(rule.name))
            agents = sorted(_covered(rule, candidates))
        covered[rule.name] = tuple(agents)
        for agent in agents:
            key = (rule.name, agent)
            prev = prev_states.get(key)
            if moved is not None and agent not in moved:
                if prev is None:
                    continue  # inactive on the same verdict as before
                if prev.state is State.FIRING:
                    states[key] = _reevaluated(prev, now)
                    if carried is not None:
                        carried.add(key)
                    continue
            if rule.sequential is not None:
                record(prev, _step_sequential(rule, agent, prev, view, detector, now))
                continue
            limits = rule.limits_for(agent)
            if rule.scope == "workspace":
                counts = view.workspace(rule.window)
                confirm = view.workspace(rule.confirm_window) if rule.confirm_window else None
            else:
                counts = view.counts(agent, rule.window)
                confirm = view.counts(agent, rule.confirm_window) if rule.confirm_window else None
            obs = judge(counts, rule.outcome, limits, rule.confidence, confirm)
            record(prev, step(prev, obs, rule.name, agent, rule.severity, limits, now))
        # states of agents the rule no longer covers (config changed)
        for agent in _uncovered(rule, prev_by_rule.get(rule.name, ())):
            prev = prev_states[(rule.name, agent)]
            gone = _retire(prev, now, "the rule no longer covers this agent")
            if gone is not None:
                record(prev, gone)

    # states of rules that are no longer configured (or changed kind)
    rate_names = {r.name for r in rules if r.kind == "rate"}
    others = [
        k for k in prev_states if k[0] not in rate_names and k[0] != STALE_RULE
    ]  # sorted below: only these, not every state
    for key in sorted(others):
        prev = prev_states[key]
        if key[0] in rule_names:  # a calls_stopped rule's: evaluated apart, carried over
            states[prev.key] = prev
            continue
        gone = _retire(prev, now, "the rule was removed from the config")
        if gone is not None:
            record(prev, gone)
    stale_key = (STALE_RULE, WORKSPACE_AGENT)
    if stale is not None:
        sev = evaluate_stale(prev_states.get(stale_key), stale, poll, now)
        states.update(sev.states)
        transitions.extend(sev.transitions)
        covered.update(sev.covered)
    elif stale_key in prev_states:  # evaluated on its own schedule (evaluate_stale)
        states[stale_key] = prev_states[stale_key]
        covered[STALE_RULE] = (WORKSPACE_AGENT,)
    return Evaluation(states, transitions, covered)


def _covers_all(rule: Rule) -> bool:
    """Whether ``rule.covers`` is true of every agent but the workspace's ``"*"``."""
    return rule.scope != "workspace" and rule.agents is None and not rule.exclude


def _covered(rule: Rule, agents: set[str]) -> Iterable[str]:
    """The ``agents`` that ``rule`` covers (``covers`` asked per agent only when it names
    some)."""
    if _covers_all(rule):
        return agents - {WORKSPACE_AGENT}
    return (a for a in agents if rule.covers(a))


def _uncovered(rule: Rule, agents: Iterable[str]) -> list[str]:
    """The ``agents`` that ``rule`` does not cover, in their order."""
    if _covers_all(rule):
        return [a for a in agents if a == WORKSPACE_AGENT]
    return [a for a in agents if not rule.covers(a)]


_OTHER_SLOTS = tuple(p for p in _SLOTS if p[1] != _STATE_INDEX["evaluated_at"])
_SET_EVALUATED_AT = _SETTERS["evaluated_at"]


def _reevaluated(st: AlertState, now: float) -> AlertState:
    """``st`` evaluated again at ``now`` on the verdict that made it: ``_evolve(st,
    evaluated_at=now)``, copied slot by slot (thousands of firing states a poll)."""
    new: AlertState = object.__new__(AlertState)
    values = _STATE_VALUES(st)
    for set_slot, i in _OTHER_SLOTS:
        set_slot(new, values[i])
    _SET_EVALUATED_AT(new, now)
    return new


def _step_sequential(
    rule: Rule,
    agent: str,
    prev: AlertState | None,
    view: CountsView,
    detector: Detector | None,
    now: float,
) -> AlertState:
    reading = (
        detector.reading(rule.name, agent)
        if detector is not None
        else Reading(False, 0.0, 0, 0, None, None)
    )
    own = rule.limits_for(agent)
    p = reading.params
    if p is not None:
        limits = Limits(p.p1, p.pc, own.min_calls, own.for_s)
    elif prev is not None:  # no evidence this cycle: keep showing the last rates
        limits = Limits(prev.threshold, prev.clear_below, own.min_calls, own.for_s)
    else:
        limits = Limits(own.threshold, own.clear_below, own.min_calls, own.for_s)
    obs = judge_sequential(reading, view.counts(agent, rule.window), rule.outcome)
    nxt = step(prev, obs, rule.name, agent, rule.severity, limits, now)
    base = reading.baseline
    if base is None and prev is not None:
        return _evolve(nxt, baseline=prev.baseline, baseline_source=prev.baseline_source)
    return _evolve(
        nxt,
        baseline=base.rate if base is not None else None,
        baseline_source=base.source if base is not None else None,
        evidence=reading.evidence,
    )


def evaluate_stale(
    prev: AlertState | None, stale: StaleRule, poll: PollStatus, now: float
) -> Evaluation:
    """The built-in stale rule alone. The daemon runs it on a timer of its own, so that it
    fires even while the poll thread is stuck or no poll ever succeeded."""
    states: dict[tuple[str, str], AlertState] = {}
    transitions: list[Transition] = []
    covered: dict[str, tuple[str, ...]] = {}
    if stale.after > 0:
        nxt: AlertState | None = step_stale(prev, stale, poll, now)
        covered[STALE_RULE] = (WORKSPACE_AGENT,)
    else:
        nxt = _retire(prev, now, "the stale check is turned off") if prev is not None else None
    if nxt is not None:
        old = prev.state if prev is not None else State.INACTIVE
        if nxt.state is not State.INACTIVE:
            states[nxt.key] = nxt
        if old is not nxt.state:
            transitions.append(Transition(nxt.key, old, nxt.state, nxt))
    return Evaluation(states, transitions, covered)


def _retire(prev: AlertState, now: float, note: str) -> AlertState | None:
    """A state whose rule (or coverage) is gone: a firing alert resolves, others end."""
    if prev.state is State.FIRING:
        return _evolve(
            prev,
            state=State.RESOLVED,
            since=now,
            evaluated_at=now,
            resolved_at=now,
            resolved_rate=None,
            note=note,
        )
    if prev.state is State.PENDING:
        return _evolve(prev, state=State.INACTIVE, since=now, evaluated_at=now)
    return None


def needs_notify(
    alert: AlertState,
    last_notified: float | None,
    repeat_interval: float,
    now: float,
) -> bool:
    """Whether a firing alert should be (re)notified now.

    Never notified: yes. Notified before: only when ``repeat_interval`` (> 0) has passed.
    """
    return alert.state is State.FIRING and repeat_due(last_notified, repeat_interval, now)


def repeat_due(last_notified: float | None, repeat_interval: float, now: float) -> bool:
    """``needs_notify`` for a firing alert: never notified, or ``repeat_interval`` passed."""
    if last_notified is None:
        return True
    return repeat_interval > 0 and now - last_notified >= repeat_interval
