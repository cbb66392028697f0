"""The simulator's call table: one row per call in parallel columns, and the (created, id)
indexes of the workspace and of each agent. Not thread-safe by itself. Times are integer ms.

Layout (chosen for speed and memory at ~10^5..10^6 calls): one row per call in parallel
``array`` columns indexed by an internal serial ``k`` (agent, created, ring, talk, settle,
outcome/vocabulary), no Python object per call. Generated ids are not stored: they are a
keyed bijection of ``k`` (``ids.IdCodec``). The call order sorted by ``(created, id)``
ascending is kept for the workspace and per agent as ``array('q')`` pairs (created keys for
bisection, serials). ``store.CallStore`` adds generation, pages and ground truth.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator

from .calls import (
    ANSWERED_CODES,
    FINAL_BASE,
    OUTCOME_CODE,
    OUTCOMES,
    VOCAB_BITS,
    VOCAB_MASK,
    VOCABS,
    CallSpec,
    Shape,
    Vocab,
    normalise,
    status_table,
    to_ms,
)
from .ids import IdCodec


class CallTable:
    """Rows, ids and (created, id) indexes; edits tell ``_edited`` (derived indexes)."""

    def __init__(self, shape: Shape = "v1", default_vocab: Vocab = "underscore") -> None:
        self.shape: Shape = shape
        self.default_vocab: Vocab = default_vocab
        # per call (index k)
        self.agent = array("l")
        self.created = array("q")
        self.ring = array("q")
        self.talk = array("q")  # effective: 0 for unanswered outcomes
        self.settle = array("q")
        self.ov = array("b")  # outcome code << VOCAB_BITS | vocabulary code (VOCABS index)
        # ids: generated calls' ids are a keyed bijection of k (see ``IdCodec``), computed
        # on demand; only explicitly added calls keep a string
        self.codec = IdCodec(0)
        self.explicit_ids: dict[int, str] = {}
        self.explicit_by_id: dict[str, int] = {}
        # workspace order by (created, id)
        self.keys = array("q")
        self.order = array("q")
        # per agent
        self.agents: list[str] = []
        self.agent_index: dict[str, int] = {}
        self.agent_vocab: list[int] = []
        self.agent_keys: list[array[int]] = []
        self.agent_order: list[array[int]] = []
        self.max_duration = 0  # ms, max(settle - created)
        self.generated = False  # a scenario generates calls: call_<16 hex> ids are reserved

    # ---- agents and rows -------------------------------------------------------------

    def vocab_of(self, agent_id: str) -> Vocab | None:
        a = self.agent_index.get(agent_id)
        return None if a is None else VOCABS[self.agent_vocab[a]]

    def add_agent(self, agent_id: str, vocab: Vocab | None = None) -> int:
        a = self.agent_index.get(agent_id)
        if a is not None:
            if vocab is not None and VOCABS[self.agent_vocab[a]] != vocab:
                raise ValueError(
                    f"agent {agent_id!r} already speaks {VOCABS[self.agent_vocab[a]]!r}"
                )
            return a
        v = vocab or self.default_vocab
        if v not in VOCABS:
            raise ValueError(f"vocab must be one of {VOCABS}")
        a = len(self.agents)
        self.agents.append(agent_id)
        self.agent_index[agent_id] = a
        self.agent_vocab.append(VOCABS.index(v))
        self.agent_keys.append(array("q"))
        self.agent_order.append(array("q"))
        return a

    def __len__(self) -> int:
        return len(self.created)

    def id_of(self, k: int) -> str:
        cid = self.explicit_ids.get(k)
        return cid if cid is not None else self.codec.encode(k)

    def find(self, cid: str) -> int | None:
        """The serial of call ``cid``, or None."""
        k = self.explicit_by_id.get(cid)
        if k is not None:
            return k
        k = self.codec.decode(cid)
        if k is not None and k < len(self.created) and k not in self.explicit_ids:
            return k
        return None

    def add(self, spec: CallSpec, vocab: Vocab | None = None) -> int:
        if spec.id in self.explicit_by_id or (
            self.generated and self.codec.decode(spec.id) is not None
        ):
            raise ValueError(f"duplicate or reserved call id {spec.id!r}")
        a = self.add_agent(spec.agent_id, vocab)
        c = to_ms(spec.created_at)
        r = to_ms(spec.ring)
        t = to_ms(spec.talk_seconds)
        return self._append(spec.id, a, c, r, t, OUTCOME_CODE[spec.outcome])

    def _append(self, cid: str, a: int, c: int, r: int, t: int, oc: int) -> int:
        k = len(self.created)
        self.explicit_ids[k] = cid
        self.explicit_by_id[cid] = k
        self.agent.append(a)
        self.created.append(c)
        self.ring.append(r)
        self.talk.append(t)
        self.settle.append(c + r + t)
        self.ov.append(oc << VOCAB_BITS | self.agent_vocab[a])
        self.max_duration = max(self.max_duration, r + t)
        self._edited()
        self._place(self.keys, self.order, k, c, cid)
        self._place(self.agent_keys[a], self.agent_order[a], k, c, cid)
        return k

    def _place(self, keys: array[int], order: array[int], k: int, c: int, cid: str) -> None:
        """Insert serial ``k`` (created ``c``, id ``cid``) keeping (created, id) order."""
        n = len(keys)
        if n == 0 or c > keys[-1] or (c == keys[-1] and cid > self.id_of(order[-1])):
            keys.append(c)
            order.append(k)
            return
        pos = bisect_right(keys, c)
        id_of = self.id_of
        while pos > 0 and keys[pos - 1] == c and id_of(order[pos - 1]) > cid:
            pos -= 1
        keys.insert(pos, c)
        order.insert(pos, k)

    def spec(self, k: int) -> CallSpec:
        return CallSpec(
            id=self.id_of(k),
            agent_id=self.agents[self.agent[k]],
            created_at=self.created[k] / 1000.0,
            outcome=OUTCOMES[self.ov[k] >> VOCAB_BITS],
            ring=self.ring[k] / 1000.0,
            talk=self.talk[k] / 1000.0,
        )

    def set_final(self, cid: str, outcome: str, at_ms: int | None) -> None:
        k = self.find(cid)
        if k is None:
            raise KeyError(f"no call {cid!r}")
        oc = OUTCOME_CODE.get(outcome)
        if oc is None:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        c, r, t = self.created[k], self.ring[k], self.talk[k]
        answered = oc in ANSWERED_CODES
        if at_ms is None:
            if not answered:
                t = 0
        else:
            if at_ms < c:
                raise ValueError("a call cannot settle before it was created")
            if answered:
                r = min(r, at_ms - c)
                t = at_ms - c - r
            else:
                r, t = at_ms - c, 0
        self.ring[k] = r
        self.talk[k] = t
        self.settle[k] = c + r + t
        self.ov[k] = oc << VOCAB_BITS | (self.ov[k] & VOCAB_MASK)
        self.max_duration = max(self.max_duration, r + t)
        self._edited()

    def iter_specs(self, until_ms: int | None = None) -> Iterator[CallSpec]:
        """Every call in (created, id) order, optionally only those created <= until_ms."""
        hi = len(self.keys) if until_ms is None else bisect_right(self.keys, until_ms)
        for i in range(hi):
            yield self.spec(self.order[i])

    def _bulk_append(
        self,
        k0: int,
        agent: list[int],
        created: list[int],
        ring: list[int],
        talk: list[int],
        settle: list[int],
        ov: list[int],
        order: list[int],
    ) -> None:
        """Append rows ``k0...`` (``order``: their (created, id) order) and index them."""
        self.agent.fromlist(agent)
        self.created.fromlist(created)
        self.ring.fromlist(ring)
        self.talk.fromlist(talk)
        self.settle.fromlist(settle)
        self.ov.fromlist(ov)
        serials = [k0 + j for j in order]
        sorted_c = [created[j] for j in order]
        self._extend_index(self.keys, self.order, sorted_c, serials)
        per_agent: dict[int, tuple[list[int], list[int]]] = {}
        for j, k, c in zip(order, serials, sorted_c, strict=True):
            entry = per_agent.get(agent[j])
            if entry is None:
                per_agent[agent[j]] = ([c], [k])
            else:
                entry[0].append(c)
                entry[1].append(k)
        for a, (cs, ks) in per_agent.items():
            self._extend_index(self.agent_keys[a], self.agent_order[a], cs, ks)

    def _extend_index(
        self, keys: array[int], order: array[int], cs: list[int], ks: list[int]
    ) -> None:
        """Add sorted (created, serial) pairs to an index: in bulk when they all come last."""
        id_of = self.id_of
        if not keys or cs[0] > keys[-1] or (cs[0] == keys[-1] and id_of(ks[0]) > id_of(order[-1])):
            keys.fromlist(cs)
            order.fromlist(ks)
            return
        for c, k in zip(cs, ks, strict=True):
            self._place(keys, order, k, c, id_of(k))

    # ---- queries ---------------------------------------------------------------------

    def code_at(self, k: int, now: int) -> int:
        """Status code of call ``k`` at ``now`` (ms); the call must exist by then."""
        el = now - self.created[k]
        r = self.ring[k]
        if el < r:
            return 0 if el < 1000 else 1
        if el < r + self.talk[k]:
            return 2
        return FINAL_BASE + (self.ov[k] >> VOCAB_BITS)

    def status_codes(self, status: str) -> tuple[frozenset[int], ...]:
        """Status codes whose spelling matches ``status``, one set per vocabulary (VOCABS)."""
        want = normalise(status)
        return tuple(
            frozenset(i for i, s in enumerate(table) if normalise(s) == want)
            for table in status_table(self.shape)
        )

    def _edited(self) -> None:
        """A row was added one by one or changed: indexes derived from the rows are stale."""
