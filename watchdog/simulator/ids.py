"""Generated call ids: a keyed 64-bit bijection of the store's row serial. Pure.

Ids look random (``call_<16 hex>``), never collide and need no storage: the store computes
them on demand and decodes one back to its row.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_M1_INV = pow(_M1, -1, 1 << 64)
_M2_INV = pow(_M2, -1, 1 << 64)
_ID_PREFIX = "call_"


def _unshift(y: int, s: int) -> int:
    """Invert ``y = x ^ (x >> s)`` on 64 bits."""
    x = y
    for _ in range(64 // s + 1):
        x = y ^ (x >> s)
    return x


class IdCodec:
    """Generated call ids ``call_<16 hex>``: a keyed 64-bit bijection of the row serial, so
    ids look random, never collide, and need no storage (splitmix64's finaliser + a key)."""

    def __init__(self, key: int) -> None:
        self.key = key & _MASK

    def encode(self, k: int) -> str:
        x = k ^ self.key
        x ^= x >> 30
        x = (x * _M1) & _MASK
        x ^= x >> 27
        x = (x * _M2) & _MASK
        x ^= x >> 31
        return f"call_{x:016x}"

    def decode(self, cid: str) -> int | None:
        """The serial behind a generated id, or None if ``cid`` is not shaped like one."""
        if len(cid) != 21 or not cid.startswith(_ID_PREFIX):
            return None
        try:
            x = int(cid[5:], 16)
        except ValueError:
            return None
        if cid[5:] != f"{x:016x}":
            return None
        x = _unshift(x, 31)
        x = (x * _M2_INV) & _MASK
        x = _unshift(x, 27)
        x = (x * _M1_INV) & _MASK
        x = _unshift(x, 30)
        k = x ^ self.key
        return k if k < (1 << 40) else None
