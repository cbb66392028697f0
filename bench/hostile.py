"""``python -m bench.hostile``: what hostile answers cost the client, in memory and time.

Each case runs in a fresh process (so peak RSS is the client's own; the server, from
tests/hostile_api.py on 127.0.0.1, runs in a forked child): six 50 MB bodies (declared and
close-delimited), six gzip bombs, and, for the per-request overhead of streaming with a
deadline and a size limit, 2,000 ordinary pages.
Prints one line per case; nothing is asserted (tests do that).
"""

from __future__ import annotations

import gc
import json
import multiprocessing as mp
import resource
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("50mb_declared", "50mb_streamed", "gzip_bomb", "ordinary_pages")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case: str) -> dict[str, float | str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from dialnexa_watchdog.clock import FakeClock
    from dialnexa_watchdog.ingest.client import ApiClient
    from dialnexa_watchdog.model import Range
    from hostile_api import HostileApi, Reply, huge_body, item, page
    from pydantic import SecretStr

    t0 = 1_750_000_000.0
    size = 50 * 1024 * 1024

    def bomb() -> Reply:  # 256 MiB of JSON in ~250 kB of gzip, never held whole
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts = [z.compress(b'{"data": [{"id": "')]
        zeros = b"0" * (1 << 20)
        parts += [z.compress(zeros) for _ in range(256)]
        parts.append(z.compress(b'"}]}') + z.flush())
        return Reply(200, b"".join(parts), headers=[("Content-Encoding", "gzip")])

    if case == "gzip_bomb":
        reply = bomb()
    elif case == "ordinary_pages":
        reply = Reply(200, page([item(f"c{i}", t0 - 10) for i in range(100)], total_pages=1))
    else:
        declared = size if case == "50mb_declared" else -1
        reply = Reply(200, huge_body(size), content_length=declared)
    rounds = 2000 if case == "ordinary_pages" else 6

    ports: mp.Queue[int] = mp.get_context("fork").Queue()
    done = mp.get_context("fork").Event()

    def serve() -> None:
        with HostileApi(lambda req: reply) as api:
            ports.put(api.port)
            done.wait()

    server = mp.get_context("fork").Process(target=serve, daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ports.get(timeout=10)}/v1"
    gc.collect()
    before = _rss_mb()
    c = ApiClient(url, SecretStr("bench-key"), FakeClock(t0), max_retries=0)
    started = time.perf_counter()
    kinds = set()
    for _ in range(rounds):
        listing = c.list_range(Range(t0 - 60, t0))
        kinds.add(listing.error.kind if listing.error else "ok")
    seconds = time.perf_counter() - started
    done.set()
    server.join(5)
    return {
        "case": case,
        "requests": rounds,
        "outcome": ",".join(sorted(kinds)),
        "ms_per_request": round(seconds / rounds * 1000, 3),
        "peak_rss_mb_before": round(before, 1),
        "peak_rss_mb_after": round(_rss_mb(), 1),
    }


def main() -> None:
    if len(sys.argv) > 1:
        print(json.dumps(run_case(sys.argv[1])))
        return
    for case in CASES:
        out = subprocess.run(
            [sys.executable, "-m", "bench.hostile", case],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        print(out.stdout.strip())


if __name__ == "__main__":
    main()
