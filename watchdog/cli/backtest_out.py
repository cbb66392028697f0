"""What ``backtest`` writes: the terminal report, ``--json``, ``--html``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .util import PROG


def finish(args: argparse.Namespace, report_json: dict[str, Any]) -> int:
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
    return 0
