"""progress: Tally's counts, cost and percentiles (exact and bounded), ProgressLine's redraw
throttle on a terminal and plain lines elsewhere, format_duration, is_terminal."""
from __future__ import annotations

import io
import random
from decimal import Decimal
from types import SimpleNamespace

import pytest

from llmroute import _stats
from llmroute.batching import ItemResult
from llmroute.progress import ProgressLine, Tally, format_duration, is_terminal


class Stream(io.StringIO):
    """A stderr stand-in that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_percentiles_from_the_histogram_are_within_its_two_percent_buckets():
    exact, approx = Tally(exact=True), Tally(exact=False)
    rng = random.Random(3)
    for i in range(5000):
        r = ItemResult(i, True, latency_ms=rng.lognormvariate(4, 0.6))
        exact.add(r)
        approx.add(r)
    for q in (50, 95, 99):
        assert approx.percentile(q) == pytest.approx(exact.percentile(q), rel=0.021)
    assert Tally(exact=False).percentile(50) is None



# -- progress ---------------------------------------------------------------------------------

def test_progress_on_a_terminal_redraws_in_place_at_most_ten_times_a_second(clock):
    stream = Stream(tty=True)
    line = ProgressLine(stream, total=100, clock=clock)
    for done in range(1, 101):
        clock.advance(0.01)
        line.update(done, done - done // 10, done // 10, Decimal("0.5"))
    line.close()
    text = stream.getvalue()
    draws = text.count("\r")
    assert 9 <= draws <= 12  # 1 s of updates at 100/s, redrawn every 0.1 s, plus the last
    assert text.endswith("\n") and text.count("\n") == 1
    assert "100/100" in text.splitlines()[-1].split("\r")[-1]
    assert "ok 90" in text and "failed 10" in text and "$0.500000" in text


def test_progress_without_a_terminal_prints_a_plain_line_every_tenth(clock):
    stream = Stream(tty=False)
    line = ProgressLine(stream, total=100, clock=clock)
    for done in range(1, 101):
        clock.advance(0.01)
        line.update(done, done, 0)
    line.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 10
    assert lines[0].startswith("batch 10/100") and "ETA" in lines[0]
    assert lines[-1].startswith("batch 100/100")


def test_progress_of_an_unknown_total_prints_every_interval(clock):
    stream = Stream(tty=False)
    line = ProgressLine(stream, clock=clock, plain_interval=10.0)
    for done in range(1, 61):
        clock.advance(1.0)
        line.update(done, done, 0)
    line.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 7  # the first, one per 10 s, and the final one
    assert lines[-1].startswith("batch 60 done")


def test_tally_counts_outcomes_costs_and_errors_by_type():
    tally = Tally(exact=True)
    tally.add(ItemResult(0, True, value=SimpleNamespace(cost_usd=Decimal("0.10")), latency_ms=5))
    tally.add(ItemResult(1, True, value=SimpleNamespace(cost_usd=None), latency_ms=7))
    tally.add(ItemResult(2, False, error=KeyError("x"), latency_ms=9))
    tally.add(ItemResult(3, False, cancelled=True))
    assert (tally.succeeded, tally.failed, tally.cancelled) == (2, 1, 1)
    assert tally.cost == Decimal("0.10") and tally.priced == 1
    assert tally.errors_by_type == {"KeyError": 1}
    assert (tally.percentile(0), tally.percentile(50), tally.percentile(100)) == (5, 7, 9)


def test_a_histogram_percentile_stays_within_the_values_seen():
    tally = Tally(exact=False)
    for latency in (0.0, 0.001, 3.0, 1e12):  # below the first bucket and past the last
        tally.add(ItemResult(0, True, latency_ms=latency))
    # Everything at or under 10 µs shares the first bucket; past ~28 h, the last one.
    assert 0.0 <= tally.percentile(0) <= 0.0102
    assert 1e8 <= tally.percentile(100) <= 1e12
    assert tally.percentile(75) == pytest.approx(3.0, rel=0.021)


@pytest.mark.parametrize("values, pct, expected", [
    ([], 50, None), ([4.0], 99, 4.0), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 75, 3),
    ([1, 2, 3, 4], 100, 4), ([1, 2, 3, 4], 0, 1), (list(range(1, 101)), 95, 95),
])
def test_nearest_rank_percentiles(values, pct, expected):
    assert _stats.percentile(values, pct) == expected


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (41.6, "42s"), (59.4, "59s"), (60, "1m00s"), (185, "3m05s"), (3600, "1h00m"),
    (7290, "2h01m"), (-5, "0s"),
])
def test_format_duration_is_short(seconds, text):
    assert format_duration(seconds) == text


def test_is_terminal_is_false_for_streams_without_a_working_isatty():
    class Closed(io.StringIO):
        def isatty(self):
            raise ValueError("I/O operation on closed file")

    assert is_terminal(Stream(tty=True)) and not is_terminal(Stream(tty=False))
    assert not is_terminal(Closed()) and not is_terminal(object())


def test_close_without_any_update_draws_nothing(clock):
    stream = Stream(tty=True)
    ProgressLine(stream, total=5, clock=clock).close()
    assert stream.getvalue() == ""


def test_a_shorter_redraw_pads_over_the_longer_line_before_it(clock):
    stream = Stream(tty=True)
    line = ProgressLine(stream, clock=clock)
    line.update(1, 1, 0, Decimal("123.456789"))
    clock.advance(1)
    line.update(2, 2, 0)  # no cost now: the line is shorter
    first, second = stream.getvalue().split("\r")[1:]
    assert len(second) >= len(first)
