"""batch(): input order, one result per item, caught errors, fail_fast, priority, bounded
in-flight work, on_result in the caller's thread, Ctrl-C, the progress line, bad arguments."""
from __future__ import annotations

import functools
import gc
import io
import queue
import random
import threading
import tracemalloc
import weakref
from decimal import Decimal
from types import SimpleNamespace

import pytest

from llmroute import Client
from llmroute.batching import BatchInterrupted, BatchResult, batch
from llmroute.limits import RateLimiter

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
        assert r.error.__traceback__ is None  # the text is kept, the frames are not
        assert "in fn" in r.traceback and type(r.error).__name__ in r.traceback
    assert result.errors_by_type == {"KeyError": 4, "ValueError": 1}
    assert result.succeeded == 5 and result.failed == 5


class Payload:
    """Something a failing call's frame holds (a response, a buffer)."""


def test_a_kept_error_holds_no_frames_along_its_cause_and_context_chain():
    alive = []

    def fn(i):
        payload = Payload()  # a local of the failing frame
        alive.append(weakref.ref(payload))
        try:
            try:
                raise OSError("socket reset")
            except OSError as low:
                raise ConnectionError("connection lost") from low
        except ConnectionError:
            raise RuntimeError("call failed for %d" % i)  # __context__: ConnectionError

    result = batch(fn, [1, 2], max_workers=2)
    gc.collect()
    assert all(ref() is None for ref in alive), "a kept error holds its frames alive"
    error = result.results[0].error
    assert isinstance(error, RuntimeError) and error.__traceback__ is None
    assert isinstance(error.__context__, ConnectionError)
    assert error.__context__.__traceback__ is None
    assert isinstance(error.__context__.__cause__, OSError)
    assert error.__context__.__cause__.__traceback__ is None
    text = result.results[0].traceback
    assert "socket reset" in text and "connection lost" in text and "call failed" in text


def test_clearing_frames_survives_a_chain_that_loops():
    def fn(i):
        first, second = ValueError("a"), KeyError("b")
        first.__context__, second.__context__ = second, first  # a cycle
        first.__cause__ = first
        raise first

    result = batch(fn, [0], max_workers=1)
    error = result.results[0].error
    assert isinstance(error, ValueError) and error.__traceback__ is None
    assert batch_module.without_frames(error) is error


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
    def peak(n, keep):
        tracemalloc.start()
        try:
            result = batch(lambda x: x, (i for i in range(n)), max_workers=4,
                           keep_results=keep)
            return tracemalloc.get_traced_memory()[1], result
        finally:
            tracemalloc.stop()

    small, _ = peak(1_000, keep=False)
    large, result = peak(4_000, keep=False)
    assert result.succeeded == 4_000 and result.results == [] and result.p99 is not None
    assert large - small < 256 * 1024, (small, large)  # measured: ~0 (a fixed histogram)
    # The control: kept results do grow (~265 bytes an item), so the probe sees growth.
    kept_small, _ = peak(1_000, keep=True)
    kept_large, _ = peak(4_000, keep=True)
    assert kept_large - kept_small > 512 * 1024, (kept_small, kept_large)


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
    finally:
        client.close()


def test_client_names_the_pool_to_grow_for_any_function():
    client = Client("http://127.0.0.1:9/v1", "sk-test-key", pool_maxsize=4)
    try:
        batch(lambda item: client.chat("gpt-5.4", item), [], max_workers=16, client=client)
        assert client.pool_maxsize == 16
    finally:
        client.close()


def test_a_router_bound_method_grows_its_clients_pool():
    client = Client("http://127.0.0.1:9/v1", "sk-test-key", pool_maxsize=4)
    try:
        batch(Router(client).complete, [], max_workers=24)
        assert client.pool_maxsize == 24
    finally:
        client.close()


def test_any_owner_with_ensure_pool_is_asked_and_others_are_left_alone():
    class Pooled:
        def __init__(self):
            self.sizes = []

        def ensure_pool(self, size):
            self.sizes.append(size)

        def call(self, item):
            return item

    owner = Pooled()
    batch(owner.call, [1], max_workers=7)
    assert owner.sizes == [7]
    batch(SimpleNamespace(call=lambda x: x).call, [1], max_workers=3)  # no ensure_pool: fine


# -- progress ---------------------------------------------------------------------------------

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
    ({"client": object()}, "client"),
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
