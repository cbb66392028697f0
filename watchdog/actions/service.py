"""The work behind each Slack request, after its transport acknowledged it: check the team
and the person, decode, act or answer, tell the person (ephemeral), log who did what.

``dispatch`` hands a payload to a small thread pool and returns at once, so a transport's
acknowledgement never waits for the state store or for Slack; ``handle`` does the work
(tests call it directly too). Nothing here raises into a transport: every fault becomes an
answer ("nothing was changed") and a log line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from ..alerts.incidents import Book, Incident
from ..alerts.pipeline import ActionRefused, AlertPipeline
from ..alerts.state import AlertState, Silence
from ..alerts.store.base import Decision
from ..clock import Clock
from ..model import WORKSPACE_AGENT, CountsView
from ..notify.controls import incident_key
from ..notify.message import SlackMessage
from .access import Access, Verdict
from .commands import (
    COMMANDS,
    AgentStatus,
    message,
    parse_command,
    render_alerts,
    render_help,
    render_silences,
    render_status,
)
from .handlers import decide, find_open
from .payloads import Click, Command, Ignored, Who, parse
from .slackio import SlackIO

log = logging.getLogger("watchdog.actions")

Key = tuple[str, str]
NOT_ALLOWED = (
    "⛔ You are not allowed to act on DialNexa alerts. Nothing was changed. (Whoever runs the "
    "watchdog can add you to slack.actions.allowed_users or allowed_usergroups.)"
)
CANNOT_CHECK = (
    "⚠️ The watchdog cannot check your user group with Slack right now, so nothing was "
    "changed. Try again in a minute."
)
FAILED = "⚠️ The watchdog could not save that, so nothing was changed. Try again in a minute."


class Incidents(Protocol):
    """The part of the state store the service reads."""

    def incident_by_key(self, key: str, hash_of: Callable[[str], str]) -> Incident | None: ...
    def silences(self, now: float | None = None) -> list[Silence]: ...


class StatusReader:
    """Reads an agent's window counts for ``/dialnexa status`` under the daemon's lock (the
    poll thread changes the windows)."""

    def __init__(
        self,
        view: CountsView,
        lock: threading.Lock,
        outcomes: Sequence[str],
        points: int,
        name_of: Callable[[str], str | None],
    ) -> None:
        self.view = view
        self.lock = lock
        self.outcomes = tuple(outcomes)
        self.points = points
        self.name_of = name_of

    def status(
        self,
        agent_id: str,
        states: Sequence[AlertState],
        silences: Sequence[Silence],
        acked: Mapping[str, tuple[str, float]],
    ) -> AgentStatus:
        whole = agent_id == WORKSPACE_AGENT  # `/dialnexa status *`: the whole workspace
        with self.lock:
            labels = self.view.window_labels()
            windows = []
            for w in labels:
                c = self.view.workspace(w) if whole else self.view.counts(agent_id, w)
                windows.append((w, c.calls, {o: c.ratio(o) for o in self.outcomes}))
            longest = labels[-1] if labels else ""
            who = None if whole else agent_id
            sparks = [
                (o, longest, tuple(self.view.series(who, o, longest, self.points)))
                for o in self.outcomes
                if longest
            ]
        return AgentStatus(
            agent_id,
            self.name_of(agent_id),
            windows,
            sparks,
            [s for s in states if s.agent_id == agent_id],
            silences,
            acked,
        )


class ActionService:
    def __init__(
        self,
        pipeline: AlertPipeline,
        store: Incidents,
        io: SlackIO,
        access: Access,
        clock: Clock,
        reader: StatusReader,
        *,
        team_id: str | None = None,
        deliver: Callable[[float], None] | None = None,
        workers: int = 4,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.io = io
        self.access = access
        self.clock = clock
        self.reader = reader
        self.team_id = team_id
        self.deliver = deliver
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="slack-action")
        self._closed = False
        self._busy = 0  # requests queued or being worked on
        self._idle = threading.Condition()

    def dispatch(self, kind: str, payload: Any) -> None:
        """Queue the work for an acknowledged request; returns at once, never raises."""
        if self._closed:
            return
        with self._idle:
            self._busy += 1
        try:
            self._pool.submit(self._work, kind, payload)
        except RuntimeError:  # shut down meanwhile
            self._done()

    def wait_idle(self, timeout: float) -> bool:
        """True once every dispatched request has been worked on, including the delivery
        pass it starts (False after ``timeout`` seconds; requests cancelled by ``close``
        never finish)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _work(self, kind: str, payload: Any) -> None:
        try:
            self.handle(kind, payload)
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def close(self) -> None:
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- the work ------------------------------------------------------------------------
    def handle(self, kind: str, payload: Any) -> str:
        """Do what the request asks; returns what happened (for logs and tests): applied,
        replay, unchanged, answered, refused, unknown_user_group, other_team, ignored,
        failed."""
        try:
            return self._handle(kind, payload)
        except Exception:
            log.exception("Slack action failed")
            return "failed"

    def _handle(self, kind: str, payload: Any) -> str:
        parsed = parse(kind, payload)
        if isinstance(parsed, Ignored):
            log.info("Slack request ignored: %s", parsed.reason)
            return "ignored"
        who = parsed.who
        expected = self.team_id or self.io.team_id()
        if expected is None or who.team_id != expected:
            log.warning(
                "Slack request from another team ignored",
                extra={"team_id": who.team_id[:40], "user_id": who.user_id[:40]},
            )
            return "other_team"
        verdict = self.access.check(who.user_id)
        what = parsed.pressed.choice.name if isinstance(parsed, Click) else f"command {kind}"
        if verdict is not Verdict.ALLOWED:
            refused = verdict is Verdict.REFUSED
            self._answer(parsed, message([NOT_ALLOWED if refused else CANNOT_CHECK]))
            self._log(who, what, None, "refused" if refused else "unknown_user_group")
            return "refused" if refused else "unknown_user_group"
        if isinstance(parsed, Command):
            self._answer(parsed, self._command(parsed))
            self._log(who, f"/{parse_command(parsed.text)[0]}", None, "answered")
            return "answered"
        return self._click(parsed)

    def _click(self, click: Click) -> str:
        now = self.clock.now()
        key = click.pressed.incident_key
        fallback = None
        if find_open(self.pipeline.book, key) is None:  # closed, unknown, or opened just now
            fallback = self.store.incident_by_key(key, incident_key)

        def decide_now(
            book: Book, states: Mapping[Key, AlertState], silences: Sequence[Silence]
        ) -> Decision:
            return decide(click, book, states, silences, now, fallback)

        incident = fallback.id if fallback is not None else None
        try:
            acted = self.pipeline.act(click.id, decide_now, now)
        except ActionRefused as exc:
            self._answer(click, message([f"⚠️ {exc}"]))
            self._log(click.who, click.pressed.choice.name, incident, "refused_store")
            return "failed"
        except Exception:
            log.exception("Slack action could not be applied")
            self._answer(click, message([FAILED]))
            self._log(click.who, click.pressed.choice.name, incident, "failed")
            return "failed"
        found = find_open(self.pipeline.book, key)
        incident = found.id if found is not None else incident
        result = "replay" if acted.replay else "applied" if acted.applied else "unchanged"
        self._log(click.who, click.pressed.choice.name, incident, result)
        self._answer(click, message([acted.answer]))
        if acted.applied and self.deliver is not None:
            self.deliver(self.clock.now())  # edit the message and reply in its thread now
        return result

    def _command(self, cmd: Command) -> SlackMessage:
        name, arg = parse_command(cmd.text)
        now = self.clock.now()
        if name not in COMMANDS:
            return render_help(name)
        if name == "help":
            return render_help()
        states = list(self.pipeline.states().values())
        silences = self.store.silences(now)
        acked = _acked(self.pipeline.book)
        if name == "alerts":
            return render_alerts(states, silences, acked, now)
        if name == "silences":
            return render_silences(silences, now)
        if not arg:
            return message(["Which agent? `/dialnexa status AGENT_ID`"])
        by_rule = {rule: v for (rule, agent), v in acked.items() if agent == arg}
        status = self.reader.status(arg, states, silences, by_rule)
        return render_status(status, now, self.reader.points)

    def _answer(self, req: Click | Command, msg: SlackMessage) -> None:
        self.io.respond(msg, req.response_url, req.channel_id, req.who.user_id)

    def _log(self, who: Who, action: str, incident: str | None, result: str) -> None:
        log.info(
            "Slack action %s by %s: %s",
            action,
            who.user_id,
            result,
            extra={
                "user_id": who.user_id,
                "user": who.name,
                "action": action,
                "incident": incident or "-",
                "result": result,
            },
        )


def _acked(book: Book) -> dict[Key, tuple[str, float]]:
    out: dict[Key, tuple[str, float]] = {}
    for key, iid in book.incident_of.items():
        inc = book.incidents.get(iid)
        if inc is not None and inc.acked_by and inc.acked_at is not None:
            out[key] = (inc.acked_by, inc.acked_at)
    return out
