"""llmroute.buckets: TokenBucket driven by a fake clock (real threads only for FIFO order),
charging several buckets at once or not at all, concurrency slots, timeout values, and the old
import path."""
from __future__ import annotations

import math
import threading
import time

import pytest

import llmroute
from llmroute import buckets, limits
from llmroute.buckets import ConcurrencySlots, TokenBucket, optional_seconds, take_together
from llmroute.errors import RateLimitTimeout


def test_token_bucket_still_imports_from_limits_and_the_package():
    from llmroute.limits import TokenBucket as from_limits

    assert from_limits is TokenBucket is llmroute.TokenBucket
    assert "TokenBucket" in limits.__all__ and "TokenBucket" in buckets.__all__


def test_take_together_charges_every_bucket_and_returns_the_longest_wait(clock):
    requests = TokenBucket(1, 2, clock=clock)
    tokens = TokenBucket(100, 100, clock=clock)
    tokens.consume(150)  # 50 tokens of debt: the next 10 wait (50 + 10) / 100 s
    wait = take_together([(requests, 1.0, "rpm"), (tokens, 10.0, "tpm")], clock, None)
    assert wait == pytest.approx(0.6)
    assert tokens.level == pytest.approx(-60.0)
    clock.advance(0.6)  # when the caller wakes, the debt and its 10 tokens are paid off
    assert tokens.level == pytest.approx(0.0, abs=1e-9)
    assert requests.level == pytest.approx(1.0)  # capacity 2 less the request it took


def test_take_together_past_the_timeout_takes_nothing_and_names_the_binding_limit(clock):
    requests = TokenBucket(1, 2, clock=clock)
    tokens = TokenBucket(10, 10, clock=clock)
    tokens.consume(10)
    with pytest.raises(RateLimitTimeout, match=r"waiting 1\.000s for the tpm limit would exceed "
                                               r"the timeout of 0\.500s"):
        take_together([(requests, 1.0, "rpm"), (tokens, 10.0, "tpm")], clock, 0.5)
    assert requests.level == 2 and tokens.level == pytest.approx(0.0)


def test_take_together_of_nothing_waits_for_nothing(clock):
    assert take_together([], clock, 0.0) == 0.0


def test_take_together_keeps_a_burst_within_a_slower_buckets_limit(clock):
    """A long wait on one bucket must not let another bank more than its capacity meanwhile."""
    requests = TokenBucket(1, 5, clock=clock)
    tokens = TokenBucket(1, 1, clock=clock)
    tokens.consume(11)  # ten seconds of debt
    assert take_together([(requests, 1.0, "rpm"), (tokens, 1.0, "tpm")], clock, None) == \
        pytest.approx(11.0)
    clock.advance(11.0)
    assert requests.level == pytest.approx(4.0)  # capacity 5 less the one taken, not 5 + 10


def test_take_together_from_many_threads_never_overdraws(clock):
    first, second = TokenBucket(1e-9, 100, clock=clock), TokenBucket(1e-9, 60, clock=clock)
    granted, lock = [], threading.Lock()

    def worker():
        for _ in range(20):
            try:
                take_together([(first, 1.0, "a"), (second, 1.0, "b")], clock, 0.0)
            except RateLimitTimeout:
                continue
            with lock:
                granted.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(granted) == 60  # the smaller bucket binds; no grant without both
    assert first.level == pytest.approx(40.0) and second.level == pytest.approx(0.0, abs=1e-6)


def test_concurrency_slots_block_at_the_limit_and_release_wakes_a_waiter():
    slots = ConcurrencySlots(2)
    assert slots.acquire(None) and slots.acquire(0) and slots.in_use == 2
    assert slots.acquire(0.01) is False  # full: times out without taking one
    got = threading.Event()

    def waiter():
        if slots.acquire(10):
            got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not got.wait(0.05)
    slots.release()
    assert got.wait(5)
    thread.join(5)
    assert slots.in_use == 2 and slots.limit == 2


