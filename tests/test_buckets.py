"""llmroute.buckets: charging several buckets at once or not at all, concurrency slots, timeout
values, and the old import path. TokenBucket's own behaviour is in test_limits.py, where it grew
up; the bucket module's composition helpers are tested here."""
from __future__ import annotations

import math
import threading

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
