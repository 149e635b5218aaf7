"""Spend reports over a ledger: totals per model, task, day or tag, as a table, CSV or JSON.

Sums (requests, errors, tokens, money) are computed by the database, money as exact integers;
latency percentiles (nearest rank, over every call of the group) from one pass over the
latencies. Dates are ISO 8601 UTC; ``since`` is inclusive and ``until`` exclusive.
"""
from __future__ import annotations

import csv
import io
import math
from array import array
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..costs import units_to_usd
from .core import Ledger, When, join_units, split_units_sql, to_us
from .names import shown_name
from .rows import STATUS_OK
from .schema import TABLE

__all__ = ["GROUPINGS", "GroupTotals", "UsageReport", "usage_report", "daily_spend",
           "format_table", "to_csv", "to_json", "day_of"]

_US_PER_DAY = 86_400_000_000
_EPOCH = date(1970, 1, 1)

#: ``--by`` choices and the SQL expression of each group's key.
GROUPINGS: Mapping[str, str] = {
    "model": "model",
    "task": "COALESCE(task, '')",
    "day": "ts_us / %d" % _US_PER_DAY,
    "tag": "COALESCE(tag, '')",
}
PERCENTILES = (50, 95, 99)


def day_of(day_number: Any) -> str:
    """ISO date of a day number since the epoch (the ``day`` grouping's key)."""
    return (_EPOCH + timedelta(days=int(day_number))).isoformat()


@dataclass(frozen=True)
class GroupTotals:
    """What one group (a model, task, day or tag) did in the period."""

    key: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: Decimal
    unpriced: int
    p50_ms: Optional[float]
    p95_ms: Optional[float]
    p99_ms: Optional[float]

    def as_dict(self) -> Dict[str, Any]:
        return {"key": self.key, "requests": self.requests, "errors": self.errors,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_tokens": self.cached_tokens, "cost_usd": str(self.cost_usd),
                "unpriced_requests": self.unpriced, "p50_ms": _round(self.p50_ms),
                "p95_ms": _round(self.p95_ms), "p99_ms": _round(self.p99_ms)}


@dataclass(frozen=True)
class UsageReport:
    """Totals per group, biggest spend first, and the grand total."""

    by: str
    since: Optional[str]
    until: Optional[str]
    groups: Tuple[GroupTotals, ...]
    total: GroupTotals


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 1)


