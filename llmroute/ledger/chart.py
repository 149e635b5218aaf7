"""Spend per day as a stacked bar chart for the terminal: one bar per day, one glyph per model.

Fits 80 columns: long model names are cut, their control characters shown escaped. Block
characters when the output can encode them, plain ASCII otherwise; ANSI colour only on a
terminal and never when ``NO_COLOR`` is set (https://no-color.org).
"""
from __future__ import annotations

import os
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from .names import shown_name

__all__ = ["render_spend_chart", "use_colour", "can_encode_blocks", "MAX_SERIES"]

_BLOCKS = ("█", "▓", "▒", "░", "▞", "▚", "▪", "▫")
_ASCII = ("#", "=", "+", "*", "o", "x", ":", ".")
_COLOURS = ("31", "32", "33", "34", "35", "36", "91", "92")
#: Models shown in their own series; the rest are summed as "other".
MAX_SERIES = len(_BLOCKS) - 1
_WIDTH = 80
_DATE = 10


def can_encode_blocks(stream: TextIO) -> bool:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "".join(_BLOCKS).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _series(rows: Sequence[Tuple[str, str, Decimal]]) -> List[str]:
    """Models by total spend, biggest first; past MAX_SERIES the rest become "other"."""
    totals: Dict[str, Decimal] = {}
    for _, model, cost in rows:
        totals[model] = totals.get(model, Decimal(0)) + cost
    names = sorted(totals, key=lambda m: (-totals[m], m))
    if len(names) > MAX_SERIES + 1:
        names = names[:MAX_SERIES] + ["other"]
    return names


def render_spend_chart(rows: Sequence[Tuple[str, str, Decimal]], *, blocks: bool = True,
                       colour: bool = False, width: int = _WIDTH,
                       title: Optional[str] = None) -> str:
    """The chart of ``daily_spend`` rows (day, model, cost) as text lines."""
    if not rows:
        return "no spend in this period"
    names = _series(rows)
    index = {name: i for i, name in enumerate(names)}
    other = index.get("other")
    days: Dict[str, List[Decimal]] = {}
    for day, model, cost in rows:
        values = days.setdefault(day, [Decimal(0)] * len(names))
        values[index.get(model, other)] += cost
    glyphs = _BLOCKS if blocks else _ASCII
    totals = {day: sum(values, Decimal(0)) for day, values in days.items()}
    amounts = {day: "$%s" % "{:,.2f}".format(total) for day, total in totals.items()}
    label = max(len(a) for a in amounts.values())
    bar_width = max(10, width - _DATE - label - 3)
    peak = max(totals.values()) or Decimal(1)

    def paint(text: str, series: int) -> str:
        return "\x1b[%sm%s\x1b[0m" % (_COLOURS[series], text) if colour and text else text

    lines = [title] if title else []
    for day in sorted(days):
        cells, used, running = [], 0, Decimal(0)
        for series, value in enumerate(days[day]):
            running += value
            # Columns from cumulative sums, so rounding never drifts along the bar.
            end = int((running / peak * bar_width).to_integral_value())
            cells.append(paint(glyphs[series] * (end - used), series))
            used = end
        bar = "".join(cells) + " " * (bar_width - used)
        lines.append("%s %s %s" % (day, bar, amounts[day].rjust(label)))
    # A legend item is the glyph, a space and the name: names are cut so each item fits a line.
    legend = ["%s %s" % (paint(glyphs[i], i), shown_name(name, width - 2))
              for i, name in enumerate(names)]
    lines.append("")
    line = ""
    for item in legend:  # wrap the legend at the width; colour codes take no columns
        if line and _visible(line) + 3 + _visible(item) > width:
            lines.append(line)
            line = ""
        line = item if not line else line + "   " + item
    lines.append(line)
    lines.append("total $%s over %d day(s)" % ("{:,.2f}".format(sum(totals.values())), len(days)))
    return "\n".join(lines)


def _visible(text: str) -> int:
    """Printed width of ``text`` without its ANSI colour codes."""
    count, skipping = 0, False
    for char in text:
        if char == "\x1b":
            skipping = True
        elif skipping and char == "m":
            skipping = False
        elif not skipping:
            count += 1
    return count
