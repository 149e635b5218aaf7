"""``llmroute cost``: a workload's cost at the catalog and list prices, per month and per year.

Exit codes: 0 done, 2 bad usage (a token count that is not a whole number, an unknown model,
missing or conflicting options, a file that is not a ledger).
"""
from __future__ import annotations

import argparse
import json
from decimal import Decimal
from typing import Any, Dict, List, Optional, Sequence

from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, print_error

__all__ = ["add_parser", "run"]

_CENT = Decimal("0.01")


def _tokens() -> Any:
    def parse(text: str) -> int:
        from ..pricing_calc import parse_token_count
        try:
            return parse_token_count(text, "value")
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``cost`` subcommand; its ``func`` default is ``run``."""
    parser = subparsers.add_parser(
        "cost", help="what a workload costs at the catalog price vs the list price",
        description="The cost of a token workload at the catalog (gateway) price and at the "
                    "provider's list price, with the saving per month and per year. Token "
                    "counts are per --per period and accept 500M, 1.5B, 20k or 250000.",
        epilog="examples:\n"
               "  llmroute cost --model claude-opus-4.6 --input-tokens 500M --output-tokens 1B\n"
               "  llmroute cost --compare --input-tokens 20M --output-tokens 5M\n"
               "  llmroute cost --model deepseek-v3.2 --from-ledger usage.db --since 2026-11-01")
    parser.add_argument("--model", help="a catalog model (see --compare for all of them)")
    parser.add_argument("--input-tokens", type=_tokens(), metavar="N",
                        help="prompt tokens per period")
    parser.add_argument("--output-tokens", type=_tokens(), metavar="N",
                        help="completion tokens per period")
    parser.add_argument("--cached-tokens", type=_tokens(), default=0,
                        metavar="N", help="of the input tokens, how many are cache hits")
    parser.add_argument("--per", choices=("month", "year"), default="month",
                        help="the period the token counts cover (default: month)")
    parser.add_argument("--compare", action="store_true",
                        help="list every catalog model for the same workload, cheapest first")
    parser.add_argument("--from-ledger", metavar="FILE",
                        help="take the token mix from a ledger period instead of typed counts")
    parser.add_argument("--since", metavar="DATE", help="with --from-ledger: first day (UTC)")
    parser.add_argument("--until", metavar="DATE",
                        help="with --from-ledger: first day excluded (UTC)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)
    return parser


def _fail(message: object, code: int = EXIT_USAGE) -> int:
    print_error("llmroute cost", message)
    return code


def _usd(amount: Optional[Decimal]) -> str:
    if amount is None:
        return "-"
    if amount and abs(amount) < 1:
        return "${:,.6f}".format(amount)
    return "${:,.2f}".format(amount.quantize(_CENT))


def _rate(rate: Optional[Decimal]) -> str:
    return "-" if rate is None else "%.1f%%" % (rate * 100)


def _per_month(amount: Optional[Decimal], months: int) -> Optional[Decimal]:
    return None if amount is None else amount / months


def run(args: argparse.Namespace) -> int:
    from ..pricing_calc import MONTHS_PER, compare_costs, estimate_cost

    if args.from_ledger:
        if args.input_tokens is not None or args.output_tokens is not None:
            return _fail("give either --from-ledger or --input-tokens/--output-tokens, not both")
        mix = _ledger_mix(args)
        if isinstance(mix, int):
            return mix
        prompt, completion, cached, period, spent = mix
        months = 1
    else:
        if args.since is not None or args.until is not None:
            return _fail("--since and --until go with --from-ledger")
        if args.input_tokens is None or args.output_tokens is None:
            return _fail("give --input-tokens and --output-tokens (or --from-ledger FILE)")
        prompt, completion, cached = args.input_tokens, args.output_tokens, args.cached_tokens
        period, spent, months = "per %s" % args.per, None, MONTHS_PER[args.per]
    if not args.compare and not args.model:
        return _fail("give --model NAME, or --compare for every catalog model")
    try:
        chosen = estimate_cost(args.model, prompt, completion, cached) if args.model else None
        everyone = compare_costs(prompt, completion, cached) if args.compare else ()
    except ValueError as err:
        return _fail(str(err))
    workload = "%s input (%s cached) + %s output tokens %s" % (
        "{:,}".format(prompt), "{:,}".format(cached), "{:,}".format(completion), period)
    if args.json:
        print(json.dumps(_as_json(workload, chosen, everyone, months, spent, args.from_ledger),
                         indent=2))
        return EXIT_OK
    lines = [workload]
    if spent is not None:
        lines.append("recorded spend in the ledger for this period: %s" % _usd(spent))
    if chosen is not None:
        lines += _single(chosen, months, per_ledger=bool(args.from_ledger))
    if everyone:
        lines += [""] + _table(everyone, chosen, months,
                               "period" if args.from_ledger else "month")
    print("\n".join(lines))
    return EXIT_OK


def _single(est: Any, months: int, per_ledger: bool) -> List[str]:
    rows = [("catalog price", est.cost_usd), ("list price", est.list_cost_usd),
            ("saving", est.saving_usd)]
    if per_ledger:
        out = ["", "%s, for the ledger's period:" % est.model]
        out += ["%-16s %16s" % (name, _usd(value)) for name, value in rows]
    else:
        out = ["", "%-16s %16s %18s" % (est.model, "per month", "per year")]
        for name, value in rows:
            month = _per_month(value, months)
            year = None if month is None else month * 12
            out.append("%-16s %16s %18s" % (name, _usd(month), _usd(year)))
    out.append("%-16s %16s" % ("saving rate", _rate(est.saving_rate)))
    if est.list_cost_usd is None:
        out.append("(the catalog states no list price for %s)" % est.model)
    return out


def _table(estimates: Sequence[Any], chosen: Any, months: int, unit: str) -> List[str]:
    head = ("model", "catalog/" + unit, "list/" + unit, "saving/" + unit, "saving rate",
            "vs %s" % chosen.model if chosen is not None else "")
    rows = [head]
    for est in estimates:
        ratio = ""
        if chosen is not None and chosen.cost_usd and est.cost_usd is not None:
            ratio = "%.2fx" % (est.cost_usd / chosen.cost_usd)
        rows.append((est.model, _usd(_per_month(est.cost_usd, months)),
                     _usd(_per_month(est.list_cost_usd, months)),
                     _usd(_per_month(est.saving_usd, months)), _rate(est.saving_rate), ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
                      ).rstrip() for r in rows]


def _as_json(workload: str, chosen: Any, everyone: Sequence[Any], months: int,
             spent: Optional[Decimal], ledger: Optional[str]) -> Dict[str, Any]:
    def one(est: Any) -> Dict[str, Any]:
        month = {k: _per_month(v, months) for k, v in (
            ("cost_usd", est.cost_usd), ("list_cost_usd", est.list_cost_usd),
            ("saving_usd", est.saving_usd))}
        return {"model": est.model,
                **{k + "_per_month": None if v is None else str(v) for k, v in month.items()},
                **({} if ledger else {k + "_per_year": None if v is None else str(v * 12)
                                      for k, v in month.items()}),
                "saving_rate": None if est.saving_rate is None else str(est.saving_rate)}
    out: Dict[str, Any] = {"workload": workload}
    if spent is not None:
        out["recorded_spend_usd"] = str(spent)
    if chosen is not None:
        out["model"] = one(chosen)
    if everyone:
        out["compare"] = [one(e) for e in everyone]
    return out


def _ledger_mix(args: argparse.Namespace) -> Any:
    """(prompt, completion, cached, period text, recorded spend) of a ledger period, or an
    exit code."""
    from ..ledger import Ledger, LedgerError
    try:
        Ledger.time_filter(args.since, args.until)
        ledger = Ledger(args.from_ledger, create=False)
    except (LedgerError, ValueError) as err:
        return _fail(str(err))
    try:
        totals = ledger.token_totals(args.since, args.until)
        spent = ledger.spent_usd(args.since, args.until)
    except LedgerError as err:
        return _fail(str(err), EXIT_FAILED)
    finally:
        ledger.close()
    period = "from %s to %s in %s" % (args.since or "the first row", args.until or "now",
                                      args.from_ledger)
    return (totals["prompt_tokens"], totals["completion_tokens"], totals["cached_tokens"],
            period, spent)
