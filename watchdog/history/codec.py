"""The compact encoding of one cycle's history cells. Pure.

A cell is (agent code, bucket, status code, n). Cells are sorted by agent, bucket and
status, then stored as four columns (agent code gaps, ``kmax - bucket``, status code, n),
each in the narrowest fixed-width integer type that holds it, and the columns are
zlib-compressed together. Columns of small, repetitive integers compress to about 1-2 bytes
per cell; decoding is ``zlib.decompress`` plus ``array.frombytes`` (C speed)."""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from itertools import accumulate, pairwise

from .base import HistoryCorrupt

VERSION = 1
_HEAD = struct.Struct("<BI4s")  # version, cells, the four columns' array typecodes
_UNSIGNED = ("B", "H", "I", "Q")
_SIGNED = ("b", "h", "i", "q")
_SIZES = {c: array(c).itemsize for c in _UNSIGNED + _SIGNED}
_LITTLE = sys.byteorder == "little"

Cell = tuple[int, int, int, int]  # (agent code, bucket, status code, n)
Columns = tuple[list[int], list[int], list[int], list[int]]  # agents, buckets, statuses, n


def _typecode(values: Sequence[int], signed: bool) -> str:
    lo, hi = (min(values), max(values)) if values else (0, 0)
    for code in _SIGNED if signed else _UNSIGNED:
        bits = 8 * _SIZES[code]
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        if low <= lo and hi <= high:
            return code
    raise ValueError("a history value does not fit in 64 bits")


def _pack(code: str, values: Sequence[int]) -> bytes:
    arr = array(code, values)
    if not _LITTLE:
        arr.byteswap()
    return arr.tobytes()


def encode(cells: Sequence[Cell]) -> tuple[int, int, bytes]:
    """(kmin, kmax, data) for ``cells``; (0, 0, b"") when there are none."""
    if not cells:
        return 0, 0, b""
    ordered = sorted(cells)
    agents = [c[0] for c in ordered]
    kmin = min(c[1] for c in ordered)
    kmax = max(c[1] for c in ordered)
    gaps = [agents[0], *(b - a for a, b in pairwise(agents))]
    back = [kmax - c[1] for c in ordered]
    status = [c[2] for c in ordered]
    n = [c[3] for c in ordered]
    codes = (
        _typecode(gaps, False),
        _typecode(back, False),
        _typecode(status, False),
        _typecode(n, True),
    )
    body = b"".join(
        _pack(code, col) for code, col in zip(codes, (gaps, back, status, n), strict=True)
    )
    head = _HEAD.pack(VERSION, len(ordered), "".join(codes).encode("ascii"))
    return kmin, kmax, head + zlib.compress(body, 9)


def decode(data: bytes, kmax: int) -> Columns:
    """The cells of ``encode``'s ``data`` as columns; HistoryCorrupt if it is not one."""
    if not data:
        return [], [], [], []
    try:
        version, count, raw = _HEAD.unpack_from(data)
        codes = raw.decode("ascii")
        if version != VERSION:
            raise HistoryCorrupt(f"history row version {version}, expected {VERSION}")
        if any(c not in _SIZES for c in codes) or codes[3] not in _SIGNED:
            raise HistoryCorrupt("history row has unknown column types")
        body = zlib.decompress(data[_HEAD.size :])
        cols: list[array[int]] = []
        offset = 0
        for code in codes:
            size = _SIZES[code] * count
            arr = array(code)
            arr.frombytes(body[offset : offset + size])
            if len(arr) != count:
                raise HistoryCorrupt("history row is truncated")
            if not _LITTLE:
                arr.byteswap()
            cols.append(arr)
            offset += size
        if offset != len(body):
            raise HistoryCorrupt("history row has trailing bytes")
    except (struct.error, zlib.error, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, HistoryCorrupt):
            raise
        raise HistoryCorrupt(f"history row cannot be decoded: {exc}") from None
    gaps, back, status, n = cols
    return list(accumulate(gaps)), [kmax - b for b in back], status.tolist(), n.tolist()
