"""The ``calls_stopped`` rule kind: an agent that should be calling has gone silent. Pure.

Per (rule, agent), with the agent directory's word on the agent and the call activity
(``activity.Activity``) at ``now``:

- an agent the directory lists as deleted or unpublished is never judged: a state it had
  ends (a firing one resolves, noting why);
- *fire* when it has placed no call for ``quiet_after`` and placed at least ``min_calls`` in
  its ``baseline`` (the same clock hour yesterday, or the last 24 hours);
- *clear* (resolve) as soon as it places a call again;
- otherwise hold: quiet but with too small a baseline keeps a firing alert firing (the
  baseline moves hour by hour) and never starts one.

The states run through the rules' own state machine (``rules.step``: pending for ``for``,
then firing), so silences, grouping, Slack and the metrics treat them like every other rule.
The agent's quiet time travels in ``age`` and the rule's ``quiet_after`` in ``stale_after``,
the baseline's calls in ``calls``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from ..activity import Activity
from .rules import Observation, _evolve, _retire, step
from .state import AlertState, Evaluation, Rule, State, Transition, Verdict

# agent id -> True (published, not deleted), False (deleted or unpublished), None (unknown:
# not listed, or no directory): unknown agents are judged like published ones
IsActive = Callable[[str], bool | None]
GONE = "the agent was deleted or unpublished"


def evaluate_stopped(
    rules: Sequence[Rule],
    prev_states: Mapping[tuple[str, str], AlertState],
    activity: Activity,
    is_active: IsActive,
    now: float,
) -> Evaluation:
    """Every ``calls_stopped`` rule in ``rules`` (others are left alone)."""
    states: dict[tuple[str, str], AlertState] = {}
    transitions: list[Transition] = []
    covered: dict[str, tuple[str, ...]] = {}

    def record(prev: AlertState | None, nxt: AlertState) -> None:
        old = prev.state if prev is not None else State.INACTIVE
        if nxt.state is not State.INACTIVE:
            states[nxt.key] = nxt
        if old is not nxt.state:
            transitions.append(Transition(nxt.key, old, nxt.state, nxt))

    known = activity.agents()
    for rule in rules:
        if rule.kind != "calls_stopped":
            continue
        previous = [a for r, a in prev_states if r == rule.name]
        judged: list[str] = []
        for agent in sorted(set(previous) | set(known)):
            prev = prev_states.get((rule.name, agent))
            if not rule.covers(agent):
                reason = "the rule no longer covers this agent"
            elif is_active(agent) is False:
                reason = GONE
            else:
                judged.append(agent)
                record(prev, _judge(rule, agent, prev, activity, now))
                continue
            if prev is not None:
                gone = _retire(prev, now, reason)
                if gone is not None:
                    record(prev, gone)
        covered[rule.name] = tuple(judged)
    return Evaluation(states, transitions, covered)


def _judge(
    rule: Rule, agent: str, prev: AlertState | None, activity: Activity, now: float
) -> AlertState:
    limits = rule.limits_for(agent)
    quiet = activity.quiet_for(agent, now)
    calls = activity.baseline(agent, now, rule.baseline)
    if quiet < rule.quiet_after:
        verdict = Verdict.CLEAR
    elif calls >= limits.min_calls:
        verdict = Verdict.FIRE
    else:
        verdict = Verdict.HOLD
    # calls: at least 1 so that the state machine never reads a quiet hour as "no data"
    obs = Observation(verdict, None, max(1, calls), 0)
    nxt = step(prev, obs, rule.name, agent, rule.severity, limits, now)
    return _evolve(
        nxt,
        calls=calls,
        rate=None,
        threshold=0.0,
        clear_below=0.0,
        age=quiet,
        stale_after=rule.quiet_after,
    )


def with_stopped(base: Evaluation, stopped: Evaluation, rules: Iterable[Rule]) -> Evaluation:
    """``rules.evaluate``'s evaluation (which carries the ``calls_stopped`` rules' states
    over unchanged) with those states replaced by ``evaluate_stopped``'s."""
    names = {r.name for r in rules if r.kind == "calls_stopped"}
    states = {k: s for k, s in base.states.items() if k[0] not in names}
    states.update(stopped.states)
    return Evaluation(
        states,
        [*base.transitions, *stopped.transitions],
        {**base.covered, **stopped.covered},
    )


def baseline_label(baseline: str) -> str:
    """How a message names a rule's baseline."""
    return "the same hour yesterday" if baseline == "same_hour_yesterday" else "the last 24 hours"


def has_stopped_rules(rules: Iterable[Rule]) -> bool:
    """Whether any rule is a ``calls_stopped`` one (the daemon keeps activity only then)."""
    return any(r.kind == "calls_stopped" for r in rules)
