"""batch(): input order, one result per item, caught errors, fail_fast, priority, bounded
in-flight work, on_result in the caller's thread, Ctrl-C, the progress line, bad arguments."""
from __future__ import annotations

import functools
import io
import queue
import random
import threading
import sys
import tracemalloc
from decimal import Decimal
from types import SimpleNamespace

import pytest

from llmroute import Client
from llmroute.batching import BatchInterrupted, BatchResult, ItemResult, batch
from llmroute.limits import RateLimiter
from llmroute.progress import ProgressLine, Tally

import llmroute.batching as batch_module
from llmroute.router import Router

WAIT = 5.0  # seconds any event wait may take before the test fails instead of hanging


class Stream(io.StringIO):
    """A stderr stand-in that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


# -- order and results ------------------------------------------------------------------------

def test_results_come_back_in_input_order_when_items_finish_in_random_order():
    n, workers = 60, 4
    gates = [threading.Event() for _ in range(n)]
    started: "queue.Queue[int]" = queue.Queue()
    finished = []

    def fn(i):
        started.put(i)
        assert gates[i].wait(WAIT)
        return i * 10

    def release_in_random_order():
        rng = random.Random(7)
        waiting = []
        for released in range(n):  # bounded: one release per item
            while len(waiting) < min(workers, n - released):
                waiting.append(started.get(timeout=WAIT))
            pick = waiting.pop(rng.randrange(len(waiting)))
            finished.append(pick)
            gates[pick].set()

    controller = threading.Thread(target=release_in_random_order)
    controller.start()
    result = batch(fn, range(n), max_workers=workers)
    controller.join(WAIT)
    assert finished != sorted(finished)  # they really did finish out of order
    assert [r.index for r in result.results] == list(range(n))
    assert [r.value for r in result.results] == [i * 10 for i in range(n)]
    assert [r.item for r in result.results] == list(range(n))
    assert result.succeeded == n and result.failed == 0 and result.cancelled == 0


def test_each_error_is_caught_with_its_traceback_and_no_item_is_dropped():
    def fn(i):
        if i % 3 == 0:
            raise KeyError("item %d" % i)
        if i == 5:
            raise ValueError("five")
        return i

    result = batch(fn, iter(range(10)), max_workers=3)
    assert len(result.results) == 10
    assert [r.ok for r in result.results] == [i % 3 != 0 and i != 5 for i in range(10)]
    failed = [r for r in result.results if not r.ok]
    assert {type(r.error) for r in failed} == {KeyError, ValueError}
    for r in failed:
        assert r.error.__traceback__ is not None
        assert "in fn" in r.traceback and type(r.error).__name__ in r.traceback
    assert result.errors_by_type == {"KeyError": 4, "ValueError": 1}
    assert result.succeeded == 5 and result.failed == 5


def test_a_base_exception_from_fn_is_the_items_error_not_the_batches():
    def fn(i):
        if i == 1:
            raise SystemExit(3)
        return i

    result = batch(fn, [0, 1, 2], max_workers=2)
    assert [r.ok for r in result.results] == [True, False, True]
    assert isinstance(result.results[1].error, SystemExit)


def test_totals_sum_decimal_costs_and_report_percentiles():
    values = [SimpleNamespace(cost_usd=Decimal("0.10")), SimpleNamespace(cost_usd=None),
              SimpleNamespace(cost_usd=Decimal("0.05")), "no cost attribute"]
    result = batch(lambda v: v, values, max_workers=2)
    assert result.total_cost_usd == Decimal("0.15")
    assert result.p50 is not None and result.p50 <= result.p95 <= result.p99
    assert result.throughput > 0 and result.wall_seconds > 0
    text = str(result)
    assert "4 items" in text and "4 ok" in text and "$0.15" in text and len(text.splitlines()) <= 5


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


def test_empty_input_gives_an_empty_result():
    result = batch(lambda x: x, [], max_workers=2)
    assert isinstance(result, BatchResult)
    assert result.results == [] and result.succeeded == 0 and result.p50 is None


# -- fail_fast --------------------------------------------------------------------------------

def test_fail_fast_cancels_the_items_not_started_and_reports_them_cancelled():
    calls = []

    def fn(i):
        calls.append(i)
        if i == 2:
            raise RuntimeError("stop here")
        return i

    result = batch(fn, list(range(10)), max_workers=1, fail_fast=True)
    assert len(result.results) == 10  # a sequence: every item has its result
    assert [r.ok for r in result.results[:3]] == [True, True, False]
    # Item 3 was already queued on the single worker: it either ran or was cancelled.
    assert set(calls) <= {0, 1, 2, 3}
    for r in result.results[4:]:
        assert r.cancelled and not r.ok and r.error is None
    assert result.cancelled == 10 - len(calls)
    assert result.failed == 1


def test_fail_fast_reads_an_iterator_no_further():
    pulled = []
    failure_seen = threading.Event()

    def items():
        for i in range(1000):
            pulled.append(i)
            yield i

    def fn(i):
        if i == 0:
            raise RuntimeError("first fails")
        assert failure_seen.wait(WAIT)  # the others finish only once the failure is in
        return i

    def on_result(r):
        if not r.ok and not r.cancelled:
            failure_seen.set()

    result = batch(fn, items(), max_workers=2, fail_fast=True, on_result=on_result)
    assert len(pulled) == 2 * 2  # the first fill of in-flight futures, nothing after
    assert result.failed == 1
    assert result.succeeded + result.cancelled == 3


# -- priority ---------------------------------------------------------------------------------

def test_priority_submits_a_sequence_highest_first_then_shorter_prompts():
    items = [{"id": "a", "p": 1, "prompt": "a much longer prompt than the other ones here"},
             {"id": "b", "p": 5, "prompt": "long prompt with several words in it"},
             {"id": "c", "p": 5, "prompt": "short"},
             {"id": "d", "p": 0, "prompt": "x"},
             {"id": "e", "p": 1, "prompt": "tiny"}]
    called = []
    result = batch(lambda it: called.append(it["id"]), items, max_workers=1,
                   priority=lambda it: it["p"])
    assert called == ["c", "b", "e", "a", "d"]
    assert [r.item["id"] for r in result.results] == ["a", "b", "c", "d", "e"]


def test_priority_ranks_an_iterator_within_its_look_ahead_window(monkeypatch):
    monkeypatch.setattr(batch_module, "LOOKAHEAD_FACTOR", 4)
    called = []
    result = batch(called.append, iter(range(10)), max_workers=1, priority=lambda i: i)
    # Window of 4: 0-3 are read, 3 goes first; each new item then outranks the rest.
    assert called == [3, 4, 5, 6, 7, 8, 9, 2, 1, 0]
    assert [r.index for r in result.results] == list(range(10))


def test_strings_and_message_lists_tie_break_by_estimated_length():
    called = []
    items = ["a rather long prompt of many words", "short",
             [{"role": "user", "content": "mid length text"}]]
    batch(lambda it: called.append(it), items, max_workers=1, priority=lambda it: 0)
    assert called == ["short", items[0], items[2]]  # ~2, ~7 and ~11 tokens (message framing)


# -- bounded work and threads -----------------------------------------------------------------

def test_in_flight_futures_and_running_calls_stay_bounded():
    workers = 4
    lock = threading.Lock()
    state = {"running": 0, "most_running": 0, "pulled": 0, "delivered": 0, "most_ahead": 0}

    def items():
        for i in range(400):
            state["pulled"] += 1
            state["most_ahead"] = max(state["most_ahead"], state["pulled"] - state["delivered"])
            yield i

    def fn(i):
        with lock:
            state["running"] += 1
            state["most_running"] = max(state["most_running"], state["running"])
        with lock:
            state["running"] -= 1
        return i

    def on_result(r):
        state["delivered"] += 1

    result = batch(fn, items(), max_workers=workers, on_result=on_result, keep_results=False)
    assert result.succeeded == 400 and result.results == []
    assert state["most_running"] <= workers
    assert state["most_ahead"] <= 2 * workers + 1  # the futures, plus the item being read


def test_on_result_runs_in_the_callers_thread_one_at_a_time_in_completion_order():
    caller = threading.get_ident()
    inside = []
    seen = []

    def on_result(r):
        inside.append(1)
        assert len(inside) == 1
        assert threading.get_ident() == caller
        seen.append(r.index)
        inside.pop()

    batch(lambda i: i, range(200), max_workers=8, on_result=on_result)
    assert sorted(seen) == list(range(200))


def test_an_on_result_error_propagates_after_the_pool_stops():
    calls = []

    def on_result(r):
        if r.index == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        batch(lambda i: calls.append(i), range(1000), max_workers=2, on_result=on_result)
    count = len(calls)
    assert count < 1000
    threading.Event().wait(0.05)  # nothing keeps running in the background
    assert len(calls) == count


def test_memory_stays_flat_over_a_long_generator_without_kept_results():
    def peak(n):
        tracemalloc.start()
        try:
            result = batch(lambda x: x, (i for i in range(n)), max_workers=4,
                           keep_results=False)
            return tracemalloc.get_traced_memory()[1], result
        finally:
            tracemalloc.stop()

    small, _ = peak(1_000)
    large, result = peak(100_000)
    assert result.succeeded == 100_000 and result.results == [] and result.p99 is not None
    assert large - small < 5 * 1024 * 1024, (small, large)


# -- Ctrl-C -----------------------------------------------------------------------------------

def test_ctrl_c_in_on_result_raises_batch_interrupted_with_everything_finished():
    ran, delivered = [], []

    def fn(i):
        ran.append(i)
        return i

    def on_result(r):
        delivered.append(r)
        if len(delivered) == 5:
            raise KeyboardInterrupt

    with pytest.raises(BatchInterrupted) as caught:
        batch(fn, range(1000), max_workers=2, on_result=on_result)
    interrupted = caught.value
    assert isinstance(interrupted, KeyboardInterrupt)
    partial = interrupted.result
    finished = [r for r in delivered if not r.cancelled]
    assert sorted(r.index for r in finished) == sorted(ran)  # every finished item delivered
    assert len({r.index for r in delivered}) == len(delivered)  # none twice
    assert partial.succeeded == len(ran) and partial.cancelled == len(delivered) - len(ran)
    assert [r.index for r in partial.results] == sorted(r.index for r in delivered)
    assert interrupted.unfinished == 0 and len(ran) < 1000


def test_ctrl_c_during_the_wait_cancels_queued_items_and_waits_for_running_ones(monkeypatch):
    gate = threading.Event()
    real_wait = batch_module._wait_done
    calls = {"n": 0}

    def wait(done, timeout=None):
        calls["n"] += 1
        if calls["n"] == 3:
            gate.set()  # let the running items finish during the grace period
            raise KeyboardInterrupt
        return real_wait(done, timeout)

    started = []

    def fn(i):
        started.append(i)
        if i >= 2:
            assert gate.wait(WAIT)
        return i

    monkeypatch.setattr(batch_module, "_wait_done", wait)
    with pytest.raises(BatchInterrupted) as caught:
        batch(fn, range(50), max_workers=2)
    result = caught.value.result
    ok = [r.index for r in result.results if r.ok]
    # 2 delivered, then 4 in flight: what had started finishes in the grace period and is
    # delivered; what had not is cancelled.
    assert {0, 1} <= set(ok) and sorted(started) == ok
    assert result.succeeded + result.cancelled == len(result.results) == 6
    assert caught.value.unfinished == 0


def test_items_still_running_after_the_grace_period_are_counted_unfinished(monkeypatch):
    gate = threading.Event()

    def wait(done, timeout=None):
        if timeout is None:
            raise KeyboardInterrupt
        return batch_module.queue.SimpleQueue.get(done, timeout=timeout)

    monkeypatch.setattr(batch_module, "_wait_done", wait)
    try:
        with pytest.raises(BatchInterrupted) as caught:
            batch(lambda i: gate.wait(WAIT), range(10), max_workers=2, interrupt_grace=0)
    finally:
        gate.set()
    assert caught.value.unfinished == 2
    assert caught.value.result.cancelled == 2
    assert "2 still running" in str(caught.value)


# -- limiter and pools ------------------------------------------------------------------------

def test_limiter_caps_concurrency_and_is_settled_with_the_reported_usage(clock):
    limiter = RateLimiter(max_concurrent=2, tpm=100_000, clock=clock, sleep=clock.sleep)
    pairs = threading.Barrier(2, timeout=WAIT)  # only passable by two items in fn at once
    lock = threading.Lock()
    state = {"running": 0, "most": 0}

    def fn(item):
        with lock:
            state["running"] += 1
            state["most"] = max(state["most"], state["running"])
        pairs.wait()
        with lock:
            state["running"] -= 1
        return SimpleNamespace(usage=SimpleNamespace(total_tokens=10), cost_usd=None)

    result = batch(fn, [{"prompt": "hello there"}] * 20, max_workers=6, limiter=limiter)
    assert result.succeeded == 20, result.errors_by_type
    assert state["most"] == 2 and limiter.in_flight == 0
    assert limiter.tokens_bucket.level == pytest.approx(100_000 - 20 * 10)


def test_a_client_bound_method_or_partial_gets_a_pool_as_large_as_the_workers():
    client = Client("http://127.0.0.1:9/v1", "sk-test-key", pool_maxsize=4)
    try:
        batch(client.chat, [], max_workers=12)
        assert client.pool_maxsize == 12
        batch(functools.partial(client.chat, "gpt-5.4"), [], max_workers=20)
        assert client.pool_maxsize == 20
        batch(Router(client).complete, [], max_workers=24)  # through router.client
        assert client.pool_maxsize == 24
    finally:
        client.close()


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


def test_batch_draws_progress_on_the_stream_it_is_given():
    stream = Stream(tty=False)
    batch(lambda i: i, range(50), max_workers=2, progress=stream)
    assert stream.getvalue().splitlines()[-1].startswith("batch 50/50")


# -- bad arguments ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"max_workers": 0}, "max_workers"),
    ({"max_workers": -3}, "max_workers"),
    ({"max_workers": 2.5}, "max_workers"),
    ({"max_workers": True}, "max_workers"),
    ({"priority": 3}, "priority"),
    ({"on_result": "print"}, "on_result"),
    ({"limiter": object()}, "limiter"),
    ({"interrupt_grace": -1}, "interrupt_grace"),
])
def test_bad_arguments_raise_value_error_at_once(kwargs, message):
    with pytest.raises(ValueError, match=message):
        batch(lambda x: x, [1], **kwargs)


@pytest.mark.parametrize("fn, items, message", [
    ("not callable", [1], "fn must be callable"),
    (len, None, "items"),
    (len, "abc", "items"),
    (len, 42, "items"),
])
def test_bad_fn_or_items_raise_value_error(fn, items, message):
    with pytest.raises(ValueError, match=message):
        batch(fn, items)
