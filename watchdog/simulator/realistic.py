"""The realistic scenario: who the agents are and how their calls behave. Pure.

Everything is drawn from the seed (``random.Random("realistic:<seed>")``), so the same seed
gives the same agents; the calls are then drawn by the store as for every scenario.
``Scenario.realistic`` (``scenario.py``) wraps these profiles in a scenario.

* **Volumes**: Zipf-like, agent of rank ``i`` (ranks shuffled over the ids) gets a share
  ``1 / i**zipf``: with 2,000 agents and ``zipf`` 1, the top 1% carry ~44% of the calls.
* **Outcome mixes**: each agent follows a persona (collections, sales, survey, reminders,
  support) whose normal rates run from 2% to 40% by outcome, jittered by +-``mix_jitter``.
  A share ``drop_share`` of its failures happens after the answer (status failed, ended_at
  after the conversation), and ~0.5% of calls end as a bare ``hangup`` (no usable reason).
* **Talk times**: log-normal with median ``talk_median`` and 1% over ``talk_p99`` (30 min),
  so ~0.015% run over 2 h, each call capped by its agent's ``max_call_duration_sec``, drawn
  from ``max_call_durations`` (300 s to 3 h; ~1 agent in 7 allows calls over 30 minutes).
* **Ring times**: unanswered calls ring to the agent's ``ring_duration_sec`` (20-45 s),
  busy and failed calls end within seconds, answered calls are picked up within 3-20 s.
* **Bursts**: campaign starts (``Bursts``: 2 per agent a day, 10x the agent's rate for 2-8
  minutes); the agents' mean rates are scaled down so the day's total stays
  ``calls_per_day``.
* **Vocabularies**: ``vocabs`` (underscore, hyphen, and the webhook ``hangup`` spelling).
* **Directory**: titles from the persona, a few hostile ones (``HOSTILE_TITLES``), a few
  entries without a title or without call limits, plus extra agents that were deleted at the
  start (they placed calls before it) or whose current version is an unpublished draft.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from random import Random

from .calls import VOCABS, Vocab
from .profiles import AgentInfo, AgentProfile, Bursts

Z99 = 2.3263478740408408  # the standard normal's 99th percentile

# Hostile agent titles: Slack mentions and links, mrkdwn, HTML, very long, unicode (RTL
# override, zero-width space, emoji, CJK), control characters.
HOSTILE_TITLES: tuple[str, ...] = (
    "<!channel>",
    "*bold* _italic_ ~strike~ `code` > quote",
    "<https://evil.example/login|Click here> & <@U012AB3CD> <!here>",
    "Renewals " + "very long title " * 40,
    "Ünïcødé 客服 🤖 \u202eevil\u202c zero\u200bwidth",
    "line one\nline two\t<b>&amp;</b>",
)


@dataclass(frozen=True, slots=True)
class Persona:
    """A kind of agent: its title and its normal rates of every outcome but completed."""

    name: str
    title: str
    weight: float
    rates: Mapping[str, float]


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "collections",
        "Collections Bot",
        0.25,
        {
            "no_answer": 0.40,
            "busy": 0.08,
            "failed": 0.04,
            "voicemail": 0.07,
            "did_not_pick": 0.01,
            "cancelled": 0.01,
            "retry_expired": 0.005,
            "hangup": 0.005,
        },
    ),
    Persona(
        "sales",
        "Outbound Sales",
        0.25,
        {
            "no_answer": 0.25,
            "busy": 0.06,
            "failed": 0.05,
            "voicemail": 0.12,
            "cancelled": 0.01,
            "hangup": 0.005,
        },
    ),
    Persona(
        "survey",
        "Customer Survey",
        0.15,
        {
            "no_answer": 0.30,
            "busy": 0.05,
            "failed": 0.06,
            "voicemail": 0.08,
            "retry_expired": 0.01,
            "hangup": 0.005,
        },
    ),
    Persona(
        "reminders",
        "Appointment Reminders",
        0.15,
        {
            "no_answer": 0.15,
            "busy": 0.04,
            "failed": 0.03,
            "voicemail": 0.20,
            "cancelled": 0.02,
            "hangup": 0.005,
        },
    ),
    Persona(
        "support",
        "Customer Support Bot",
        0.20,
        {
            "no_answer": 0.05,
            "busy": 0.02,
            "failed": 0.02,
            "voicemail": 0.02,
            "cancelled": 0.01,
            "hangup": 0.005,
        },
    ),
)

MAX_CALL_DURATIONS: tuple[tuple[int, float], ...] = (
    (300, 0.15),
    (600, 0.29),
    (900, 0.20),
    (1200, 0.12),
    (1800, 0.10),
    (3600, 0.07),
    (7200, 0.04),
    (10800, 0.03),
)


@dataclass(frozen=True, slots=True)
class RealisticParams:
    """Every knob of the realistic scenario; the defaults are the benchmark's headline."""

    zipf: float = 1.0
    personas: tuple[Persona, ...] = PERSONAS
    mix_jitter: float = 0.25  # each normal rate times uniform(1 - j, 1 + j)
    drop_share: float = 0.35  # of failed calls, the share that fails after the answer
    talk_median: float = 150.0  # seconds
    talk_p99: float = 1800.0  # 1% of conversations are longer (before the cap)
    answer_ring: tuple[float, float] = (3.0, 20.0)  # seconds until an answered call picks up
    max_call_durations: tuple[tuple[int, float], ...] = MAX_CALL_DURATIONS  # (s, weight)
    ring_durations: tuple[int, int] = (20, 45)  # seconds, uniform integers
    vocabs: tuple[tuple[Vocab, float], ...] = (
        ("underscore", 0.5),
        ("hyphen", 0.3),
        ("webhook", 0.2),
    )
    bursts: Bursts | None = field(default_factory=Bursts)
    deleted: float = 0.02  # extra agents (share of ``agents``) deleted at the start
    unpublished: float = 0.03  # extra agents whose current version is a draft: no calls
    hostile_titles: bool = True
    missing_fields: float = 0.01  # share of directory entries without title / call limits

    def __post_init__(self) -> None:
        if self.zipf < 0 or not 0 <= self.mix_jitter < 1 or not 0 <= self.drop_share <= 1:
            raise ValueError("need zipf >= 0, 0 <= mix_jitter < 1, 0 <= drop_share <= 1")
        if not 0 < self.talk_median <= self.talk_p99:
            raise ValueError("need 0 < talk_median <= talk_p99")
        lo, hi = self.ring_durations
        if not 1 <= lo <= hi or not 0 <= self.answer_ring[0] <= self.answer_ring[1]:
            raise ValueError("ring_durations and answer_ring must be (low, high), low <= high")
        if not self.max_call_durations or not self.personas or not self.vocabs:
            raise ValueError("max_call_durations, personas and vocabs must not be empty")
        if any(v not in VOCABS for v, _ in self.vocabs):
            raise ValueError(f"vocabs must be among {VOCABS}")
        for share in (self.deleted, self.unpublished, self.missing_fields):
            if not 0 <= share <= 1:
                raise ValueError("deleted, unpublished and missing_fields are shares 0..1")

    @property
    def talk_sigma(self) -> float:
        """The log-normal's sigma that puts 1% of talk times over ``talk_p99``."""
        return math.log(self.talk_p99 / self.talk_median) / Z99


