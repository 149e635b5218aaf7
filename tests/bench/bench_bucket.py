"""Benchmark TokenBucket against a naive lock-and-retry bucket, with real threads and clocks.

Prints, from one run: (1) tokens granted vs expected over ``--seconds`` of real time for each
bucket, with the rate error (ours must be within +-1%); (2) how long an acquire(5) waits among
threads doing acquire(1), against the FIFO bound 5/rate + threads/rate; (3) the cost of one
try_acquire / acquire / RateLimiter.reserve in microseconds.

    python tests/bench/bench_bucket.py [--seconds 10] [--rate 500] [--threads 8]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Callable, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from llmroute.errors import RateLimitTimeout  # noqa: E402
from llmroute.limits import RateLimiter, TokenBucket  # noqa: E402


class NaiveBucket:
    """The usual first version: refill under a lock, and if short, sleep the shortfall and retry.

    Nobody holds a place in line, so waiters wake in a herd and small requests starve large
    ones; an ``n`` above capacity would loop forever (here a deadline ends it).
    """

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.level, self.stamp = capacity, time.monotonic()
        self.lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def try_acquire(self, n: float = 1) -> bool:
        with self.lock:
            self._refill()
            if self.level >= n:
                self.level -= n
                return True
            return False

    def acquire(self, n: float = 1, timeout: Optional[float] = None) -> float:
        start = time.monotonic()
        while True:
            with self.lock:
                self._refill()
                if self.level >= n:
                    self.level -= n
                    return time.monotonic() - start
                short = (n - self.level) / self.rate
            if timeout is not None and time.monotonic() - start + short > timeout:
                raise RateLimitTimeout("naive bucket: out of time")
            time.sleep(short)


def rate_accuracy(bucket, rate: float, capacity: float, seconds: float, threads: int) -> None:
    """Threads call acquire(1) until ``seconds`` pass; count the grants that fit the window."""
    counts = [0] * threads
    end = time.monotonic() + seconds

    def worker(index: int) -> None:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                bucket.acquire(1, timeout=left)
            except RateLimitTimeout:
                return
            counts[index] += 1

    started = time.process_time()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + 5)
    cpu = time.process_time() - started
    granted, expected = sum(counts), rate * seconds + capacity
    error = 100.0 * (granted - expected) / expected
    print("  %-12s granted %6d  expected %8.0f  error %+.3f%%  cpu %.2fs"
          % (type(bucket).__name__, granted, expected, error, cpu))


def big_among_small(bucket, rate: float, threads: int, limit: float = 3.0) -> None:
    """The wait of one acquire(5) while ``threads`` threads loop on acquire(1)."""
    stop = threading.Event()

    def small() -> None:
        while not stop.is_set():
            try:
                bucket.acquire(1, timeout=1.0)
            except RateLimitTimeout:
                return

    pool = [threading.Thread(target=small) for _ in range(threads)]
    for thread in pool:
        thread.start()
    time.sleep(0.5)  # let the small ones queue up
    asked = time.monotonic()
    try:
        bucket.acquire(5, timeout=limit)
        outcome = "served after %.1f ms" % ((time.monotonic() - asked) * 1000)
    except RateLimitTimeout:
        outcome = "starved: not served within %.0f ms" % ((time.monotonic() - asked) * 1000)
    stop.set()
    for thread in pool:
        thread.join(limit + 2)
    print("  %-12s acquire(5): %s (FIFO bound %.1f ms)"
          % (type(bucket).__name__, outcome, (5 + threads) / rate * 1000))


def per_call_us(call: Callable[[], object], calls: int = 200000, repeats: int = 5) -> float:
    """Best-of-``repeats`` microseconds per call."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def call_costs() -> None:
    huge = 1e15  # never runs out during the loop
    ours, naive = TokenBucket(huge, huge), NaiveBucket(huge, huge)
    ours_empty, naive_empty = TokenBucket(1e-9, 1), NaiveBucket(1e-9, 1)
    ours_empty.try_acquire()
    naive_empty.try_acquire()
    lock = threading.Lock()

    def floor() -> None:
        with lock:
            time.monotonic()

    limiter = RateLimiter(rpm=1e12, tpm=1e15, max_concurrent=4)

    def reserve_release() -> None:
        limiter.reserve(100, model="m").release()

    rows = [
        ("lock + monotonic() (floor)", per_call_us(floor), None),
        ("try_acquire, granted", per_call_us(ours.try_acquire), per_call_us(naive.try_acquire)),
        ("try_acquire, refused", per_call_us(ours_empty.try_acquire),
         per_call_us(naive_empty.try_acquire)),
        ("acquire, tokens there", per_call_us(ours.acquire), per_call_us(naive.acquire)),
        ("RateLimiter.reserve+release", per_call_us(reserve_release, calls=50000), None),
    ]
    print("  %-30s %12s %12s" % ("call", "TokenBucket", "NaiveBucket"))
    for name, mine, theirs in rows:
        print("  %-30s %10.3f us %s" % (name, mine, "%10.3f us" % theirs if theirs else ""))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    capacity = args.rate / 10
    print("Python %s, %d CPUs" % (sys.version.split()[0], os.cpu_count() or 0))
    print("1) rate accuracy: %d threads, %.0f tokens/s, capacity %.0f, %.0f s each"
          % (args.threads, args.rate, capacity, args.seconds))
    for bucket in (TokenBucket(args.rate, capacity), NaiveBucket(args.rate, capacity)):
        rate_accuracy(bucket, args.rate, capacity, args.seconds, args.threads)
    print("2) fairness: acquire(5) among %d threads of acquire(1) at %.0f tokens/s"
          % (args.threads, args.rate))
    for bucket in (TokenBucket(args.rate, 5), NaiveBucket(args.rate, 5)):
        big_among_small(bucket, args.rate, args.threads)
    print("3) cost per call (single thread, best of 5)")
    call_costs()


if __name__ == "__main__":
    main()