@pytest.mark.parametrize("value, expected", [
    (None, None), (math.inf, None), (2.5, 2.5), (0, 0.0), (-3, 0.0),
])
def test_optional_seconds_reads_no_bound_and_clamps_a_past_deadline(value, expected):
    assert optional_seconds("timeout", value) == expected


@pytest.mark.parametrize("value", [True, "1", float("nan"), [1]])
def test_optional_seconds_refuses_what_is_not_a_number_naming_it(value):
    with pytest.raises(ValueError, match="timeout"):
        optional_seconds("timeout", value)


class VirtualTime:
    """A shared fake clock for real threads: time moves only once every worker is asleep, and
    then straight to the earliest wake-up, so a threaded run follows the bucket's arithmetic."""

    REAL_LIMIT = 10.0  # real seconds before a stuck run fails instead of hanging

    def __init__(self, workers: int) -> None:
        self.now = 0.0
        self._cond = threading.Condition()
        self._wakes = {}  # thread ident -> virtual wake time, for workers asleep
        self._running = workers

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        me = threading.get_ident()
        give_up = time.monotonic() + self.REAL_LIMIT
        with self._cond:
            self._wakes[me] = self.now + seconds
            self._cond.notify_all()
            while me in self._wakes:
                assert time.monotonic() < give_up, "virtual sleep never woke"
                self._cond.wait(0.5)

    def finish(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def drive(self) -> None:
        give_up = time.monotonic() + self.REAL_LIMIT
        with self._cond:
            while self._running:
                assert time.monotonic() < give_up, "workers never all slept"
                if len(self._wakes) < self._running:
                    self._cond.wait(0.5)
                    continue
                self.now = min(self._wakes.values())
                for ident in [i for i, wake in self._wakes.items() if wake <= self.now]:
                    del self._wakes[ident]
                self._cond.notify_all()


# -- TokenBucket --------------------------------------------------------------------------------

@pytest.mark.parametrize("rate, capacity", [
    (0, 1), (-1, 1), (float("inf"), 1), (float("nan"), 1), (1, 0), (1, -5), (1, float("inf")),
    ("5", 1), (True, 1),
])
def test_bucket_rejects_bad_rate_or_capacity(rate, capacity):
    with pytest.raises(ValueError):
        TokenBucket(rate, capacity)


def test_bucket_starts_full(clock):
    bucket = TokenBucket(2, 10, clock=clock)
    assert bucket.level == 10
    assert bucket.rate == 2 and bucket.capacity == 10


def test_grants_exactly_rate_times_elapsed_plus_capacity(clock):
    bucket = TokenBucket(10, 5, clock=clock, sleep=clock.sleep)
    start, granted = clock(), 0
    for step in range(0, 1001):  # 10 s in steps of 10 ms, draining from the start
        clock.advance(start + step * 0.01 - clock())  # no drift from adding 0.01 a thousand times
        while bucket.try_acquire():
            granted += 1
            assert granted <= 200, "runaway grants"
        assert granted == 5 + int(10 * step * 0.01 + 1e-6)
    assert granted == 10 * 10 + 5
    assert clock.sleeps == []


def test_acquire_returns_zero_while_tokens_are_there(clock):
    bucket = TokenBucket(1, 3, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire(), bucket.acquire(2)] == [0.0, 0.0]
    assert clock.sleeps == []


def test_acquire_sleeps_the_shortfall_through_the_injected_sleep(clock):
    bucket = TokenBucket(4, 2, clock=clock, sleep=clock.sleep)
    bucket.acquire(2)
    assert bucket.acquire(1) == pytest.approx(0.25)
    assert clock.sleeps == [pytest.approx(0.25)]


def test_acquire_queues_callers_behind_earlier_waiters(clock):
    slept = []
    bucket = TokenBucket(1, 1, clock=clock, sleep=slept.append)  # sleeps do not move the clock
    waits = [bucket.acquire(1) for _ in range(4)]
    assert waits == [0.0, 1.0, 2.0, 3.0]
    assert slept == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("n", [6, 0, -1, float("nan"), float("inf")])
def test_impossible_acquire_raises_value_error_at_once(clock, n):
    bucket = TokenBucket(1, 5, clock=clock, sleep=clock.sleep)
    with pytest.raises(ValueError, match="capacity 5"):
        bucket.acquire(n)
    with pytest.raises(ValueError):
        bucket.try_acquire(n)
    assert clock.sleeps == [] and bucket.level == 5


def test_acquire_past_timeout_raises_and_takes_nothing(clock):
    bucket = TokenBucket(1, 2, clock=clock, sleep=clock.sleep)
    bucket.acquire(2)
    with pytest.raises(RateLimitTimeout, match="timeout"):
        bucket.acquire(1, timeout=0.5)
    assert clock.sleeps == [] and bucket.level == 0
    assert bucket.acquire(1, timeout=1.0) == 1.0


def test_try_acquire_is_false_while_earlier_callers_wait(clock):
    slept = []
    bucket = TokenBucket(1, 1, clock=clock, sleep=slept.append)
    bucket.acquire(1)
    bucket.acquire(1)  # in debt: this caller's token arrives in 1 s
    clock.advance(1.5)
    assert bucket.try_acquire() is False  # 0.5 tokens, and they belong to the waiter's successor
    clock.advance(0.5)
    assert bucket.try_acquire() is True


def test_large_request_is_served_fifo_among_eight_threads_of_small_ones():
    rate, capacity, small_threads = 10.0, 5.0, 8
    vt = VirtualTime(workers=small_threads + 1)
    bucket = TokenBucket(rate, capacity, clock=vt.clock, sleep=vt.sleep)
    grants, grants_lock, big = [], threading.Lock(), {}

    def small() -> None:
        try:
            for _ in range(100):  # bounded; virtual time ends the loop long before
                if vt.clock() >= 4.0:
                    break
                bucket.acquire(1)
                with grants_lock:
                    grants.append((vt.clock(), 1))
        finally:
            vt.finish()

    def large() -> None:
        try:
            vt.sleep(1.0)  # join once the small ones have queued up
            big["asked"] = vt.clock()
            big["wait"] = bucket.acquire(5)
            big["served"] = vt.clock()
            with grants_lock:
                grants.append((vt.clock(), 5))
        finally:
            vt.finish()

    threads = [threading.Thread(target=small) for _ in range(small_threads)]
    threads.append(threading.Thread(target=large))
    for thread in threads:
        thread.start()
    vt.drive()
    for thread in threads:
        thread.join(5.0)
    # Each small thread has at most one token queued ahead, so the big one waits for its own
    # 5 tokens plus one round of the others: 5/rate + 8/rate, never starved.
    assert big["served"] - big["asked"] == pytest.approx(big["wait"])
    assert 0 < big["wait"] <= (5 + small_threads) / rate + 1e-9
    for t in (1.0, 2.0, 3.0, 4.0):
        assert sum(n for when, n in grants if when <= t) <= rate * t + capacity + 1e-6


def test_refund_caps_the_level_at_capacity(clock):
    bucket = TokenBucket(1, 5, clock=clock)
    bucket.try_acquire(2)
    bucket.refund(10)
    assert bucket.level == 5


def test_consume_leaves_a_debt_that_try_acquire_respects(clock):
    bucket = TokenBucket(2, 4, clock=clock)
    bucket.consume(7)
    assert bucket.level == -3
    clock.advance(1.5)  # back to 0
    assert bucket.try_acquire() is False
    clock.advance(0.5)
    assert bucket.try_acquire() is True


def test_wait_time_counts_the_debt_without_taking(clock):
    bucket = TokenBucket(2, 4, clock=clock)
    bucket.consume(5)
    assert bucket.wait_time(2) == pytest.approx(1.5)
    assert bucket.level == -1


def test_lower_to_lowers_but_never_raises_the_level(clock):
    bucket = TokenBucket(1, 10, clock=clock)
    bucket.lower_to(3)
    assert bucket.level == 3
    bucket.lower_to(8)
    assert bucket.level == 3


def test_bucket_repr_shows_rate_capacity_and_level(clock):
    expected = "TokenBucket(rate=2/s, capacity=10, level=10.00)"
    assert repr(TokenBucket(2, 10, clock=clock)) == expected
