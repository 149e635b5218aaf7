"""What every benchmark returns (``Row``s) and how they are measured side by side.

``interleave`` runs contenders in turn, round after round, in a rotating order, so machine
noise hits each alike; ``ratio_cell`` turns the per-round figures into the median of the
per-round ratios and their spread (min-max over the rounds). ``format_table`` prints the rows
as one Markdown table (what the README pastes).
"""
from __future__ import annotations

import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Row:
    """One line of the table: ``ours`` against ``peer``, their ``ratio`` over the rounds."""

    bench: str
    measure: str
    ours: str = ""
    peer: str = ""
    ratio: str = ""
    spread: str = ""
    target: str = ""


def skipped(bench: str, measure: str, why: str) -> Row:
    return Row(bench, measure, "skipped", "", "", "", why)


def as_row(item: object) -> Row:
    """A Row from a Row, a dict of its fields or a tuple in field order (for other branches)."""
    if isinstance(item, Row):
        return item
    if isinstance(item, dict):
        return Row(**{k: str(v) for k, v in item.items()})
    return Row(*[str(v) for v in item])  # type: ignore[misc]


def interleave(contenders: Sequence[Tuple[str, Callable[[], float]]], rounds: int,
               max_seconds: float) -> Dict[str, List[float]]:
    """Each round calls every contender once (order rotating); returns name -> per-round values.

    A contender returns its own figure for the round (seconds per call, calls per second...).
    Stops after ``rounds``, or earlier once ``max_seconds`` have passed (at least 3 rounds).
    """
    values: Dict[str, List[float]] = {name: [] for name, _ in contenders}
    started = time.monotonic()
    for number in range(rounds):
        shift = number % len(contenders)
        for name, run in list(contenders[shift:]) + list(contenders[:shift]):
            values[name].append(run())
        if number >= 2 and time.monotonic() - started > max_seconds:
            break
    return values


def ratios(ours: Sequence[float], peer: Sequence[float]) -> List[float]:
    return [a / b for a, b in zip(ours, peer)]


def median_spread(values: Sequence[float]) -> Tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def ratio_text(values: Sequence[float]) -> Tuple[str, str]:
    mid, low, high = median_spread(values)
    return "%.2f×" % mid, "%.2f–%.2f" % (low, high)


def verdict(value: float, op: str, goal: float, unit: str = "×") -> str:
    met = value <= goal if op == "<=" else value >= goal
    return "%s %g%s: %s" % ("≤" if op == "<=" else "≥", goal, unit, "met" if met else "NOT met")


def us(seconds: float) -> str:
    return "%.0f µs" % (seconds * 1e6) if seconds < 1e-3 * 10 else "%.1f ms" % (seconds * 1e3)


def machine_line() -> str:
    import requests
    import urllib3

    uname = platform.uname()
    import os
    return "%s UTC · %s %s, %d CPUs, %s · Python %s · requests %s, urllib3 %s" % (
        time.strftime("%Y-%m-%d %H:%M", time.gmtime()), uname.system, uname.machine,
        os.cpu_count() or 0, _cpu_model(), platform.python_version(), requests.__version__,
        urllib3.__version__)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def format_table(rows: Sequence[Row]) -> str:
    header = ("benchmark", "measure", "llmroute", "peer", "ratio (median)", "spread", "target")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = (row.bench, row.measure, row.ours, row.peer, row.ratio, row.spread, row.target)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def print_rows(rows: Sequence[Row], title: Optional[str] = None) -> None:
    """For a script run alone: its rows as the same table run.py prints."""
    if title:
        sys.stdout.write(title + "\n")
    sys.stdout.write(machine_line() + "\n\n" + format_table(rows) + "\n")
