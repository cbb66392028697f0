"""report.rate_table: which agents come first, and what the table says about them."""

from __future__ import annotations

from dialnexa_watchdog.model import StatusClasses
from dialnexa_watchdog.report import rate_table
from dialnexa_watchdog.windows import Windows

NOW = 100_000.0


def ranked(table: str) -> list[str]:
    """The agent column, in table order (an agent's first line names it)."""
    names = [line[:24].strip() for line in table.splitlines()[2:]]
    return [n for n in names if n and not n.startswith("...")]


def calls(w: Windows, agent: str, age: float, **statuses: int) -> None:
    for status, n in statuses.items():
        for _ in range(n):
            w.add(agent, status, NOW - age)


def make() -> Windows:
    # given longest first on purpose: the ranking window is the shortest, whatever the order
    w = Windows({"1h": 3600, "5m": 300}, StatusClasses())
    w.advance(NOW)
    calls(w, "agt_b", 60, failed=1, completed=3)  # 25% failed in 5m
    calls(w, "agt_a", 60, failed=1, completed=3)  # 25%: ties with agt_b, goes first by id
    calls(w, "agt_c", 60, failed=1, completed=1)  # 50%: the worst in 5m
    calls(w, "agt_d", 60, completed=1)  # 0% in 5m ...
    calls(w, "agt_d", 1800, failed=20)  # ... though 95% failed over 1h: not the ranking window
    calls(w, "agt_e", 1800, failed=5)  # no calls in 5m: counts as 0
    calls(w, "agt_0", 60, busy=4)  # busy is not the first outcome: 0
    return w


def test_worst_first_by_first_outcome_in_the_shortest_window_ties_by_agent_id() -> None:
    w = make()
    assert w.counts("agt_d", "1h").ratio("failed") == 20 / 21  # worst over 1h, yet ...
    table = rate_table(w)
    assert ranked(table) == ["agt_c", "agt_a", "agt_b", "agt_0", "agt_d", "agt_e"]
    assert table.splitlines()[0].split()[:3] == ["agent", "window", "calls"]
    first = table.splitlines()[2:4]  # agt_c: one line per window, shortest first
    assert first[0].split() == ["agt_c", "5m", "2", "50.0%", "0.0%", "0.0%"]
    assert first[1].split() == ["1h", "2", "50.0%", "0.0%", "0.0%"]


def test_the_first_configured_outcome_decides_and_limit_cuts_the_rest() -> None:
    busy_first = StatusClasses(outcomes={"busy": ("busy",), "failed": ("failed",)})
    w = Windows({"5m": 300, "1h": 3600}, busy_first)
    w.advance(NOW)
    calls(w, "agt_x", 60, failed=4)  # 100% failed, 0% busy
    calls(w, "agt_y", 60, busy=1, completed=1)  # 50% busy
    calls(w, "agt_z", 60, busy=1, completed=3)  # 25% busy
    calls(w, "agt_w", 60, completed=2)  # 0% busy: ties with agt_x, goes first by id
    assert ranked(rate_table(w)) == ["agt_y", "agt_z", "agt_w", "agt_x"]
    table = rate_table(w, limit=2)
    assert ranked(table) == ["agt_y", "agt_z"]
    assert table.splitlines()[-1] == "... and 2 more agents"


def test_no_agents() -> None:
    w = Windows({"5m": 300}, StatusClasses())
    assert rate_table(w).splitlines()[-1] == "(no settled calls in the windows)"
