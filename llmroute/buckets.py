"""Token buckets and concurrency slots: the thread-safe counters a rate limiter is built from.

A ``TokenBucket`` refills lazily from an injected clock and lets its level go negative, so a
caller takes its tokens at once and sleeps off the debt outside the lock (served in arrival
order, never polling). ``take_together`` charges several buckets atomically and
``ConcurrencySlots`` caps requests in flight; ``llmroute.limits`` composes them.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Optional, Sequence, Tuple

from . import _checks as checks
from .errors import RateLimitTimeout

__all__ = ["TokenBucket", "ConcurrencySlots", "take_together", "optional_seconds"]

#: Slack in token comparisons, so float rounding over many small refills never costs a token.
_EPSILON = 1e-9

Clock = Callable[[], float]
Sleep = Callable[[float], Any]


def optional_seconds(name: str, value: Any) -> Optional[float]:
    """A timeout-like value: None or inf (no bound) or a number; a deadline past counts as 0."""
    value = checks.number(name, value, allow_none=True, allow_inf=True)
    if value is None or value == math.inf:
        return None
    return max(0.0, value)


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens per second, bursts up to ``capacity``.

    The level may go negative: a caller takes its tokens at once and sleeps off the debt
    outside the lock, so callers are served in arrival order (a large request is never starved
    by a stream of small ones) and a waiter never polls.
    """

    __slots__ = ("_rate", "_capacity", "_clock", "_sleep", "_lock", "_level", "_stamp")

    def __init__(self, rate: float, capacity: float, *, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        self._rate = checks.number("rate", rate, above=0)
        self._capacity = checks.number("capacity", capacity, above=0)
        self._clock = checks.callable_("clock", clock)
        self._sleep = checks.callable_("sleep", sleep)
        # Guards _level and _stamp: the level as of clock reading _stamp (refilled lazily).
        self._lock = threading.Lock()
        self._level = self._capacity
        self._stamp = clock()

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """The most tokens the bucket holds (the burst); it starts full."""
        return self._capacity

    @property
    def level(self) -> float:
        """Tokens available now; negative while earlier callers are still waiting."""
        with self._lock:
            self._refill(self._clock())
            return self._level

    def _check(self, n: Any) -> None:
        try:
            checks.number("n", n, above=0, maximum=self._capacity)
        except ValueError as err:
            raise ValueError("cannot take %r tokens from a bucket of capacity %g: %s"
                             % (n, self._capacity, err)) from None

    @property
    def lock(self) -> threading.Lock:
        """The lock that guards the level: ``take_together`` holds several buckets' at once,
        then calls ``wait_locked`` and ``take_locked`` (which expect it held)."""
        return self._lock

    # The three methods below expect the caller to hold the bucket's lock.

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            level = self._level + (now - self._stamp) * self._rate
            self._level = level if level < self._capacity else self._capacity
            self._stamp = now

    def wait_locked(self, n: float, now: float) -> float:
        """Seconds until ``n`` tokens are there, counting the debt of earlier callers."""
        self._refill(now)
        short = n - self._level
        return short / self._rate if short > _EPSILON else 0.0

    def take_locked(self, n: float, wait: float) -> None:
        """Take ``n`` tokens for use ``wait`` seconds from now.

        When another bucket makes the caller wait longer than this one would, this bucket
        cannot fill past its capacity meanwhile; capping the level here keeps a burst released
        by that other bucket within this bucket's limit.
        """
        level = self._level
        if wait > 0.0:
            ceiling = self._capacity - wait * self._rate
            if ceiling < level:
                level = ceiling
        self._level = level - n

    def acquire(self, n: float = 1, timeout: Optional[float] = None) -> float:
        """Block until ``n`` tokens are ours; return the seconds waited.

        Raises ValueError at once if ``n <= 0`` or ``n > capacity`` (it could never be served),
        and RateLimitTimeout at once, taking nothing, if the wait would exceed ``timeout``.
        """
        if type(n) not in (int, float) or not 0 < n <= self._capacity:
            self._check(n)
        if timeout is not None:
            timeout = optional_seconds("timeout", timeout)
        with self._lock:
            wait = self.wait_locked(n, self._clock())
            late = wait > 0.0 and timeout is not None and wait > timeout
            if not late:
                self._level -= n
        if late:
            raise RateLimitTimeout("waiting %.3fs for %g tokens would exceed the timeout of %.3fs"
                                   % (wait, n, timeout))
        if wait > 0.0:
            self._sleep(wait)
        return wait

    def try_acquire(self, n: float = 1) -> bool:
        """Take ``n`` tokens if they are there now; never blocks. False while others wait (FIFO)."""
        if type(n) not in (int, float) or not 0 < n <= self._capacity:
            self._check(n)
        with self._lock:
            now = self._clock()
            level = self._level
            if now > self._stamp:
                level += (now - self._stamp) * self._rate
                if level > self._capacity:
                    level = self._capacity
                self._stamp = now
            if level + _EPSILON >= n:
                self._level = level - n
                return True
            self._level = level
            return False

    def wait_time(self, n: float = 1) -> float:
        """Seconds an ``acquire(n)`` made now would wait (0.0 if the tokens are there)."""
        self._check(n)
        with self._lock:
            return self.wait_locked(n, self._clock())

    def refund(self, n: float) -> None:
        """Give back ``n`` tokens (an estimate proved too high); the level stays <= capacity."""
        n = checks.number("n", n, minimum=0)
        with self._lock:
            self._refill(self._clock())
            self._level = min(self._capacity, self._level + n)

    def consume(self, n: float) -> None:
        """Take ``n`` tokens without waiting (usage found after the fact); may leave a debt."""
        n = checks.number("n", n, minimum=0)
        with self._lock:
            self._refill(self._clock())
            self._level -= n

    def lower_to(self, level: float) -> None:
        """Lower the level to ``level`` if higher (the server says less is left); never raise it."""
        level = checks.number("level", level, minimum=0)
        with self._lock:
            self._refill(self._clock())
            if level < self._level:
                self._level = level

    def __repr__(self) -> str:
        return "TokenBucket(rate=%g/s, capacity=%g, level=%.2f)" % (
            self._rate, self._capacity, self.level)


class ConcurrencySlots:
    """A counter of concurrency slots; a thread blocks in acquire() until one is free."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        # Guards in_use; threads wanting a slot wait on it and release() wakes one of them.
        self._cond = threading.Condition(threading.Lock())

    def acquire(self, timeout: Optional[float]) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds (forever if None); False if none freed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.in_use < self.limit, timeout):
                return False
            self.in_use += 1
            return True

    def release(self) -> None:
        with self._cond:
            self.in_use -= 1
            self._cond.notify()



def take_together(wants: Sequence[Tuple[TokenBucket, float, str]], clock: Clock,
                  timeout: Optional[float]) -> float:
    """Take ``n`` tokens from each ``(bucket, n, name)`` at once, or none; return the wait.

    The locks are held together, briefly, in the order given (callers always give one order),
    so no bucket is charged when another would make the wait exceed ``timeout``: then
    RateLimitTimeout names the binding limit. An ``n`` larger than a bucket's capacity waits
    for the full bucket and leaves the rest as debt.
    """
    if not wants:
        return 0.0
    for bucket, _, _ in wants:
        bucket.lock.acquire()
    try:
        now = clock()
        wait, binding = 0.0, ""
        for bucket, n, name in wants:
            bucket_wait = bucket.wait_locked(min(n, bucket.capacity), now)
            if bucket_wait > wait:
                wait, binding = bucket_wait, name
        late = timeout is not None and wait > timeout
        if not late:
            for bucket, n, _ in wants:
                bucket.take_locked(n, wait)
    finally:
        for bucket, _, _ in reversed(wants):
            bucket.lock.release()
    if late:
        raise RateLimitTimeout("waiting %.3fs for the %s limit would exceed the timeout of "
                               "%.3fs" % (wait, binding, timeout))
    return wait
