"""``llmroute usage --ledger FILE``: spend reports, the terminal chart, the HTML page, pruning.

Exit codes: 0 done, 2 bad usage (``--since`` after ``--until``, a bad date, a file that is not a
ledger, a ledger newer than this llmroute), 1 a failure while reading or writing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_error, print_text

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``usage`` subcommand; its ``func`` default is ``run``."""
    from ..ledger.reports import GROUPINGS

    parser = subparsers.add_parser(
        "usage", help="what was spent, per model, task, day or tag, from a ledger",
        description="Totals per group from a usage ledger: requests, errors, tokens in and out, "
                    "exact cost, p50/p95/p99 latency. Dates are ISO 8601 UTC (2026-11-01 or "
                    "2026-11-01T12:00:00Z); --since is inclusive, --until exclusive.",
        epilog="examples:\n"
               "  llmroute usage --ledger usage.db --by model\n"
               "  llmroute usage --ledger usage.db --since 2026-11-01 --by day --chart\n"
               "  llmroute usage --ledger usage.db --by tag --format csv > spend.csv\n"
               "  llmroute usage --ledger usage.db --html report.html")
    parser.add_argument("--ledger", metavar="FILE",
                        help="the ledger: a SQLite file, a postgresql:// URL or a libpq "
                             "'host=... dbname=...' string (default: $LLMROUTE_LEDGER)")
    parser.add_argument("--since", metavar="DATE", help="first moment included (UTC)")
    parser.add_argument("--until", metavar="DATE", help="first moment excluded (UTC)")
    parser.add_argument("--by", choices=tuple(GROUPINGS), default="model",
                        help="group rows by this (default: model)")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table",
                        help="output format (default: table)")
    parser.add_argument("--chart", action="store_true",
                        help="draw spend per day as a stacked bar chart (one bar per day, one "
                             "series per model) above the table")
    parser.add_argument("--html", metavar="FILE",
                        help="also write a self-contained HTML page with charts and totals")
    parser.add_argument("--prune-before", metavar="DATE",
                        help="delete the rows older than DATE (UTC) and report how many went")
    parser.set_defaults(func=run)
    return parser


def _fail(message: object, code: int = EXIT_USAGE) -> int:
    print_error("llmroute usage", message)
    return code


def run(args: argparse.Namespace) -> int:
    from ..ledger import Ledger, LedgerError
    from ..ledger.chart import can_encode_blocks, render_spend_chart, use_colour
    from ..ledger.core import to_us
    from ..ledger.html import render_html
    from ..ledger.reports import daily_spend, format_table, to_csv, to_json, usage_report

    target = args.ledger or os.environ.get("LLMROUTE_LEDGER")
    if not target:
        return _fail("no ledger: pass --ledger FILE or set LLMROUTE_LEDGER")
    if args.chart and args.format != "table":
        return _fail("--chart draws for a terminal; use it with --format table")
    try:
        Ledger.time_filter(args.since, args.until)
        if args.prune_before is not None:
            to_us(args.prune_before, "--prune-before")
    except ValueError as err:
        return _fail(str(err))
    try:
        ledger = Ledger(target, create=False)
    except (LedgerError, ValueError) as err:
        return _fail(str(err))
    try:
        if args.prune_before is not None:
            count = ledger.prune(args.prune_before)
            print("deleted %d row(s) older than %s" % (count, args.prune_before))
            return EXIT_OK
        report = usage_report(ledger, by=args.by, since=args.since, until=args.until)
        daily = daily_spend(ledger, since=args.since, until=args.until) \
            if args.chart or args.html else []
        if args.chart:
            print_text(render_spend_chart(daily, blocks=can_encode_blocks(sys.stdout),
                                          colour=use_colour(sys.stdout),
                                          title="spend per day (UTC), stacked by model"))
            print_text("")
        if args.format == "json":
            print_text(json.dumps(to_json(report), indent=2))
        elif args.format == "csv":
            print_text(to_csv(report), end="")
        else:
            print_text(format_table(report))
        if args.html:
            by_model = report if args.by == "model" else usage_report(
                ledger, by="model", since=args.since, until=args.until)
            page = render_html(by_model, daily, source=ledger.where)
            try:
                with open(args.html, "w", encoding="utf-8") as f:
                    f.write(page)
            except OSError as err:
                return _fail("cannot write %s: %s" % (args.html, err.strerror or err),
                             EXIT_FAILED)
            print_text("wrote %s (%d bytes)" % (args.html, len(page.encode("utf-8"))),
                       sys.stderr)
        return EXIT_OK
    except LedgerError as err:
        return _fail(str(err), EXIT_FAILED)
    finally:
        ledger.close()
