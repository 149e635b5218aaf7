"""A batch's running totals and its one-line progress report.

``Tally`` counts results, sums their Decimal cost and keeps latency percentiles in bounded
memory. ``ProgressLine`` shows them: on a TTY redrawn in place with ``\\r`` at most
``redraw_interval`` apart; elsewhere (a CI log, a file) as a plain line every
``plain_fraction`` of a known total, else every ``plain_interval`` seconds, so a long run
neither floods the log nor goes silent.
"""
from __future__ import annotations

import math
import sys
import time
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, TextIO

from ._stats import nearest_rank, percentile

__all__ = ["ProgressLine", "Tally", "format_duration", "is_terminal"]

#: A terminal redraws at most ten times a second: faster is flicker, and costs the caller time.
REDRAW_INTERVAL = 0.1
#: Without a TTY, print every tenth of the work...
PLAIN_FRACTION = 0.1
#: ...or, when the total is unknown, every this many seconds.
PLAIN_INTERVAL = 10.0

# Latency histogram (when results are not kept): 2% wide buckets from 10 µs to ~28 hours.
_HIST_BASE_MS = 0.01
_HIST_RATIO = 1.02
_HIST_BUCKETS = 1200
_LOG_BASE = math.log(_HIST_BASE_MS)
_INV_LOG_RATIO = 1.0 / math.log(_HIST_RATIO)
_ZERO = Decimal(0)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h01m``: short enough for a progress line."""
    seconds = max(int(seconds + 0.5), 0)
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


class ProgressLine:
    """Draws ``done/total, ok/failed, rate, ETA, spent`` on ``stream`` (stderr by default).

    Call ``update`` after every finished item (it decides whether to draw) and ``close`` once at
    the end. Used from one thread only: the batch's caller thread.
    """

    def __init__(self, stream: Optional[TextIO] = None, total: Optional[int] = None, *,
                 clock: Callable[[], float] = time.monotonic, tty: Optional[bool] = None,
                 redraw_interval: float = REDRAW_INTERVAL, plain_fraction: float = PLAIN_FRACTION,
                 plain_interval: float = PLAIN_INTERVAL) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.tty = is_terminal(self.stream) if tty is None else tty
        self._clock = clock
        self._started = clock()
        self._redraw_interval = redraw_interval
        self._plain_interval = plain_interval
        self._step = max(int(total * plain_fraction), 1) if total else None
        self._next_plain = self._step
        self._last_draw: Optional[float] = None
        self._width = 0
        self._last: Any = None

    def update(self, done: int, ok: int, failed: int, cost_usd: Optional[Decimal] = None) -> None:
        """Note the counts now; draw if the throttle allows (the first call always draws)."""
        self._last = (done, ok, failed, cost_usd)
        now = self._clock()
        if self.tty:
            if self._last_draw is None or now - self._last_draw >= self._redraw_interval:
                self._draw(now)
            return
        if self._step is not None:
            due = done >= self._next_plain
            if due:
                self._next_plain = (done // self._step + 1) * self._step
        else:
            due = self._last_draw is None or now - self._last_draw >= self._plain_interval
        if due and done != self.total:  # the final line is close()'s
            self._draw(now)

    def close(self) -> None:
        """Draw the final counts and end the line."""
        if self._last is None:
            return
        self._draw(self._clock())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._last = None

    def render(self, now: Optional[float] = None) -> str:
        """The text of the line for the counts last given."""
        done, ok, failed, cost = self._last or (0, 0, 0, None)
        elapsed = (self._clock() if now is None else now) - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total is not None:
            percent = 100.0 * done / self.total if self.total else 100.0
            parts = ["%d/%d" % (done, self.total), "%3.0f%%" % percent]
        else:
            parts = ["%d done" % done]
        parts.append("ok %d" % ok)
        parts.append("failed %d" % failed)
        parts.append("%.1f/s" % rate)
        if self.total is not None and done < self.total and rate > 0:
            parts.append("ETA %s" % format_duration((self.total - done) / rate))
        else:
            parts.append("elapsed %s" % format_duration(elapsed))
        if cost is not None:
            parts.append("$%.6f" % cost)
        return "batch " + "  ".join(parts)

    def _draw(self, now: float) -> None:
        text = self.render(now)
        self._last_draw = now
        if self.tty:
            pad = max(self._width - len(text), 0)
            self._width = len(text)
            self.stream.write("\r" + text + " " * pad)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (False for anything without a working ``isatty``)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Tally:
    """Running counts, exact Decimal cost, errors by type and latency percentiles.

    With ``exact`` every latency is kept; otherwise a fixed-size histogram (2% resolution)
    keeps memory flat however many items pass.
    """

    def __init__(self, exact: bool) -> None:
        self.succeeded = self.failed = self.cancelled = 0
        self.cost = _ZERO
        self.priced = 0  # results that carried a cost: the progress line shows money only then
        self.errors_by_type: Dict[str, int] = {}
        self._exact: Optional[List[float]] = [] if exact else None
        self._hist = None if exact else [0] * _HIST_BUCKETS
        self._low = math.inf
        self._high = 0.0

    def add(self, result: Any) -> None:
        """Count one ``ItemResult``."""
        if result.cancelled:
            self.cancelled += 1
            return
        if result.ok:
            self.succeeded += 1
            cost = getattr(result.value, "cost_usd", None)
            if cost is not None and isinstance(cost, Decimal):
                self.cost += cost
                self.priced += 1
        else:
            self.failed += 1
            name = type(result.error).__name__
            self.errors_by_type[name] = self.errors_by_type.get(name, 0) + 1
        latency = result.latency_ms
        if self._exact is not None:
            self._exact.append(latency)
            return
        if latency < self._low:
            self._low = latency
        if latency > self._high:
            self._high = latency
        bucket = 0
        if latency > _HIST_BASE_MS:
            bucket = int((math.log(latency) - _LOG_BASE) * _INV_LOG_RATIO)
            if bucket >= _HIST_BUCKETS:
                bucket = _HIST_BUCKETS - 1
        self._hist[bucket] += 1

    def percentile(self, q: float) -> Optional[float]:
        """The nearest-rank ``q`` percentile (0-100) of the latencies, or None if none."""
        count = self.succeeded + self.failed
        if count == 0:
            return None
        if self._exact is not None:
            return percentile(sorted(self._exact), q)
        rank = nearest_rank(count, q)
        seen = 0
        for bucket, n in enumerate(self._hist):
            seen += n
            if seen >= rank:
                middle = _HIST_BASE_MS * _HIST_RATIO ** (bucket + 0.5)
                return min(max(middle, self._low), self._high)
        return self._high  # pragma: no cover - the counts always reach rank
