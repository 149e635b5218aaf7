"""``llmroute models``: the model catalog as a table or as JSON.

Shows each model's context window, gateway and list prices per million tokens, speed and
strengths, from the shipped catalog (or ``--catalog FILE`` / ``LLMROUTE_CATALOG`` over it).
Exit codes: 0 printed, 2 an unreadable catalog file.
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence, TextIO

from ._common import EXIT_OK, EXIT_USAGE, print_error

__all__ = ["add_parser", "run", "format_table", "as_json"]


_EXAMPLES = """examples:
  llmroute models
  llmroute models --format json | jq '.[] | select(.context_window > 200000) | .name'
  llmroute models --catalog my-prices.json"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``models``; its ``func`` default is ``run``."""
    parser = subparsers.add_parser(
        "models", help="list the catalog: windows, prices, strengths",
        description="List every model of the catalog with its context window, gateway and\n"
                    "list prices (USD per million input/output tokens), output speed and the\n"
                    "tasks it is strong at.",
        epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="output format (default %(default)s)")
    parser.add_argument("--catalog", metavar="FILE",
                        help="a catalog JSON file over the shipped one")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace, *, stdout: Optional[TextIO] = None,
        stderr: Optional[TextIO] = None) -> int:
    """Run ``models`` for parsed ``args``; return the exit code."""
    from ..catalog import Catalog, default_catalog

    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    try:
        catalog = Catalog.from_file(args.catalog, base=default_catalog()) if args.catalog \
            else default_catalog()
    except (OSError, ValueError) as problem:
        if getattr(args, "debug", False):
            traceback.print_exception(type(problem), problem, problem.__traceback__, file=err)
        print_error("llmroute models", problem, err)
        return EXIT_USAGE
    specs = sorted(catalog.models(), key=lambda spec: spec.name)
    if args.format == "json":
        print(json.dumps(as_json(specs), ensure_ascii=False, indent=2), file=out)
    else:
        print(format_table(specs), file=out)
    return EXIT_OK


def _money(value: Optional[Decimal]) -> Optional[str]:
    return None if value is None else format(value, "f")


def as_json(specs: Sequence[Any]) -> List[Dict[str, Any]]:
    """Each spec as a JSON object; prices are strings, so no digit of money is lost."""
    return [{
        "name": s.name, "aliases": list(s.aliases), "context_window": s.context_window,
        "max_output_tokens": s.max_output_tokens,
        "input_usd_per_mtok": _money(s.input_usd_per_mtok),
        "output_usd_per_mtok": _money(s.output_usd_per_mtok),
        "cached_input_usd_per_mtok": _money(s.cached_input_usd_per_mtok),
        "list_input_usd_per_mtok": _money(s.list_input_usd_per_mtok),
        "list_output_usd_per_mtok": _money(s.list_output_usd_per_mtok),
        "tokens_per_second": s.tokens_per_second, "strengths": list(s.strengths),
        "features": list(s.features),
    } for s in specs]


def _window(tokens: Optional[int]) -> str:
    if tokens is None:
        return "?"
    if tokens % 1_000_000 == 0:
        return "%dM" % (tokens // 1_000_000)
    return "%dK" % (tokens // 1000) if tokens % 1000 == 0 else str(tokens)


def _pair(a: Optional[Decimal], b: Optional[Decimal]) -> str:
    if a is None or b is None:
        return "-"
    return "%s / %s" % (format(a.normalize(), "f"), format(b.normalize(), "f"))


def format_table(specs: Sequence[Any]) -> str:
    """An aligned text table, one model per row."""
    header = ("model", "context", "$/Mtok in / out", "list in / out", "tok/s", "strengths")
    rows = [(s.name, _window(s.context_window),
             _pair(s.input_usd_per_mtok, s.output_usd_per_mtok),
             _pair(s.list_input_usd_per_mtok, s.list_output_usd_per_mtok),
             "%g" % s.tokens_per_second if s.tokens_per_second is not None else "-",
             ", ".join(s.strengths) or "-") for s in specs]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header) - 1)]
    lines = []
    for row in [header] + rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    return "\n".join(lines)
