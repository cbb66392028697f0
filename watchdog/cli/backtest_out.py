"""What ``backtest`` writes: the terminal report, ``--json``, ``--html``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..alerts.store.sql import SqlStore
from ..backtest.engine import Cycles
from ..config import Settings
from ..windows import Windows
from .util import PROG

CHARTS = 40  # agents charted at most (most incidents first)


def agent_names(settings: Settings, store: SqlStore | None) -> dict[str, str]:
    """Agent id -> title for the report: the directory the daemon saved in the state file,
    ``slack.agent_names`` over it (no request: the backtest lists no agents)."""
    from ..ingest.directory import saved_titles

    saved = saved_titles(store) if store is not None else {}
    return saved | dict(settings.slack.agent_names)


def finish(
    args: argparse.Namespace,
    report_json: dict[str, Any],
    settings: Settings | None = None,
    cycles: Callable[[Windows], Cycles] | None = None,
    agents: list[str] | None = None,
) -> int:
    """Print the report, write --json and --html (``cycles`` replayed again for the charts)."""
    from ..backtest import report

    if report_json["span"]["cycles"] == 0 or report_json["span"]["agents"] == 0:
        print(
            f"{PROG}: no calls in the span: nothing to backtest "
            f"({report_json['span']['cycles']} cycles)",
            file=sys.stderr,
        )
        return 1
    print(report.text(report_json, limit=args.limit))
    if args.json:
        Path(args.json).write_text(json.dumps(report_json, indent=1) + "\n", encoding="utf-8")
        print(f"\nJSON report: {args.json}")
    if args.html and settings is not None and cycles is not None:
        write_html(Path(args.html), report_json, settings, cycles, agents)
        print(f"HTML report: {args.html}")
    return 0


def write_html(
    path: Path,
    report_json: dict[str, Any],
    settings: Settings,
    cycles: Callable[[Windows], Cycles],
    agents: list[str] | None,
) -> None:
    from ..backtest import html
    from ..backtest.runner import chart_series
    from ..backtest.series import wanted

    alerted = len(wanted(report_json, 10**9))
    chosen, series = chart_series(settings, cycles, report_json, CHARTS, agents)
    charts = {a: html.chart(a, pairs, series, report_json) for a, pairs in chosen.items()}
    path.write_text(html.page(report_json, charts, alerted), encoding="utf-8")