def _percentile(ordered: Sequence[float], p: int) -> Optional[float]:
    """Nearest-rank percentile of an ascending sequence (None when empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _iso(when: When) -> Optional[str]:
    """The moment ``when`` names, in UTC: ``2026-11-19`` for a midnight, else ``…T19:00:00Z``."""
    micros = to_us(when)
    if micros is None:
        return None
    if micros % _US_PER_DAY == 0:
        return day_of(micros // _US_PER_DAY)
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)
    return moment.isoformat().replace("+00:00", "Z")


def usage_report(ledger: Ledger, *, by: str = "model", since: When = None,
                 until: When = None) -> UsageReport:
    """Totals per ``by`` group over [since, until). Raises ``ValueError`` for a bad ``by`` or
    period, ``LedgerError`` when the ledger cannot be read."""
    if by not in GROUPINGS:
        raise ValueError("by must be one of %s, got %r" % (", ".join(GROUPINGS), by))
    key_sql = GROUPINGS[by]
    where, params = ledger.time_filter(since, until)
    # Over the whole table one sequential scan beats SQLite's walk of the model index (which
    # visits the rows in random order); with a period, the time index narrows the scan.
    source = TABLE + (" NOT INDEXED" if ledger.dialect == "sqlite" and not where else "")
    sums = ledger.fetch(
        "SELECT %s AS k, COUNT(*), SUM(CASE WHEN status != '%s' THEN 1 ELSE 0 END), "
        "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), %s, "
        "SUM(CASE WHEN cost_units IS NULL AND status = '%s' THEN 1 ELSE 0 END) "
        "FROM %s%s GROUP BY k" % (key_sql, STATUS_OK, split_units_sql("cost_units"), STATUS_OK,
                                   source, where), params)
    latencies: Dict[Any, array] = {}
    for key, latency in ledger.iterate("SELECT %s, latency_ms FROM %s%s" % (key_sql, TABLE, where),
                                       params):
        bucket = latencies.get(key)
        if bucket is None:
            bucket = latencies[key] = array("d")
        bucket.append(latency)
    everything = array("d")
    groups = []
    for key, requests, errors, p_in, p_out, cached, high, low, unpriced in sums:
        ordered = sorted(latencies.get(key, ()))
        everything.extend(ordered)
        groups.append(GroupTotals(
            day_of(key) if by == "day" else str(key), int(requests), int(errors or 0),
            int(p_in or 0), int(p_out or 0), int(cached or 0),
            units_to_usd(join_units(high, low)), int(unpriced or 0),
            *(_percentile(ordered, p) for p in PERCENTILES)))
    if by == "day":
        groups.sort(key=lambda g: g.key)
    else:
        groups.sort(key=lambda g: (-g.cost_usd, -g.requests, g.key))
    ordered_all = sorted(everything)
    total = GroupTotals("total", sum(g.requests for g in groups), sum(g.errors for g in groups),
                        sum(g.prompt_tokens for g in groups),
                        sum(g.completion_tokens for g in groups),
                        sum(g.cached_tokens for g in groups),
                        units_to_usd(sum(join_units(r[6], r[7]) for r in sums)),
                        sum(g.unpriced for g in groups),
                        *(_percentile(ordered_all, p) for p in PERCENTILES))
    return UsageReport(by, _iso(since), _iso(until), tuple(groups), total)


def daily_spend(ledger: Ledger, *, since: When = None, until: When = None
                ) -> List[Tuple[str, str, Decimal]]:
    """(ISO day, model, exact cost) for every day and model with rows, ordered by day."""
    where, params = ledger.time_filter(since, until)
    rows = ledger.fetch("SELECT ts_us / %d AS d, model, %s FROM %s%s GROUP BY d, model "
                        "ORDER BY d, model" % (_US_PER_DAY, split_units_sql("cost_units"), TABLE,
                                               where), params)
    return [(day_of(d), model, units_to_usd(join_units(high, low))) for d, model, high, low in rows]


# Output ----------------------------------------------------------------------------------------
_HEADERS = ("requests", "errors", "tokens in", "tokens out", "cost USD", "p50 ms", "p95 ms",
            "p99 ms")
_CENT_MICROS = Decimal("0.000001")


def _ms(value: Optional[float]) -> str:
    return "-" if value is None else "%.0f" % value


def _cells(group: GroupTotals) -> List[str]:
    cost = "{:,}".format(group.cost_usd.quantize(_CENT_MICROS))
    return [shown_name(group.key) or "(none)", "{:,}".format(group.requests),
            "{:,}".format(group.errors), "{:,}".format(group.prompt_tokens),
            "{:,}".format(group.completion_tokens), cost,
            _ms(group.p50_ms), _ms(group.p95_ms), _ms(group.p99_ms)]


def format_table(report: UsageReport) -> str:
    """An aligned plain-text table (cost shown to the micro-dollar, names through
    ``shown_name``; CSV and JSON are exact)."""
    rows = [[report.by] + list(_HEADERS)] + [_cells(g) for g in report.groups]
    rows.append(_cells(report.total))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def line(cells: List[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])]
                         + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(rows[0]), rule] + [line(r) for r in rows[1:-1]] + [rule, line(rows[-1])]
    period = "period: %s to %s (UTC, until exclusive)" % (report.since or "start",
                                                          report.until or "now")
    return "\n".join([period] + out)


_FIELDS = ("key", "requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens",
           "cost_usd", "unpriced_requests", "p50_ms", "p95_ms", "p99_ms")


def to_csv(report: UsageReport) -> str:
    """CSV with a header; the first column is named after the grouping; exact costs."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow((report.by,) + _FIELDS[1:])
    for group in report.groups + (report.total,):
        values = group.as_dict()
        writer.writerow(["" if values[f] is None else values[f] for f in _FIELDS])
    return buffer.getvalue()


def to_json(report: UsageReport) -> Dict[str, Any]:
    """A JSON-ready dict: period, grouping, groups and total; costs as exact decimal strings."""
    return {"by": report.by, "since": report.since, "until": report.until,
            "groups": [g.as_dict() for g in report.groups], "total": report.total.as_dict()}
