"""Client-side rate limits: token buckets for RPM and TPM, a concurrency cap and shared pauses.

A RateLimiter admits a request once it holds a concurrency slot, a request token and its
estimated tokens, and it listens to the server: a 429's Retry-After, or an exhausted
``x-ratelimit-remaining-*`` header, pauses every thread sharing the limiter. Buckets refill lazily
from an injected clock; every wait is computed under a lock and slept outside it, through an
injected ``sleep``, so a fake clock drives the tests. No background thread, no polling.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ._headers import parse_rate_limit_headers, parse_retry_after
from .errors import RateLimitError, RateLimitTimeout

__all__ = ["TokenBucket", "RateLimiter", "Reservation", "PAUSE_STATUSES"]

logger = logging.getLogger(__name__)

#: Statuses whose Retry-After becomes a shared pause: 429 (throttled) and 503 (overloaded).
PAUSE_STATUSES = frozenset({429, 503})
#: Provider quotas are per minute, so a bucket holds a minute of tokens by default.
DEFAULT_BURST_SECONDS = 60.0
#: Slack in token comparisons, so float rounding over many small refills never costs a token.
_EPSILON = 1e-9
#: Times one reserve re-checks a pause that keeps being extended before it gives up.
_MAX_PAUSE_ROUNDS = 8
#: The pause key that stops every model (pause_scope="key", or a pause not tied to a model).
_EVERY_MODEL = "*"

Clock = Callable[[], float]
Sleep = Callable[[float], Any]


def _number(name: str, value: Any, *, positive: bool) -> float:
    """``value`` as a finite float, > 0 (or >= 0), else ValueError naming ``name``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ValueError("%s must be a %s finite number, got %r"
                         % (name, "positive" if positive else "non-negative", value))
    return float(value)


def _optional_seconds(name: str, value: Any) -> Optional[float]:
    """A timeout-like value: None or inf (no bound) or a number; a deadline past counts as 0."""
    if value is None or value == math.inf:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return 0.0
    return _number(name, value, positive=False)


