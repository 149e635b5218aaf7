"""Client-side rate limits: RPM and TPM buckets, a concurrency cap and shared pauses.

A RateLimiter admits a request once it holds a concurrency slot, a request token and its
estimated tokens, and it listens to the server: a 429's Retry-After, or an exhausted
``x-ratelimit-remaining-*`` header, pauses every thread sharing the limiter. The buckets and
slots are ``llmroute.buckets``' (``TokenBucket`` is re-exported here, where it always was);
every wait is computed under a lock and slept outside it, through an injected ``sleep``, so a
fake clock drives the tests. No background thread, no polling.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from . import _checks as checks
from ._headers import (MAX_WAIT_HINT_SECONDS, NOT_PARSED, parse_rate_limit_headers,
                       parse_retry_after)
from .buckets import Clock, ConcurrencySlots, Sleep, TokenBucket, optional_seconds, take_together
from .errors import RateLimitError, RateLimitTimeout

__all__ = ["TokenBucket", "RateLimiter", "Reservation", "PAUSE_STATUSES"]

logger = logging.getLogger(__name__)

#: Statuses whose Retry-After becomes a shared pause: 429 (throttled) and 503 (overloaded).
PAUSE_STATUSES = frozenset({429, 503})
#: Provider quotas are per minute, so a bucket holds a minute of tokens by default.
DEFAULT_BURST_SECONDS = 60.0
#: Times one reserve re-checks a pause that keeps being extended before it gives up.
_MAX_PAUSE_ROUNDS = 8
#: The pause key that stops every model (pause_scope="key", or a pause not tied to a model).
_EVERY_MODEL = "*"

def _left(timeout: Optional[float], spent: float) -> Optional[float]:
    return None if timeout is None else max(0.0, timeout - spent)


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
        actual = actual_tokens
        if type(actual) is not int or actual < 0:  # the usual int skips the full check
            actual = checks.number("actual_tokens", actual_tokens, minimum=0)
        with self._lock:
            delta = actual - self._charged
            self._charged = actual
        for bucket in self._limiter.token_buckets(self.model):
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
            self._limiter.release_slot()

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        return "Reservation(model=%r, tokens=%g, charged=%g, waited=%.3fs)" % (
            self.model, self.tokens, self._charged, self.waited)


class _ModelBuckets:
    """The configured per-model limits of one model: its rpm and tpm buckets (None: unlimited)."""

    __slots__ = ("rpm", "tpm", "requests", "tokens")

    def __init__(self, rpm: Optional[float], tpm: Optional[float],
                 requests: Optional[TokenBucket], tokens: Optional[TokenBucket]) -> None:
        self.rpm, self.tpm, self.requests, self.tokens = rpm, tpm, requests, tokens


class RateLimiter:
    """Requests per minute, tokens per minute and concurrent requests, shared by all threads.

    ``rpm`` and ``tpm`` are key-wide: every model shares them. They become token buckets holding
    ``burst_seconds`` of quota (a minute by default, as providers count per minute);
    ``max_concurrent`` caps requests in flight. Any may be None (unlimited). ``model_limits``
    adds buckets for single models (``{"gpt-4.1": {"rpm": 60, "tpm": 90000}}``), taken on top of
    the key-wide ones by requests to that model.

    ``observe()`` listens to the server. A 429/503 Retry-After pauses the model
    (``pause_scope="model"``) or every model (``"key"``). The ``x-ratelimit-remaining-*`` headers
    describe the quota of the model (deployment) that answered, so by default
    (``headers_scope="model"``) they lower only that model's configured buckets and an exhausted
    count pauses only that model until its reset; ``headers_scope="key"`` reads them as the
    quota of the whole key (the key-wide buckets, a pause of every model). No pause is ever set
    longer than MAX_WAIT_HINT_SECONDS (24 hours).

    ``backend="redis://..."`` (or a Redis client) with ``namespace=``, ``lease_seconds=``,
    ``on_backend_error=`` and ``expected_processes=`` shares all of this with every process of
    the namespace (see ``llmroute.backends.redis_limiter``).
    """

    def __new__(cls, *args: Any, backend: Any = None, **kwargs: Any) -> "RateLimiter":
        """With ``backend`` (a Redis URL or client) the limiter is the fleet-wide
        ``backends.redis_limiter.RedisRateLimiter`` (as ``pathlib.Path`` picks its flavour)."""
        if backend is not None and cls is RateLimiter:
            from .backends.redis_limiter import RedisRateLimiter
            return super().__new__(RedisRateLimiter)
        return super().__new__(cls)

    def __init__(self, rpm: Optional[float] = None, tpm: Optional[float] = None,
                 max_concurrent: Optional[int] = None, *, backend: None = None,
                 model_limits: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 burst_seconds: float = DEFAULT_BURST_SECONDS, pause_scope: str = "model",
                 headers_scope: str = "model",
                 clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        if backend is not None:  # __new__ picked this class: a subclass not made for a backend
            raise ValueError("backend= is not supported by %s" % type(self).__name__)
        burst = checks.number("burst_seconds", burst_seconds, above=0)
        self.pause_scope = checks.choice("pause_scope", pause_scope, ("model", "key"))
        self.headers_scope = checks.choice("headers_scope", headers_scope, ("model", "key"))
        self.max_concurrent = checks.number("max_concurrent", max_concurrent, minimum=1,
                                            integer=True, allow_none=True)
        checks.callable_("clock", clock)
        checks.callable_("sleep", sleep)
        self.rpm = checks.number("rpm", rpm, above=0, allow_none=True)
        self.tpm = checks.number("tpm", tpm, above=0, allow_none=True)
        self.burst_seconds = burst
        self._clock = clock
        self._sleep = sleep
        self.requests_bucket = self._bucket(self.rpm)
        self.tokens_bucket = self._bucket(self.tpm)
        # Built once and never changed, so reading it needs no lock.
        self._models: Dict[str, _ModelBuckets] = {}
        for model, limits in _checked_model_limits(model_limits).items():
            rpm_m, tpm_m = limits.get("rpm"), limits.get("tpm")
            self._models[model] = _ModelBuckets(rpm_m, tpm_m, self._bucket(rpm_m),
                                                self._bucket(tpm_m))
        self._slots = None if self.max_concurrent is None else ConcurrencySlots(self.max_concurrent)
        # Guards _pauses: the clock reading until which each model (or _EVERY_MODEL) is paused.
        self._lock = threading.Lock()
        self._pauses: Dict[str, float] = {}

    def _bucket(self, per_minute: Optional[float]) -> Optional[TokenBucket]:
        if per_minute is None:
            return None
        return TokenBucket(per_minute / 60.0, per_minute * self.burst_seconds / 60.0,
                           clock=self._clock, sleep=self._sleep)

    @property
    def model_limits(self) -> Dict[str, Dict[str, float]]:
        """The configured per-model limits, ``{model: {"rpm": ..., "tpm": ...}}`` (a copy)."""
        return {model: {k: v for k, v in (("rpm", b.rpm), ("tpm", b.tpm)) if v is not None}
                for model, b in self._models.items()}

    def model_buckets(self, model: Optional[str]) -> Tuple[Optional[TokenBucket],
                                                           Optional[TokenBucket]]:
        """The (requests, tokens) buckets configured for ``model`` alone; (None, None) if none."""
        own = self._models.get(model) if model is not None else None
        return (None, None) if own is None else (own.requests, own.tokens)

    def token_buckets(self, model: Optional[str]) -> List[TokenBucket]:
        """Every TPM bucket a request to ``model`` is charged to: key-wide, then the model's."""
        return [b for b in (self.tokens_bucket, self.model_buckets(model)[1]) if b is not None]

    @property
    def in_flight(self) -> int:
        """Reservations holding a concurrency slot now (0 when concurrency is not capped)."""
        return 0 if self._slots is None else self._slots.in_use

    # -- pauses ---------------------------------------------------------------------------------

    def _pause_key(self, model: Optional[str]) -> str:
        return model if model is not None and self.pause_scope == "model" else _EVERY_MODEL

    def pause(self, seconds: float, *, model: Optional[str] = None) -> None:
        """Hold back requests to ``model`` (every model if None or pause_scope="key") for
        ``seconds``, at most MAX_WAIT_HINT_SECONDS; a pause already running longer is kept."""
        seconds = checks.number("seconds", seconds, minimum=0)
        self._pause_until(self._pause_key(model), seconds)

    def _pause_until(self, key: str, seconds: float) -> None:
        seconds = min(seconds, MAX_WAIT_HINT_SECONDS)
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
        """Seconds until requests to ``model`` may be sent again (0.0 if it is not paused).

        Counts the pause of every model and the model's own pause, whichever scope set it.
        """
        now = self._clock()
        with self._lock:
            until = self._pauses.get(_EVERY_MODEL, now)
            if model is not None:
                until = max(until, self._pauses.get(model, now))
        return max(0.0, until - now)

    def observe(self, model: Optional[str], status: int,
                headers: Optional[Mapping[str, Any]], *, rate_limit: Any = NOT_PARSED) -> float:
        """Learn from a response; returns the longest pause it asked for, in seconds (0.0: none).

        A 429/503 Retry-After pauses the model (or, with pause_scope="key", every model).
        ``x-ratelimit-remaining-*`` (plain or ``llm_provider-`` prefixed) lower the buckets of
        the model that answered (headers_scope="model", the default) or the key-wide buckets
        ("key"), never raising them; a count of 0 with a reset pauses that model (or every
        model) until the reset. A response without a model is read key-wide. ``rate_limit``
        is the headers' ``parse_rate_limit_headers`` when the caller has it already (one parse
        per response); by default they are parsed here.
        """
        pause = 0.0
        if status in PAUSE_STATUSES:
            pause = parse_retry_after(headers) or 0.0
            if pause > 0.0:
                self._pause_until(self._pause_key(model), pause)
        info = parse_rate_limit_headers(headers) if rate_limit is NOT_PARSED else rate_limit
        if info is None:
            return pause
        key_wide = model is None or self.headers_scope == "key"
        requests, tokens = ((self.requests_bucket, self.tokens_bucket) if key_wide
                            else self.model_buckets(model))
        quota_pause = 0.0
        for remaining, reset, bucket in ((info.remaining_requests, info.reset_requests, requests),
                                         (info.remaining_tokens, info.reset_tokens, tokens)):
            if remaining is None:
                continue
            if bucket is not None:
                bucket.lower_to(remaining)
            if remaining <= 0 and reset:
                quota_pause = max(quota_pause, reset)
        if quota_pause > 0.0:
            self._pause_until(_EVERY_MODEL if key_wide else model, quota_pause)
        return min(max(pause, quota_pause), MAX_WAIT_HINT_SECONDS)

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
        tokens = checks.number("tokens", tokens, minimum=0)
        if model is not None and not isinstance(model, str):
            raise ValueError("model must be a string or None, got %r" % (model,))
        own = self._models.get(model) if model is not None else None
        for tpm, whose in ((self.tpm, "tpm"), (own and own.tpm, "model_limits[%r] tpm" % model)):
            if tpm is not None and tokens > tpm:
                raise ValueError("reservation of %g tokens (prompt estimate + max_tokens) exceeds "
                                 "%s=%g; lower max_tokens or raise %s" % (tokens, whose, tpm, whose))
        timeout = optional_seconds("timeout", timeout)
        max_pause = optional_seconds("max_pause", max_pause)
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
            wait = self._take_buckets(tokens, model, _left(timeout, waited))
        except BaseException:
            self.release_slot(holds_slot)
            raise
        try:
            if wait > 0.0:
                self._sleep(wait)
                waited += wait
            # A pause set by another thread while this one slept must still be respected.
            waited, paused = self._wait_out_pause(model, timeout, max_pause, waited, paused)
        except BaseException:
            self._give_back(tokens, model)
            self.release_slot(holds_slot)
            raise
        return Reservation(self, model, tokens, waited, holds_slot)

    def _wait_out_pause(self, model: Optional[str], timeout: Optional[float],
                        max_pause: Optional[float], waited: float,
                        paused: float) -> Tuple[float, float]:
        """Sleep through the pause on ``model``; RateLimitError if it outlasts what is allowed."""
        if not self._pauses:
            # No pause was ever set (or all were cleared): nothing to wait for. Reading whether
            # a dict is empty is atomic; a pause set just now counts from the next request on,
            # as it would had it arrived a moment later.
            return waited, paused
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

    def _take_buckets(self, tokens: float, model: Optional[str],
                      timeout: Optional[float]) -> float:
        """Take one request and ``tokens`` from every bucket that applies at once; return the wait.

        Always in one order (key-wide requests, key-wide tokens, then the model's requests and
        tokens), so threads taking the locks together never deadlock (``take_together``).
        """
        own_requests, own_tokens = self.model_buckets(model)
        wants = [(b, n, name) for b, n, name in (
            (self.requests_bucket, 1.0, "rpm"), (self.tokens_bucket, tokens, "tpm"),
            (own_requests, 1.0, "%r rpm" % model), (own_tokens, tokens, "%r tpm" % model))
                 if b is not None and n > 0]
        return take_together(wants, self._clock, timeout)

    def _give_back(self, tokens: float, model: Optional[str]) -> None:
        for bucket in (self.requests_bucket, self.model_buckets(model)[0]):
            if bucket is not None:
                bucket.refund(1)
        if tokens > 0:
            for bucket in self.token_buckets(model):
                bucket.refund(tokens)

    def release_slot(self, held: bool = True) -> None:
        """Free one concurrency slot (what ``Reservation.release`` does once)."""
        if held and self._slots is not None:
            self._slots.release()

    def __repr__(self) -> str:
        now = self._clock()
        with self._lock:
            paused = {k: round(until - now, 3) for k, until in self._pauses.items() if until > now}
        parts = ["rpm=%s" % _fmt(self.rpm), "tpm=%s" % _fmt(self.tpm),
                 "max_concurrent=%s" % self.max_concurrent, "in_flight=%d" % self.in_flight,
                 "pause_scope=%r" % self.pause_scope, "headers_scope=%r" % self.headers_scope]
        if self._models:
            parts.append("model_limits=%r" % self.model_limits)
        if self.requests_bucket is not None:
            parts.append("requests_left=%.1f" % self.requests_bucket.level)
        if self.tokens_bucket is not None:
            parts.append("tokens_left=%.1f" % self.tokens_bucket.level)
        if paused:
            parts.append("paused=%r" % paused)
        return "RateLimiter(%s)" % ", ".join(parts)


def _fmt(value: Optional[float]) -> str:
    return "None" if value is None else "%g" % value


_MODEL_LIMIT_NAMES = ("rpm", "tpm")


def _checked_model_limits(value: Any) -> Dict[str, Dict[str, Optional[float]]]:
    """``model_limits`` validated: model name -> {"rpm": positive or None, "tpm": ...}."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("model_limits must be a mapping of model name to {'rpm': ..., "
                         "'tpm': ...}, got %r" % (value,))
    checked = {}
    for model, limits in value.items():
        checks.text("model_limits key", model)
        if not isinstance(limits, Mapping):
            raise ValueError("model_limits[%r] must be a mapping with 'rpm' and/or 'tpm', got %r"
                             % (model, limits))
        unknown = sorted(str(k) for k in limits if k not in _MODEL_LIMIT_NAMES)
        if unknown:
            raise ValueError("model_limits[%r] has unknown limits %s; use 'rpm' and/or 'tpm'"
                             % (model, ", ".join(unknown)))
        checked[model] = {name: checks.number("model_limits[%r][%r]" % (model, name),
                                              limits.get(name), above=0, allow_none=True)
                          for name in _MODEL_LIMIT_NAMES}
    return checked
