"""``python -m dialnexa_watchdog.simulator``: serve a simulated DialNexa workspace until
Ctrl-C (``--scenario realistic`` for the realistic traffic)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ..clock import SystemClock
from .agents import AGENTS_APIS, AGENTS_SHAPES, AgentsApi, AgentsShape
from .app import Simulator
from .calls import SHAPES, Shape
from .scenario import Scenario
from .server import serve


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dialnexa_watchdog.simulator",
        description=(
            "Serve a simulated DialNexa workspace: List Calls (GET /v1/calls) and List Agents "
            "(GET /v1/agents2)."
        ),
    )
    p.add_argument("--listen", type=_listen, default=("127.0.0.1", 8080), metavar="HOST:PORT")
    p.add_argument("--scenario", choices=("demo", "steady", "realistic"), default="demo")
    p.add_argument("--key", action="append", default=None, help="accepted API key (repeatable)")
    p.add_argument("--forbidden-key", action="append", default=[], help="key answered with 403")
    p.add_argument("--shape", choices=SHAPES, default="v1")
    p.add_argument("--agents", type=int, default=20, help="steady/realistic: number of agents")
    p.add_argument(
        "--calls-per-day", type=float, default=100_000.0, help="steady/realistic: total rate"
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--diurnal", action="store_true", help="steady: follow a day curve (realistic always does)"
    )
    p.add_argument("--history", type=float, default=None, help="seconds of calls before the start")
    p.add_argument("--agents-shape", choices=AGENTS_SHAPES, default="snake")
    p.add_argument(
        "--agents-api", choices=AGENTS_APIS, default="on", help="/agents2: on, 404, 403 or garbage"
    )
    p.add_argument(
        "--rate-limit", type=int, default=150, help="requests per key per minute; 0 disables"
    )
    p.add_argument(
        "--ignore-date-filter", action="store_true", help="ignore the from/to parameters"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    seed = 0 if args.seed is None else args.seed
    history = {} if args.history is None else {"history": args.history}
    if args.scenario == "demo":
        scenario = Scenario.demo(**history) if args.seed is None else Scenario.demo(seed, **history)
    elif args.scenario == "realistic":
        scenario = Scenario.realistic(args.agents, args.calls_per_day, seed, **history)
    else:
        scenario = Scenario.steady(
            args.agents, args.calls_per_day, seed, diurnal=args.diurnal, **history
        )
    stop = threading.Event()
    shape: Shape = args.shape
    agents_shape: AgentsShape = args.agents_shape
    agents_api: AgentsApi = args.agents_api
    sim = Simulator(
        SystemClock(stop),
        scenario,
        keys=args.key or ["test-key"],
        forbidden_keys=args.forbidden_key,
        shape=shape,
        rate_limit=args.rate_limit or None,
        ignore_date_filter=args.ignore_date_filter,
        agents_shape=agents_shape,
        agents_api=agents_api,
    )
    host, port = args.listen

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    with serve(sim, host, port) as server:
        print(f"DialNexa simulator ({args.scenario}, shape {shape}) at {server.url}", flush=True)
        print(f"agents: {', '.join(sim.agent_ids[:8])}{' ...' if len(sim.agent_ids) > 8 else ''}")
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