def _left(timeout: Optional[float], spent: float) -> Optional[float]:
    return None if timeout is None else max(0.0, timeout - spent)


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens per second, bursts up to ``capacity``.

    The level may go negative: a caller takes its tokens at once and sleeps off the debt
    outside the lock, so callers are served in arrival order (a large request is never starved
    by a stream of small ones) and a waiter never polls.
    """

    __slots__ = ("_rate", "_capacity", "_clock", "_sleep", "_lock", "_level", "_stamp")

    def __init__(self, rate: float, capacity: float, *, clock: Clock = time.monotonic,
                 sleep: Sleep = time.sleep) -> None:
        self._rate = _number("rate", rate, positive=True)
        self._capacity = _number("capacity", capacity, positive=True)
        self._clock = clock
        self._sleep = sleep
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
        if not (isinstance(n, (int, float)) and 0 < n <= self._capacity):
            raise ValueError("cannot take %r tokens from a bucket of capacity %g: n must be > 0 "
                             "and <= capacity" % (n, self._capacity))

    # The three methods below expect the caller to hold self._lock.

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            level = self._level + (now - self._stamp) * self._rate
            self._level = level if level < self._capacity else self._capacity
            self._stamp = now

    def _wait_locked(self, n: float, now: float) -> float:
        """Seconds until ``n`` tokens are there, counting the debt of earlier callers."""
        self._refill(now)
        short = n - self._level
        return short / self._rate if short > _EPSILON else 0.0

    def _take_locked(self, n: float, wait: float) -> None:
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
        if not 0 < n <= self._capacity:
            self._check(n)
        with self._lock:
            wait = self._wait_locked(n, self._clock())
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
        if not 0 < n <= self._capacity:
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
            return self._wait_locked(n, self._clock())

    def refund(self, n: float) -> None:
        """Give back ``n`` tokens (an estimate proved too high); the level stays <= capacity."""
        n = _number("n", n, positive=False)
        with self._lock:
            self._refill(self._clock())
            self._level = min(self._capacity, self._level + n)

    def consume(self, n: float) -> None:
        """Take ``n`` tokens without waiting (usage found after the fact); may leave a debt."""
        n = _number("n", n, positive=False)
        with self._lock:
            self._refill(self._clock())
            self._level -= n

    def lower_to(self, level: float) -> None:
        """Lower the level to ``level`` if higher (the server says less is left); never raise it."""
        level = _number("level", level, positive=False)
        with self._lock:
            self._refill(self._clock())
            if level < self._level:
                self._level = level

    def __repr__(self) -> str:
        return "TokenBucket(rate=%g/s, capacity=%g, level=%.2f)" % (
            self._rate, self._capacity, self.level)


class _Slots:
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


class Reservation:
    """What one ``reserve()`` admitted: a request token, ``tokens`` TPM tokens and a slot.

    ``settle()`` squares the TPM charge with the usage the API reported, ``refund()`` returns it
    all, ``release()`` (or leaving the ``with`` block) frees the slot. Each is safe to repeat.
    """

    __slots__ = ("model", "tokens", "waited", "_limiter", "_charged", "_holds_slot", "_lock")

    def __init__(self, limiter: "RateLimiter", model: Optional[str], tokens: float,
                 waited: float, holds_slot: bool) -> None:
        self.model = model
        self.tokens = tokens
        self.waited = waited
        self._limiter = limiter
        self._charged = tokens
        self._holds_slot = holds_slot
        # Guards _charged and _holds_slot, so a repeated or racing settle/release counts once.
        self._lock = threading.Lock()

    @property
    def charged(self) -> float:
        """The TPM tokens this reservation holds now (the estimate until settled)."""
        return self._charged

    def settle(self, actual_tokens: float) -> float:
        """Charge the usage the API counted: refund the excess or take the shortfall as debt.

        Returns the change made (negative: refunded). Settling again moves only the difference,
        so a repeated settle never double-counts.
        """
        actual = _number("actual_tokens", actual_tokens, positive=False)
        with self._lock:
            delta = actual - self._charged
            self._charged = actual
        bucket = self._limiter.tokens_bucket
        if bucket is not None:
            if delta > 0:
                bucket.consume(delta)
            elif delta < 0:
                bucket.refund(-delta)
        return delta

    def refund(self) -> float:
        """Give back every TPM token still held (the attempt reported no usage); returns them."""
        return -self.settle(0)

    def release(self) -> None:
        """Free the concurrency slot; later calls do nothing."""
        with self._lock:
            held, self._holds_slot = self._holds_slot, False
        if held:
            self._limiter._release_slot()

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return "Reservation(model=%r, tokens=%g, charged=%g, waited=%.3fs)" % (
            self.model, self.tokens, self._charged, self.waited)


class RateLimiter:
    """Requests per minute, tokens per minute and concurrent requests, shared by all threads.

    ``rpm`` and ``tpm`` become token buckets holding ``burst_seconds`` of quota (a minute by
    default, as providers count per minute); ``max_concurrent`` caps requests in flight. Any may
    be None (unlimited). ``observe()`` turns the server's rate-limit headers into pauses that
    every thread respects, per model (``pause_scope="model"``) or for the whole key (``"key"``).
    """

    def __init__(self, rpm: Optional[float] = None, tpm: Optional[float] = None,
                 max_concurrent: Optional[int] = None, *,
                 burst_seconds: float = DEFAULT_BURST_SECONDS, pause_scope: str = "model",
                 clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        burst = _number("burst_seconds", burst_seconds, positive=True)
        if pause_scope not in ("model", "key"):
            raise ValueError("pause_scope must be 'model' or 'key', got %r" % (pause_scope,))
        if max_concurrent is not None and (not isinstance(max_concurrent, int)
                                           or isinstance(max_concurrent, bool)
                                           or max_concurrent < 1):
            raise ValueError("max_concurrent must be a positive integer or None, got %r"
                             % (max_concurrent,))
        self.rpm = None if rpm is None else _number("rpm", rpm, positive=True)
        self.tpm = None if tpm is None else _number("tpm", tpm, positive=True)
        self.max_concurrent = max_concurrent
        self.burst_seconds = burst
        self.pause_scope = pause_scope
        self.requests_bucket = None if self.rpm is None else TokenBucket(
            self.rpm / 60.0, self.rpm * burst / 60.0, clock=clock, sleep=sleep)
        self.tokens_bucket = None if self.tpm is None else TokenBucket(
            self.tpm / 60.0, self.tpm * burst / 60.0, clock=clock, sleep=sleep)
        self._slots = None if max_concurrent is None else _Slots(max_concurrent)
        self._clock = clock
        self._sleep = sleep
        # Guards _pauses: the clock reading until which each model (or _EVERY_MODEL) is paused.
        self._lock = threading.Lock()
        self._pauses: Dict[str, float] = {}

    @property
    def in_flight(self) -> int:
        """Reservations holding a concurrency slot now (0 when concurrency is not capped)."""
        return 0 if self._slots is None else self._slots.in_use

    # -- pauses ---------------------------------------------------------------------------------

    def _pause_key(self, model: Optional[str]) -> str:
        return model if model is not None and self.pause_scope == "model" else _EVERY_MODEL

    def pause(self, seconds: float, *, model: Optional[str] = None) -> None:
        """Hold back requests to ``model`` (every model if None or pause_scope="key") for
        ``seconds``; a pause already running longer is kept."""
        seconds = _number("seconds", seconds, positive=False)
        key = self._pause_key(model)
        now = self._clock()
        with self._lock:
            for stale in [k for k, until in self._pauses.items() if until <= now]:
                del self._pauses[stale]
            extended = now + seconds > self._pauses.get(key, now)
            if extended:
                self._pauses[key] = now + seconds
        if extended:
            logger.info("rate limit: pausing %s for %.3fs",
                        "every model" if key == _EVERY_MODEL else repr(key), seconds)

    def pause_remaining(self, model: Optional[str] = None) -> float:
        """Seconds until requests to ``model`` may be sent again (0.0 if it is not paused)."""
        key = self._pause_key(model)
        now = self._clock()
        with self._lock:
            until = max(self._pauses.get(_EVERY_MODEL, now), self._pauses.get(key, now))
        return max(0.0, until - now)

    def observe(self, model: Optional[str], status: int,
                headers: Optional[Mapping[str, Any]]) -> float:
        """Learn from a response: a 429/503 Retry-After, or ``x-ratelimit-remaining-*: 0`` until
        its reset, pauses the model (or key); remaining counts lower the buckets, never raise
        them. Returns the pause it asked for in seconds (0.0 if none)."""
        pause = 0.0
        if status in PAUSE_STATUSES:
            pause = parse_retry_after(headers) or 0.0
        info = parse_rate_limit_headers(headers)
        if info is not None:
            for remaining, reset, bucket in (
                    (info.remaining_requests, info.reset_requests, self.requests_bucket),
                    (info.remaining_tokens, info.reset_tokens, self.tokens_bucket)):
                if remaining is None:
                    continue
                if bucket is not None:
                    bucket.lower_to(remaining)
                if remaining <= 0 and reset:
                    pause = max(pause, reset)
        if pause > 0.0:
            self.pause(pause, model=model)
        return pause

    # -- reserving ------------------------------------------------------------------------------

    def reserve(self, tokens: float, *, model: Optional[str] = None,
                timeout: Optional[float] = None,
                max_pause: Optional[float] = None) -> Reservation:
        """Wait for a concurrency slot, one request token and ``tokens`` TPM tokens; return the
        Reservation (a context manager that releases the slot).

        ``timeout`` bounds the whole wait and ``max_pause`` the time spent on a server pause.
        Raises ValueError if ``tokens`` exceeds ``tpm`` (it could never be sent), RateLimitTimeout
        at once, taking nothing, if a computed wait would pass ``timeout``, and RateLimitError
        (429, ``retry_after`` = the pause left) at once if a pause outlasts ``max_pause`` or
        ``timeout``.
        """
        tokens = _number("tokens", tokens, positive=False)
        if self.tpm is not None and tokens > self.tpm:
            raise ValueError("reservation of %g tokens (prompt estimate + max_tokens) exceeds "
                             "tpm=%g; lower max_tokens or raise tpm" % (tokens, self.tpm))
        timeout = _optional_seconds("timeout", timeout)
        max_pause = _optional_seconds("max_pause", max_pause)
        waited, paused = self._wait_out_pause(model, timeout, max_pause, 0.0, 0.0)
        holds_slot = False
        if self._slots is not None:
            started = time.monotonic()  # Condition.wait blocks in real seconds, not clock ones.
            if not self._slots.acquire(_left(timeout, waited)):
                raise RateLimitTimeout("no concurrency slot freed within the timeout of %.3fs "
                                       "(max_concurrent=%d)" % (timeout, self.max_concurrent))
            holds_slot = True
            waited += time.monotonic() - started
        try:
            wait = self._take_buckets(tokens, _left(timeout, waited))
        except BaseException:
            self._release_slot(holds_slot)
            raise
        try:
            if wait > 0.0:
                self._sleep(wait)
                waited += wait
            # A pause set by another thread while this one slept must still be respected.
            waited, paused = self._wait_out_pause(model, timeout, max_pause, waited, paused)
        except BaseException:
            self._give_back(tokens)
            self._release_slot(holds_slot)
            raise
        return Reservation(self, model, tokens, waited, holds_slot)

    def _wait_out_pause(self, model: Optional[str], timeout: Optional[float],
                        max_pause: Optional[float], waited: float,
                        paused: float) -> Tuple[float, float]:
        """Sleep through the pause on ``model``; RateLimitError if it outlasts what is allowed."""
        for _ in range(_MAX_PAUSE_ROUNDS):
            remaining = self.pause_remaining(model)
            if remaining <= 0.0:
                return waited, paused
            if max_pause is not None and remaining > max_pause - paused:
                raise self._pause_error(model, remaining, "max_pause=%gs" % max_pause)
            if timeout is not None and remaining > timeout - waited:
                raise self._pause_error(model, remaining, "timeout=%gs" % timeout)
            logger.debug("rate limit: waiting %.3fs on the pause for %r", remaining, model)
            self._sleep(remaining)
            waited += remaining
            paused += remaining
        raise self._pause_error(model, self.pause_remaining(model),
                                "still paused after %d waits" % _MAX_PAUSE_ROUNDS)

    def _pause_error(self, model: Optional[str], remaining: float, why: str) -> RateLimitError:
        what = "every model" if self._pause_key(model) == _EVERY_MODEL else "model %r" % model
        if model is not None and self.pause_scope == "key":
            what = "model %r (the whole key)" % model
        return RateLimitError("%s is paused by the server's rate limit for %.3fs more; not "
                              "waiting (%s)" % (what, remaining, why),
                              status_code=429, retry_after=remaining)

    def _take_buckets(self, tokens: float, timeout: Optional[float]) -> float:
        """Take one request and ``tokens`` from both buckets at once; return the wait.

        Both locks are held together, briefly, always requests before tokens, so no bucket is
        charged when the other would make the wait exceed ``timeout``. A request larger than a
        bucket's capacity waits for the full bucket and leaves the rest as debt.
        """
        wants = [(b, n, name) for b, n, name in ((self.requests_bucket, 1.0, "rpm"),
                                                  (self.tokens_bucket, tokens, "tpm"))
                 if b is not None and n > 0]
        if not wants:
            return 0.0
        for bucket, _, _ in wants:
            bucket._lock.acquire()
        try:
            now = self._clock()
            wait, binding = 0.0, ""
            for bucket, n, name in wants:
                bucket_wait = bucket._wait_locked(min(n, bucket.capacity), now)
                if bucket_wait > wait:
                    wait, binding = bucket_wait, name
            late = timeout is not None and wait > timeout
            if not late:
                for bucket, n, _ in wants:
                    bucket._take_locked(n, wait)
        finally:
            for bucket, _, _ in reversed(wants):
                bucket._lock.release()
        if late:
            raise RateLimitTimeout("waiting %.3fs for the %s limit would exceed the timeout of "
                                   "%.3fs" % (wait, binding, timeout))
        return wait

    def _give_back(self, tokens: float) -> None:
        if self.requests_bucket is not None:
            self.requests_bucket.refund(1)
        if self.tokens_bucket is not None and tokens > 0:
            self.tokens_bucket.refund(tokens)

    def _release_slot(self, held: bool = True) -> None:
        if held and self._slots is not None:
            self._slots.release()

    def __repr__(self) -> str:
        now = self._clock()
        with self._lock:
            paused = {k: round(until - now, 3) for k, until in self._pauses.items() if until > now}
        parts = ["rpm=%s" % _fmt(self.rpm), "tpm=%s" % _fmt(self.tpm),
                 "max_concurrent=%s" % self.max_concurrent, "in_flight=%d" % self.in_flight,
                 "pause_scope=%r" % self.pause_scope]
        if self.requests_bucket is not None:
            parts.append("requests_left=%.1f" % self.requests_bucket.level)
        if self.tokens_bucket is not None:
            parts.append("tokens_left=%.1f" % self.tokens_bucket.level)
        if paused:
            parts.append("paused=%r" % paused)
        return "RateLimiter(%s)" % ", ".join(parts)


def _fmt(value: Optional[float]) -> str:
    return "None" if value is None else "%g" % value