def lognormal_share_over(median: float, sigma: float, x: float) -> float:
    """P(talk > x) for a log-normal with ``median`` and ``sigma`` (before any cap)."""
    if sigma == 0:
        return 1.0 if median > x else 0.0
    z = math.log(x / median) / sigma
    return 0.5 * math.erfc(z / math.sqrt(2.0))


_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _agent_ids(rng: Random, n: int) -> list[str]:
    """``agt_`` + 12 characters, like DialNexa's ``agt_k7m2nq9xw4p8``; unique."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        aid = "agt_" + "".join(rng.choice(_ID_ALPHABET) for _ in range(12))
        if aid not in seen:
            seen.add(aid)
            out.append(aid)
    return out


def _mix(rng: Random, persona: Persona, jitter: float) -> dict[str, float]:
    rates = {o: r * (1.0 + jitter * (2.0 * rng.random() - 1.0)) for o, r in persona.rates.items()}
    rest = 1.0 - sum(rates.values())
    if rest < 0.1:  # keep at least 10% completed
        scale = 0.9 / sum(rates.values())
        rates = {o: r * scale for o, r in rates.items()}
        rest = 0.1
    return {"completed": rest, **rates}


def build_realistic(
    agents: int, calls_per_day: float, seed: int, params: RealisticParams
) -> tuple[AgentProfile, ...]:
    """The profiles of ``agents`` agents placing ``calls_per_day`` calls in all, plus the
    deleted and unpublished extras (``Scenario.realistic`` makes the scenario of them).
    Deterministic from ``seed``."""
    if agents < 1:
        raise ValueError("agents must be >= 1")
    if calls_per_day < 0:
        raise ValueError("calls_per_day must be >= 0")
    rng = Random(f"realistic:{seed}")
    n_deleted = math.ceil(agents * params.deleted) if params.deleted > 0 else 0
    n_draft = math.ceil(agents * params.unpublished) if params.unpublished > 0 else 0
    ids = _agent_ids(rng, agents + n_deleted + n_draft)
    ranks = list(range(1, agents + 1))
    rng.shuffle(ranks)
    weights = [1.0 / r**params.zipf for r in ranks]
    extra = params.bursts.extra_share if params.bursts is not None else 0.0
    per_weight = calls_per_day / 1440.0 / sum(weights) / (1.0 + extra)
    sigma = params.talk_sigma
    limits = [s for s, _ in params.max_call_durations]
    limit_weights = [w for _, w in params.max_call_durations]
    vocabs = [v for v, _ in params.vocabs]
    vocab_weights = [w for _, w in params.vocabs]
    persona_weights = [p.weight for p in params.personas]
    hostile = list(HOSTILE_TITLES) if params.hostile_titles else []
    hostile_at = dict(
        zip(rng.sample(range(agents), min(agents, len(hostile))), hostile, strict=False)
    )
    profiles: list[AgentProfile] = []
    numbers: dict[str, int] = {}
    median_cpm = sorted(w * per_weight for w in weights)[agents // 2]
    for i, agent_id in enumerate(ids):
        persona = rng.choices(params.personas, persona_weights)[0]
        mix = _mix(rng, persona, params.mix_jitter)
        vocab = rng.choices(vocabs, vocab_weights)[0]
        max_call = rng.choices(limits, limit_weights)[0]
        ring_limit = rng.randint(*params.ring_durations)
        numbers[persona.title] = numbers.get(persona.title, 0) + 1
        title: str | None = f"{persona.title} {numbers[persona.title]}"
        title = hostile_at.get(i, title)
        missing = rng.random() < params.missing_fields
        deleted = agents <= i < agents + n_deleted
        draft = i >= agents + n_deleted
        cpm = weights[i] * per_weight if i < agents else 0.0 if draft else median_cpm
        info = AgentInfo(
            title=None if missing and i % 2 == 0 else title,
            published=not draft,
            deleted=deleted,
            max_call_duration_sec=None if missing and i % 2 == 1 else max_call,
            ring_duration_sec=None if missing and i % 2 == 1 else ring_limit,
        )
        profiles.append(
            AgentProfile(
                agent_id=agent_id,
                calls_per_minute=cpm,
                outcomes=mix,
                ring=params.answer_ring,
                vocab=vocab,
                quiet=((0.0, 1e15),) if deleted else (),
                info=info,
                talk_lognormal=(params.talk_median, sigma),
                max_call_duration=float(max_call),
                ring_limit=float(ring_limit),
                drop_share=params.drop_share,
            )
        )
    return tuple(profiles)
