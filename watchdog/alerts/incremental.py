"""Incremental rule evaluation: exactly ``rules.evaluate``'s answer, with only the agents
whose counts may have moved stepped. Pure: no I/O, no clock.

Between two polls most agents' window counts do not change (at 10,000 agents and 1M calls
a day, a 30 s cycle adds calls for a few hundred agents and slides buckets out for a few
hundred more). The windows say which (``Windows.take_changes``: calls added or removed,
buckets leaving a window); an agent outside that set would get the verdict it got at the
previous evaluation, so

- its candidate flag (``rules._could_fire``: the rule's loosest limits) is the one kept,
- a firing state stays firing with ``evaluated_at`` moved, nothing else,
- an agent without a state stays inactive,

and only pending and resolved states (which depend on time), workspace and sequential rules
(whose input is not one agent's counts) and the agents that moved are stepped. Everything
else, the order of transitions included, is ``rules.evaluate_given``, the one code path both
take. The first evaluation, one after a failure (``reset``), one against another view or
another rule set, and one against a view that cannot tell its changes, are full.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..model import CountsView, PollStatus
from .detector import Detector
from .rules import candidate_query, evaluate, evaluate_given, window_rules
from .state import AlertState, Evaluation, Rule, StaleRule

Query = tuple[str, str, float, int]


@runtime_checkable
class TracksChanges(Protocol):
    """What the view must also offer (``windows.Windows`` does)."""

    def take_changes(self) -> Mapping[str, set[str]] | None: ...
    def candidates_many(self, queries: list[Query]) -> list[list[str]]: ...
    def candidates_among(
        self, changed: Mapping[str, Iterable[str]], queries: list[Query]
    ) -> list[list[str]]: ...


class Incremental:
    """Evaluates one rule set against one view, poll after poll. ``prev_states`` must be the
    states of this object's previous evaluation as far as the window rules go (the pipeline's
    own; other rules' states may differ); after anything that breaks that chain, ``reset``."""

    def __init__(self) -> None:
        self._rules: tuple[Rule, ...] = ()
        self._view: object | None = None
        self._candidates: dict[str, set[str]] | None = None  # rule name -> agents
        self.full = 0  # evaluations that stepped every agent (for tests and the bench)
        self.partial = 0
        # the last evaluation's firing states carried with only evaluated_at moved (their
        # durable part is the previous one's: the commit need not look at them); None: full
        self.carried: set[tuple[str, str]] | None = None

    def reset(self) -> None:
        """The next evaluation steps every agent."""
        self._candidates = None

    def evaluate(
        self,
        rules: Sequence[Rule],
        prev_states: Mapping[tuple[str, str], AlertState],
        view: CountsView,
        poll: PollStatus,
        now: float,
        stale: StaleRule | None = None,
        detector: Detector | None = None,
    ) -> Evaluation:
        """``rules.evaluate(rules, prev_states, view, poll, now, stale, detector)``."""
        self.carried = None
        if not isinstance(view, TracksChanges):
            self.reset()
            self.full += 1
            return evaluate(rules, prev_states, view, poll, now, stale, detector)
        changes = view.take_changes()  # always taken: the sets hold one cycle's changes
        wrules = window_rules(rules)
        queries = [candidate_query(r) for r in wrules]
        chain = (
            changes is not None
            and self._candidates is not None
            and view is self._view
            and tuple(rules) == self._rules
            and all(_labels(r) <= changes.keys() for r in wrules)
        )
        candidates = self._candidates
        self._candidates = None  # until this evaluation has returned
        carried: set[tuple[str, str]] | None = None
        try:
            if not chain or changes is None or candidates is None:
                found = view.candidates_many(queries)
                candidates = {r.name: set(f) for r, f in zip(wrules, found, strict=True)}
                changed = None
                self.full += 1
            else:
                found = view.candidates_among(changes, queries)
                for r, f in zip(wrules, found, strict=True):
                    kept = candidates[r.name]
                    kept -= changes[r.window]
                    kept.update(f)  # the agents that moved in r.window and pass now
                changed = {r.name: _moved(r, changes) for r in wrules}
                carried = set()
                self.partial += 1
            ev = evaluate_given(
                rules, prev_states, view, poll, now, candidates, changed, stale, detector, carried
            )
        except BaseException:
            self._view = None
            raise
        self._candidates, self._view, self._rules = candidates, view, tuple(rules)
        self.carried = carried
        return ev


def _labels(rule: Rule) -> set[str]:
    return {rule.window, rule.confirm_window} if rule.confirm_window else {rule.window}


def _moved(rule: Rule, changes: Mapping[str, set[str]]) -> set[str]:
    if rule.confirm_window and rule.confirm_window != rule.window:
        return changes[rule.window] | changes[rule.confirm_window]
    return changes[rule.window]
